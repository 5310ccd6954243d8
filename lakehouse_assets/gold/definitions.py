"""Gold and marts as one Definitions, merged into the project's by definitions.py: the
gold assets, the dbt marts, the refresh sensor, PostgreSQL and its IO manager."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from lakehouse_assets.gold.assets import POSTGRES_IO_MANAGER, build_gold_assets, gold_asset_key
from lakehouse_assets.gold.refresh import build_gold_refresh_sensor
from lakehouse_assets.gold.summaries import SUMMARIES, summaries_for
from lakehouse_assets.io_managers.postgres import PostgresIOManager
from lakehouse_assets.marts import build_marts, marts_resource
from lakehouse_assets.postgres import PostgresResource
from lakehouse_assets.settings import Settings


def _keys(assets: Iterable[dg.AssetsDefinition]) -> list[dg.AssetKey]:
    return sorted((key for asset in assets for key in asset.keys), key=lambda key: key.to_user_string())


def build_gold_definitions(settings: Settings, daily: dg.TimeWindowPartitionsDefinition) -> dg.Definitions:
    summaries = summaries_for(frozenset(settings.contracts.tables))
    if not summaries:  # contracts without the demo tables: no gold, no marts
        return dg.Definitions()
    postgres = PostgresResource(url=settings.postgres_url)
    # The marts read every gold table: only with all of them.
    marts = list(build_marts(daily)) if len(summaries) == len(SUMMARIES) else []
    sensor = build_gold_refresh_sensor(
        summaries,
        gold_asset_key,
        daily,
        partitioned_downstream=_keys(m for m in marts if m.partitions_def is not None),
        unpartitioned_downstream=_keys(m for m in marts if m.partitions_def is None),
    )
    return dg.Definitions(
        assets=[*build_gold_assets(settings.contracts, daily), *marts],
        sensors=[sensor],
        resources={
            "postgres": postgres,
            POSTGRES_IO_MANAGER: PostgresIOManager(postgres=postgres),
            "dbt": marts_resource(),
        },
    )
