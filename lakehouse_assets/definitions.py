"""The one Definitions of the project: every asset, check, sensor, resource and IO manager."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import dagster as dg

from lakehouse_assets.automation import (
    AutomationSettings,
    build_automation_sensor,
    build_freshness_checks,
    follow_upstream,
)
from lakehouse_assets.bronze.assets import build_bronze_assets
from lakehouse_assets.gold.assets import build_gold_assets
from lakehouse_assets.gold.exports import GoldExportsResource
from lakehouse_assets.gold.refresh import build_gold_refresh_sensor
from lakehouse_assets.gold.summaries import SUMMARIES, summaries_for
from lakehouse_assets.io_managers.bronze import BronzeIOManager
from lakehouse_assets.io_managers.postgres import PostgresIOManager
from lakehouse_assets.marts import build_marts, marts_resource
from lakehouse_assets.names import (
    BRONZE_IO_MANAGER,
    POSTGRES_IO_MANAGER,
    SPARK_RESOURCE_KEY,
    gold_asset_key,
)
from lakehouse_assets.postgres import PostgresResource
from lakehouse_assets.resources import ContractsResource, IcebergCatalogResource, LakeResource
from lakehouse_assets.sensors import (
    LandingSettings,
    build_check_failure_sensor,
    build_dms_landing_sensor,
    build_run_failure_sensor,
    webhook_from_env,
)
from lakehouse_assets.settings import Settings, settings_from_env
from lakehouse_assets.silver.assets import build_silver_assets
from lakehouse_assets.silver.checks import build_silver_checks
from lakehouse_assets.silver.maintenance_job import (
    build_maintenance_job,
    build_maintenance_schedule,
)
from lakehouse_assets.silver.spark.session import LakehouseSparkResource

# Single-run backfills (one run, one Iceberg commit or PostgreSQL transaction per range) are
# the project's deliberate choice for every partitioned asset: not a warning per asset and
# step process. Every other beta or preview warning still shows.
warnings.filterwarnings(
    "ignore",
    message=r"Parameter `backfill_policy` of function `asset` is currently in beta",
    category=dg.BetaWarning,
)


@dg.definitions
def defs() -> dg.Definitions:
    settings = settings_from_env()
    daily = dg.DailyPartitionsDefinition(
        start_date=settings.start_date.isoformat(),
        # Today's partition exists while its files are still landing.
        end_offset=1,
    )
    automation = AutomationSettings.from_env()
    maintenance = build_maintenance_job(settings.contracts)
    core = dg.Definitions(
        assets=[
            *build_bronze_assets(settings.contracts, daily),
            *build_silver_assets(
                settings.contracts,
                daily,
                automation_condition=follow_upstream(),
                ledger_retention_days=settings.ledger_retention_days,
            ),
        ],
        asset_checks=[
            *build_silver_checks(settings.contracts),
            *build_freshness_checks(settings.contracts, automation),
        ],
        sensors=[
            build_dms_landing_sensor(settings.contracts, daily, LandingSettings.from_env()),
            build_run_failure_sensor(webhook_from_env()),
            build_check_failure_sensor(webhook_from_env()),
            build_automation_sensor(automation),
        ],
        jobs=[maintenance],
        schedules=[build_maintenance_schedule(maintenance)],
        resources=lake_resources(settings.lake_uri, settings.catalog_uri, settings.contracts_path),
    )
    return dg.Definitions.merge(core, gold_and_marts(settings, daily))


def lake_resources(
    lake_uri: str | dg.EnvVar, catalog_uri: str | dg.EnvVar, contracts_path: str | dg.EnvVar = ""
) -> dict[str, dg.ConfigurableResource | dg.ConfigurableIOManager]:
    """The resources bronze and silver run with (tests build their definitions from it too)."""
    lake = LakeResource(uri=lake_uri)
    contracts = ContractsResource(path=contracts_path)
    return {
        "lake": lake,
        "contracts": contracts,
        "iceberg": IcebergCatalogResource(uri=catalog_uri, lake_uri=lake_uri),
        BRONZE_IO_MANAGER: BronzeIOManager(lake=lake, contracts=contracts),
        # The silver Spark engine's session: started only when a step uses it.
        SPARK_RESOURCE_KEY: LakehouseSparkResource(catalog_uri=catalog_uri, lake_uri=lake_uri),
    }


def _keys(assets: Iterable[dg.AssetsDefinition]) -> list[dg.AssetKey]:
    return sorted(
        (key for asset in assets for key in asset.keys), key=lambda key: key.to_user_string()
    )


def gold_and_marts(settings: Settings, daily: dg.TimeWindowPartitionsDefinition) -> dg.Definitions:
    """Gold summaries, dbt marts, the gold refresh sensor, PostgreSQL and its IO manager."""
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
            "gold_exports": GoldExportsResource(summaries=settings.gold_exports),
            "dbt": marts_resource(),
        },
    )
