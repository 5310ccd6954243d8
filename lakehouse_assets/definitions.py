"""The one Definitions of the project: every asset, resource and IO manager."""

from __future__ import annotations

import dagster as dg

from lakehouse_assets.bronze.assets import BRONZE_IO_MANAGER, build_bronze_assets
from lakehouse_assets.io_managers.bronze import BronzeIOManager
from lakehouse_assets.resources import ContractsResource, IcebergCatalogResource, LakeResource
from lakehouse_assets.settings import settings_from_env
from lakehouse_assets.silver.assets import build_silver_assets
from lakehouse_assets.silver.checks import build_silver_checks


@dg.definitions
def defs() -> dg.Definitions:
    settings = settings_from_env()
    daily = dg.DailyPartitionsDefinition(
        start_date=settings.start_date.isoformat(),
        # Today's partition exists while its files are still landing.
        end_offset=1,
    )
    lake = LakeResource(uri=settings.lake_uri)
    contracts = ContractsResource(path=settings.contracts_path)
    return dg.Definitions(
        assets=[
            *build_bronze_assets(settings.contracts, daily),
            *build_silver_assets(settings.contracts, daily),
        ],
        asset_checks=build_silver_checks(settings.contracts),
        resources={
            "lake": lake,
            "contracts": contracts,
            "iceberg": IcebergCatalogResource(uri=settings.catalog_uri, lake_uri=settings.lake_uri),
            BRONZE_IO_MANAGER: BronzeIOManager(lake=lake, contracts=contracts),
        },
    )
