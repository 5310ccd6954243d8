"""silver/<table>: the current state of each source table, merged from its bronze days.

One daily-partitioned asset per contract table. A run for days D1..Dn (one
run, whatever the range) merges those days' changes in one Iceberg commit.

Bronze is a dependency, not an input: the engine reads the partition's DMS files
itself. Two engines give the same table: ``arrow`` (default; pyarrow + pyiceberg in
the step's process, writer.py) and ``spark`` (spark/engine.py: Spark reads the files
and runs ``MERGE INTO``). ``LAKEHOUSE_ENGINE`` sets the default when the definitions
load; run config ``ops: {"silver__<table>": {config: {engine: spark}}}`` picks one per
asset and run. The asset is the same whichever engines are installed.
"""

# No ``from __future__ import annotations``: Dagster reads the config class from the
# function's annotations at definition time.
import os
from datetime import UTC, date, datetime

import dagster as dg
from pydantic import Field

from lakehouse_assets.contracts import Contracts, DmsSettings, TableContract
from lakehouse_assets.names import (
    SPARK_RESOURCE_KEY,
    TOUCHED_DATES_METADATA,
    bronze_asset_key,
    silver_asset_key,
    silver_pool,
)
from lakehouse_assets.resources import IcebergCatalogResource, LakeResource
from lakehouse_assets.silver.apply import RunSettings, apply_days
from lakehouse_assets.silver.ledger import DEFAULT_LEDGER_RETENTION_DAYS
from lakehouse_assets.silver.result import MergeResult
from lakehouse_assets.silver.tables import rejects_identifier, table_identifier

ENGINE_VAR = "LAKEHOUSE_ENGINE"
ENGINES = ("arrow", "spark")


class SilverMergeConfig(dg.Config):
    engine: str = Field(
        default="",
        description=(
            f"'arrow' or 'spark'; empty: {ENGINE_VAR} when the definitions loaded (default arrow)"
        ),
    )
    reapply: bool = Field(
        default=False,
        description=(
            "Read every file of the range again, applied or not, and let a change replace a "
            "stored row at its own position too: a new column or a fixed typing rule then "
            "reaches rows already merged (a backfill after a contract change)."
        ),
    )


def default_engine() -> str:
    engine = os.environ.get(ENGINE_VAR, "").strip().lower() or "arrow"
    if engine not in ENGINES:
        raise ValueError(f"{ENGINE_VAR}={engine!r}: choose one of {', '.join(ENGINES)}")
    return engine


def build_silver_assets(
    contracts: Contracts,
    partitions_def: dg.PartitionsDefinition,
    automation_condition: dg.AutomationCondition | None = None,
    ledger_retention_days: int = DEFAULT_LEDGER_RETENTION_DAYS,
) -> list[dg.AssetsDefinition]:
    engine = default_engine()
    return [
        _silver_asset(
            contract,
            contracts.dms,
            partitions_def,
            automation_condition,
            engine,
            ledger_retention_days,
        )
        for contract in contracts.tables.values()
    ]


