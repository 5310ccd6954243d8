"""silver/<table>: the current state of each source table, merged from its bronze days.

One daily-partitioned asset per contract table. A run for days D1..Dn (one
run, whatever the range) merges those days' changes in one Iceberg commit.
"""

from datetime import datetime, timezone

import dagster as dg
import pyarrow as pa

from lakehouse_assets.bronze.assets import bronze_asset_key
from lakehouse_assets.contracts import Contracts, TableContract
from lakehouse_assets.resources import ContractsResource, IcebergCatalogResource
from lakehouse_assets.silver.tables import rejects_identifier, table_identifier
from lakehouse_assets.silver.writer import merge_changes


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
) -> list[dg.AssetsDefinition]:
    return [
        _silver_asset(contract, partitions_def, automation_condition)
        for contract in contracts.tables.values()
    ]


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
        description=(
            f"Current state of {contract.schema}.{contract.name} (Iceberg "
            f"{table_identifier(contract)}; live rows: WHERE NOT _is_deleted). "
            f"Rows that fail typing land in {rejects_identifier(contract)}."
        ),
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
        context.log.info(
            f"{table_identifier(contract)}: {result.changes} changes -> {result.inserted} inserted, "
            f"{result.updated} updated, {result.deleted} deleted, {result.stale} unchanged (stale), "
            f"{result.rejected} rejected; {result.files_rewritten} files rewritten"
        )
        return dg.MaterializeResult(
            metadata={
                "table": table_identifier(contract),
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

    return silver
