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

from lakehouse_assets.bronze.files import list_partition_files, read_partition_files
from lakehouse_assets.contracts import Contracts, DmsSettings, TableContract
from lakehouse_assets.names import (
    SPARK_RESOURCE_KEY,
    TOUCHED_DATES_METADATA,
    bronze_asset_key,
    silver_asset_key,
    silver_pool,
)
from lakehouse_assets.resources import IcebergCatalogResource, LakeResource
from lakehouse_assets.silver.result import MergeResult
from lakehouse_assets.silver.tables import rejects_identifier, table_identifier
from lakehouse_assets.silver.writer import merge_changes

ENGINE_VAR = "LAKEHOUSE_ENGINE"
ENGINES = ("arrow", "spark")


class SilverMergeConfig(dg.Config):
    engine: str = Field(
        default="",
        description=(
            f"'arrow' or 'spark'; empty: {ENGINE_VAR} when the definitions loaded (default arrow)"
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
) -> list[dg.AssetsDefinition]:
    engine = default_engine()
    return [
        _silver_asset(contract, contracts.dms, partitions_def, automation_condition, engine)
        for contract in contracts.tables.values()
    ]


def _silver_asset(
    contract: TableContract,
    dms: DmsSettings,
    partitions_def: dg.PartitionsDefinition,
    automation_condition: dg.AutomationCondition | None,
    default: str,
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
        files = list_partition_files(store, dms, contract, days)
        ingested_at = datetime.now(UTC)
        context.log.info(
            f"{len(files)} DMS files of {contract.name} for {len(days)} day(s); engine {engine}"
        )
        if engine == "spark":
            from lakehouse_assets.silver.spark.engine import (
                BronzeFileRef,
                spark_merge_changes,
                spark_uri,
            )

            spark = getattr(context.resources, SPARK_RESOURCE_KEY).spark_session
            refs = [
                BronzeFileRef(file.info.key, spark_uri(lake.uri, file.info.key)) for file in files
            ]
            result = spark_merge_changes(
                spark,
                iceberg.catalog(),
                contract,
                dms,
                refs,
                ingested_at,
                read_bytes=lambda ref: store.get(ref.key),
            )
        else:
            raw = read_partition_files(store, dms, contract, files)
            result = merge_changes(iceberg.catalog(), contract, dms, raw, ingested_at=ingested_at)
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
    context.log.info(
        f"{table_identifier(contract)}: {result.changes} changes -> {result.inserted} inserted, "
        f"{result.updated} updated, {result.deleted} deleted, {result.stale} unchanged (stale), "
        f"{result.rejected} rejected; {result.files_rewritten} files rewritten ({engine} engine)"
    )
    return dg.MaterializeResult(
        metadata={
            "table": table_identifier(contract),
            "engine": engine,
            "changes": result.changes,
            "inserted": result.inserted,
            "updated": result.updated,
            "deleted": result.deleted,
            "unchanged": result.stale,
            "rejected": result.rejected,
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
