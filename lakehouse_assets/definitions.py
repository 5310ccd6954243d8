"""The one Definitions of the project: every asset, check, sensor, resource and IO manager."""

from __future__ import annotations

import dagster as dg

from lakehouse_assets.automation import (
    AutomationSettings,
    build_automation_sensor,
    build_freshness_checks,
    follow_upstream,
)
from lakehouse_assets.bronze.assets import BRONZE_IO_MANAGER, build_bronze_assets
from lakehouse_assets.gold.definitions import build_gold_definitions
from lakehouse_assets.io_managers.bronze import BronzeIOManager
from lakehouse_assets.resources import ContractsResource, IcebergCatalogResource, LakeResource
from lakehouse_assets.sensors import (
    LandingSettings,
    build_dms_landing_sensor,
    build_run_failure_sensor,
    webhook_from_env,
)
from lakehouse_assets.settings import settings_from_env
from lakehouse_assets.silver.assets import build_silver_assets
from lakehouse_assets.silver.checks import build_silver_checks
from lakehouse_assets.silver.spark_session import lakehouse_spark_resource


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
    automation = AutomationSettings.from_env()
    # dagster-pyspark's resource for the silver Spark engine (None without pyspark installed).
    spark = lakehouse_spark_resource(settings.catalog_uri, settings.lake_uri)
    core = dg.Definitions(
        assets=[
            *build_bronze_assets(settings.contracts, daily),
            *build_silver_assets(
                settings.contracts, daily, automation_condition=follow_upstream(),
                spark_resource_key="pyspark" if spark else None,
            ),
        ],
        asset_checks=[
            *build_silver_checks(settings.contracts),
            *build_freshness_checks(settings.contracts, automation),
        ],
        sensors=[
            build_dms_landing_sensor(settings.contracts, daily, LandingSettings.from_env()),
            build_run_failure_sensor(webhook_from_env()),
            build_automation_sensor(automation),
        ],
        resources={
            "lake": lake,
            "contracts": contracts,
            "iceberg": IcebergCatalogResource(uri=settings.catalog_uri, lake_uri=settings.lake_uri),
            BRONZE_IO_MANAGER: BronzeIOManager(lake=lake, contracts=contracts),
            **({"pyspark": spark} if spark else {}),
        },
    )
    # Gold summaries, dbt marts, the gold refresh sensor, PostgreSQL and its IO manager.
    return dg.Definitions.merge(core, build_gold_definitions(settings, daily))
