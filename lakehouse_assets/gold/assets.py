"""gold/<summary>: business summaries in PostgreSQL, computed with DuckDB over silver.

Daily-partitioned summaries are keyed by business date (the day an order was
created, an event occurred, ...). A run for days D1..Dn is one run (single-run
backfill policy): one scan of silver for the window, one SQL query, one
transaction that replaces those days in PostgreSQL (Postgres IO manager), and, for the
summaries ``LAKEHOUSE_GOLD_EXPORTS`` names, one Iceberg commit that replaces the same days
of ``gold.<summary>`` in the lakehouse catalog (gold/exports.py) before PostgreSQL's.
"""

from datetime import timedelta

import dagster as dg

from lakehouse_assets.contracts import Contracts
from lakehouse_assets.gold.exports import GoldExportsResource, export_rows
from lakehouse_assets.gold.summaries import (
    DAY_COLUMN,
    GoldSummary,
    Window,
    compute_summary,
    summaries_for,
)
from lakehouse_assets.names import (
    GOLD_NAMESPACE,
    PARTITION_COLUMN_METADATA,
    POSTGRES_IO_MANAGER,
    PRIMARY_KEY_METADATA,
    REFRESH_REASON_TAG,
    gold_asset_key,
    silver_asset_key,
)
from lakehouse_assets.resources import IcebergCatalogResource


def build_gold_assets(
    contracts: Contracts, partitions_def: dg.PartitionsDefinition
) -> list[dg.AssetsDefinition]:
    summaries = summaries_for(frozenset(contracts.tables))
    names = frozenset(summary.name for summary in summaries)
    return [_gold_asset(summary, partitions_def, names) for summary in summaries]


def _gold_asset(
    summary: GoldSummary, partitions_def: dg.PartitionsDefinition, names: frozenset[str]
) -> dg.AssetsDefinition:
    metadata: dict[str, object] = {
        PRIMARY_KEY_METADATA: list(summary.primary_key),
        "sql": dg.MetadataValue.md(f"```sql\n{summary.sql_text}\n```"),
        "dagster/relation_identifier": f"{GOLD_NAMESPACE}.{summary.name}",
    }
    if summary.partitioned:
        metadata[PARTITION_COLUMN_METADATA] = DAY_COLUMN

    @dg.asset(
        key=gold_asset_key(summary.name),
        deps=[silver_asset_key(table) for table in summary.silver_tables],
        group_name="gold",
        partitions_def=partitions_def if summary.partitioned else None,
        # Any range of days is one run, one query and one PostgreSQL transaction; the
        # unpartitioned summaries say so too, so `--partition-range` can select them.
        backfill_policy=dg.BackfillPolicy.single_run(),
        io_manager_key=POSTGRES_IO_MANAGER,
        kinds={"duckdb", "postgres"},
        description=summary.description,
        metadata=metadata,
    )
    def gold(
        context: dg.AssetExecutionContext,
        iceberg: IcebergCatalogResource,
        gold_exports: GoldExportsResource,
    ):
        window = None
        if summary.partitioned:
            time_window = context.partition_time_window
            window = Window(time_window.start.date(), time_window.end.date())
        catalog = iceberg.catalog()
        rows, input_rows = compute_summary(summary, catalog, window)
        output_metadata: dict[str, object] = {"input_rows": dg.MetadataValue.json(input_rows)}
        if gold_exports.exported(summary.name, names):
            days = (DAY_COLUMN, window.start, window.end) if window is not None else None
            export = export_rows(catalog, summary.name, rows, days)
            output_metadata["export_table"] = export.identifier
            output_metadata["export_snapshot_id"] = str(export.snapshot_id)
            output_metadata["export_commit_attempts"] = export.commit_attempts
        if window is not None:
            output_metadata["days"] = (
                f"{window.start.isoformat()}...{(window.end - timedelta(days=1)).isoformat()}"
            )
        reason = context.run.tags.get(REFRESH_REASON_TAG)
        if reason:
            output_metadata["refresh_reason"] = reason
        context.add_output_metadata(output_metadata)
        return rows

    return gold