def _silver_asset(
    contract: TableContract,
    dms: DmsSettings,
    partitions_def: dg.PartitionsDefinition,
    automation_condition: dg.AutomationCondition | None,
    default: str,
    ledger_retention_days: int,
) -> dg.AssetsDefinition:
    @dg.asset(
        key=silver_asset_key(contract.name),
        deps=[dg.AssetDep(bronze_asset_key(contract.name))],
        group_name="silver",
        partitions_def=partitions_def,
        # A backfill of any length is one run and one commit.
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=silver_pool(contract.name),
        automation_condition=automation_condition,
        kinds={"iceberg"},
        required_resource_keys={"iceberg", "lake", SPARK_RESOURCE_KEY},
        description=_description(contract) + f" Engine: {default} (run config 'engine' overrides).",
    )
    def silver(
        context: dg.AssetExecutionContext, config: SilverMergeConfig
    ) -> dg.MaterializeResult:
        iceberg: IcebergCatalogResource = context.resources.iceberg
        lake: LakeResource = context.resources.lake
        engine = _engine(config.engine, default)
        if engine == "spark":
            from lakehouse_assets.silver.spark.engine import unsupported_reason

            reason = unsupported_reason(contract)
            if reason:
                context.log.warning(
                    f"{table_identifier(contract)}: {reason}; merged with the arrow engine"
                )
                engine = "arrow"
        store = lake.store()
        days = [date.fromisoformat(key) for key in context.partition_keys]
        catalog = iceberg.catalog()
        run_engine = None
        if engine == "spark":
            from lakehouse_assets.silver.spark.engine import spark_engine

            spark = getattr(context.resources, SPARK_RESOURCE_KEY).spark_session
            run_engine = spark_engine(spark, store, lake.uri)
        result = apply_days(
            catalog,
            store,
            contract,
            dms,
            days,
            datetime.now(UTC),
            RunSettings(reapply=config.reapply, ledger_retention_days=ledger_retention_days),
            run_engine,
        )
        return _materialize_result(context, contract, result, engine)

    return silver


def _engine(requested: str, default: str) -> str:
    engine = (requested or default).strip().lower()
    if engine not in ENGINES:
        raise dg.Failure(f"engine {engine!r}: choose one of {', '.join(ENGINES)}")
    return engine


def _description(contract: TableContract) -> str:
    return (
        f"Current state of {contract.schema}.{contract.name} (Iceberg "
        f"{table_identifier(contract)}; live rows: WHERE NOT _is_deleted). "
        f"Rows that fail typing land in {rejects_identifier(contract)}."
    )


def _materialize_result(
    context: dg.AssetExecutionContext, contract: TableContract, result: MergeResult, engine: str
) -> dg.MaterializeResult:
    files = result.files
    context.log.info(
        f"{table_identifier(contract)}: {files.new} new, {files.changed} changed, "
        f"{files.already_applied} already applied, {files.quarantined} quarantined file(s); "
        f"{result.changes} changes -> {result.inserted} inserted, {result.updated} updated, "
        f"{result.deleted} deleted, {result.unchanged} unchanged ({result.redelivered} "
        f"redelivered), {result.rejected} rejected, {result.swept} removed by a reload; "
        f"{result.files_rewritten} data files rewritten ({engine} engine)"
    )
    for key, error in result.quarantined.items():
        context.log.warning(f"quarantined {key}: {error}")
    for key, extra in result.schema_drift.items():
        context.log.warning(f"schema drift in {key}: columns {extra} are not in the contract")
    return dg.MaterializeResult(
        metadata={
            "table": table_identifier(contract),
            "engine": engine,
            "changes": result.changes,
            "inserted": result.inserted,
            "updated": result.updated,
            "deleted": result.deleted,
            "unchanged": result.unchanged,
            "redelivered": result.redelivered,
            "rejected": result.rejected,
            "reload_removed_keys": result.swept,
            "files_new": files.new,
            "files_changed": files.changed,
            "files_already_applied": files.already_applied,
            "files_reapplied": files.reapplied,
            "files_quarantined": files.quarantined,
            "quarantined": dg.MetadataValue.json(result.quarantined),
            "schema_drift": dg.MetadataValue.json(result.schema_drift),
            "files_scanned": result.files_scanned,
            "files_rewritten": result.files_rewritten,
            "files_added": result.files_added,
            "snapshot_id": str(result.snapshot_id) if result.snapshot_id else None,
            "max_commit_ts": result.max_commit_ts.isoformat() if result.max_commit_ts else None,
            "commit_attempts": result.attempts,
            # Business dates of the changed rows, per date column: gold/refresh.py reads them.
            TOUCHED_DATES_METADATA: dg.MetadataValue.json(result.touched_dates),
        }
    )
