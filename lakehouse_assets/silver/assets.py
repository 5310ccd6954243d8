"""silver/<table>: the current state of each source table, merged from its bronze days.

One daily-partitioned asset per contract table. A run for days D1..Dn (one
run, whatever the range) merges those days' changes in one Iceberg commit.

Two engines give the same table: ``arrow`` (default; pyarrow + pyiceberg in the
step's process) and ``spark`` (spark_engine.py: Spark reads the DMS files and
runs ``MERGE INTO``). ``LAKEHOUSE_ENGINE`` sets the default when the definitions
load; run config ``ops: {"silver__<table>": {config: {engine: spark}}}`` picks one
per asset and run. The Spark session comes from dagster-pyspark's resource
(``pyspark``), started only when a step uses it.
"""

import os
from datetime import date, datetime, timezone
from typing import Any

import dagster as dg
import pyarrow as pa
from pydantic import Field

from lakehouse_assets.bronze.assets import bronze_asset_key
from lakehouse_assets.bronze.files import list_partition_files, read_partition_files
from lakehouse_assets.contracts import Contracts, TableContract
from lakehouse_assets.resources import ContractsResource, IcebergCatalogResource, LakeResource
from lakehouse_assets.silver.tables import rejects_identifier, table_identifier
from lakehouse_assets.silver.writer import MergeResult, merge_changes

ENGINE_VAR = "LAKEHOUSE_ENGINE"
ENGINES = ("arrow", "spark")
SPARK_RESOURCE_KEY = "pyspark"


class SilverMergeConfig(dg.Config):
    engine: str = Field(
        default="",
        description=f"'arrow' or 'spark'; empty: {ENGINE_VAR} when the definitions loaded (default arrow)",
    )


def default_engine() -> str:
    engine = os.environ.get(ENGINE_VAR, "").strip().lower() or "arrow"
    if engine not in ENGINES:
        raise ValueError(f"{ENGINE_VAR}={engine!r}: choose one of {', '.join(ENGINES)}")
    return engine


def silver_asset_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["silver", table])


def silver_pool(table: str) -> str:
    """Concurrency pool of a table's merges: at most one at a time with the instance's
    ``concurrency: pools: default_limit: 1``; different tables run in parallel."""
    return f"silver_{table}"


def build_silver_assets(
    contracts: Contracts,
    partitions_def: dg.PartitionsDefinition,
    automation_condition: dg.AutomationCondition | None = None,
    spark_resource_key: str | None = None,
) -> list[dg.AssetsDefinition]:
    """``spark_resource_key``: the dagster-pyspark resource (definitions.py registers it when
    pyspark is installed); without it the assets run the arrow engine only."""
    engine = default_engine()
    if engine == "spark" and spark_resource_key is None:
        raise ValueError(
            f"{ENGINE_VAR}=spark but pyspark/dagster-pyspark are not installed: run scripts/install_spark.sh"
        )
    if spark_resource_key is not None:
        return [
            _silver_asset_with_engines(contract, partitions_def, automation_condition, engine, spark_resource_key)
            for contract in contracts.tables.values()
        ]
    return [
        _silver_asset(contract, partitions_def, automation_condition)
        for contract in contracts.tables.values()
    ]


def _silver_asset_with_engines(
    contract: TableContract,
    partitions_def: dg.PartitionsDefinition,
    automation_condition: dg.AutomationCondition | None,
    default: str,
    spark_resource_key: str,
) -> dg.AssetsDefinition:
    """The silver asset with both engines. Bronze is a dependency, not an input: the arrow
    engine reads the partition's files as the bronze IO manager does, the Spark engine hands
    their URIs to Spark (which must read them itself, not receive them from this process)."""

    @dg.asset(
        key=silver_asset_key(contract.name),
        deps=[dg.AssetDep(bronze_asset_key(contract.name))],
        group_name="silver",
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=silver_pool(contract.name),
        automation_condition=automation_condition,
        kinds={"iceberg"},
        required_resource_keys={"iceberg", "contracts", "lake", spark_resource_key},
        description=_description(contract) + f" Engine: {default} (run config 'engine' overrides).",
    )
    def silver(context: dg.AssetExecutionContext, config: SilverMergeConfig) -> dg.MaterializeResult:
        from lakehouse_assets.silver.spark_engine import (
            BronzeFileRef,
            spark_merge_changes,
            spark_uri,
            unsupported_reason,
        )

        iceberg: IcebergCatalogResource = context.resources.iceberg
        contracts: ContractsResource = context.resources.contracts
        lake: LakeResource = context.resources.lake
        engine = _engine(config.engine, default)
        reason = unsupported_reason(contract) if engine == "spark" else None
        if reason:
            context.log.warning(f"{table_identifier(contract)}: {reason}; merged with the arrow engine")
            engine = "arrow"
        dms = contracts.load().dms
        store = lake.store()
        days = [date.fromisoformat(key) for key in context.partition_keys]
        files = list_partition_files(store, dms, contract, days)
        ingested_at = datetime.now(timezone.utc)
        context.log.info(f"{len(files)} DMS files of {contract.name} for {len(days)} day(s); engine {engine}")
        if engine == "spark":
            spark: Any = getattr(context.resources, spark_resource_key).spark_session
            refs = [BronzeFileRef(file.info.key, spark_uri(lake.uri, file.info.key)) for file in files]
            result = spark_merge_changes(
                spark, iceberg.catalog(), contract, dms, refs, ingested_at,
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
            "touched_dates": dg.MetadataValue.json(result.touched_dates),
        }
    )


def _silver_asset(
    contract: TableContract,
    partitions_def: dg.PartitionsDefinition,
    automation_condition: dg.AutomationCondition | None = None,
) -> dg.AssetsDefinition:
    @dg.asset(
        key=silver_asset_key(contract.name),
        ins={"changes": dg.AssetIn(key=bronze_asset_key(contract.name))},
        group_name="silver",
        partitions_def=partitions_def,
        # A backfill of any length is one run and one commit.
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=silver_pool(contract.name),
        automation_condition=automation_condition,
        kinds={"iceberg"},
        description=_description(contract),
    )
    def silver(
        context: dg.AssetExecutionContext,
        changes: pa.Table,
        iceberg: IcebergCatalogResource,
        contracts: ContractsResource,
    ) -> dg.MaterializeResult:
        result = merge_changes(
            iceberg.catalog(),
            contract,
            contracts.load().dms,
            changes,
            ingested_at=datetime.now(timezone.utc),
        )
        return _materialize_result(context, contract, result, "arrow")

    return silver
