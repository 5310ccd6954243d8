"""Names shared across layers: asset keys, pools, run tags, metadata keys, table names.

The bottom of the layer order (``LAYERS``): it imports nothing of the project, so
every layer can use it. A name that two layers must spell the same way lives here.
"""

from __future__ import annotations

import dagster as dg

# The project's packages and top-level modules, from the bottom up: a module may import
# only from its own layer and the layers before it (test_layers.py enforces it).
LAYERS = (
    "names",
    "contracts",
    "settings",
    "dms",
    "lake",
    "postgres",
    "resources",
    "bronze",
    "io_managers",
    "silver",
    "history",
    "gold",
    "marts",
    "sensors",
    "automation",
    "demo",
    "definitions",
)

# --------------------------------------------------------------------------- asset keys

BRONZE = "bronze"
SILVER = "silver"
GOLD = "gold"
MARTS = "marts"


def bronze_asset_key(table: str) -> dg.AssetKey:
    return dg.AssetKey([BRONZE, table])


def silver_asset_key(table: str) -> dg.AssetKey:
    return dg.AssetKey([SILVER, table])


def gold_asset_key(name: str) -> dg.AssetKey:
    return dg.AssetKey([GOLD, name])


def silver_pool(table: str) -> str:
    """Concurrency pool of everything that commits to a table's silver tables (merges,
    maintenance): at most one at a time with the instance's ``concurrency: pools:
    default_limit: 1``; different tables run in parallel."""
    return f"silver_{table}"


def silver_op_name(table: str) -> str:
    """The op of ``silver/<table>`` (run config ``ops: {silver__<table>: ...}``)."""
    return f"{SILVER}__{table}"


# --------------------------------------------------------------------------- Iceberg tables

CATALOG_NAME = "lakehouse"  # pyiceberg's and Spark's catalogs must share it to share tables
SILVER_NAMESPACE = "silver"
GOLD_NAMESPACE = "gold"


def silver_identifier(table: str, side: str = "") -> str:
    """``silver.<table>``, or a side table ``silver.<table>__<side>`` (rejects, applied, ...)."""
    return f"{SILVER_NAMESPACE}.{table}__{side}" if side else f"{SILVER_NAMESPACE}.{table}"


REJECTS = "rejects"
APPLIED = "applied"
QUARANTINE = "quarantine"
HISTORY = "history"

# Snapshot summary property of silver commits: the newest source commit applied so far.
MAX_COMMIT_TS_PROPERTY = "lakehouse.max-commit-ts"
# Table property of silver.<table>: tombstones positioned before this time (ISO, UTC) were
# purged by maintenance, so a change positioned before it can no longer be ordered and is
# rejected instead of applied.
TOMBSTONE_HORIZON_PROPERTY = "lakehouse.tombstone-horizon"

# --------------------------------------------------------------------------- resources, IO managers

BRONZE_IO_MANAGER = "bronze_io_manager"
POSTGRES_IO_MANAGER = "postgres_io_manager"
SPARK_RESOURCE_KEY = "pyspark"

# --------------------------------------------------------------------------- run tags

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
TRIGGER_TAG = "lakehouse/trigger"
NEW_FILES_TAG = "lakehouse/new_files"
REFRESH_REASON_TAG = "lakehouse/refresh_reason"

# --------------------------------------------------------------------------- metadata keys

# Silver materializations: per date column, the business dates the merge changed (gold
# refresh reads it).
TOUCHED_DATES_METADATA = "touched_dates"
# Gold assets' definition metadata, read by the Postgres IO manager.
PRIMARY_KEY_METADATA = "primary_key"
PARTITION_COLUMN_METADATA = "partition_column"

# --------------------------------------------------------------------------- sensors, checks, jobs

LANDING_SENSOR_NAME = "dms_landing_sensor"
RUN_FAILURE_SENSOR_NAME = "lakehouse_run_failure_alert"
CHECK_FAILURE_SENSOR_NAME = "lakehouse_check_failure_alert"
AUTOMATION_SENSOR_NAME = "lakehouse_automation"
GOLD_REFRESH_SENSOR_NAME = "gold_refresh_sensor"
FRESHNESS_CHECK = "freshness"
QUARANTINE_CHECK = "quarantine_empty"
MAINTENANCE_JOB = "silver_maintenance"
