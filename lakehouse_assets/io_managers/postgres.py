"""Postgres IO manager: Arrow tables in and out of ``<schema>.<asset name>`` (gold).

A thin Dagster layer over ``lakehouse_assets.postgres.tables``, which does the
work: writing an output evolves the table's schema in its own short transaction,
then replaces the output's partitions (all rows when the asset is unpartitioned)
with DELETE + COPY in one transaction, so readers see the old rows or the new
ones, never a mix. Loading an input returns an Arrow table, filtered to the
partitions the downstream asset asks for.

Asset definition metadata that the IO manager reads:

``primary_key``       list of column names (the table's PRIMARY KEY)
``partition_column``  the column that holds the partition (a date for daily
                      partitions); required for partitioned assets
"""

import dagster as dg
import pyarrow as pa

from lakehouse_assets.names import PARTITION_COLUMN_METADATA, PRIMARY_KEY_METADATA
from lakehouse_assets.postgres import PostgresResource
from lakehouse_assets.postgres.tables import (
    GoldSchemaError,
    PartitionFilter,
    arrow_type,
    column_types,
    count_rows,
    ensure_table,
    postgres_type,
    read_rows,
    replace_rows,
    window_bounds,
)


def _partition_filter(
    context: dg.OutputContext | dg.InputContext,
    column: str | None,
    column_type: pa.DataType | None,
) -> PartitionFilter | None:
    """The rows of the context's partitions (None when the asset is unpartitioned)."""
    if not context.has_asset_partitions:
        return None
    if not column:
        raise GoldSchemaError(
            f"{context.asset_key.to_user_string()} is partitioned: declare the column that holds "
            f"the partition as definition metadata {PARTITION_COLUMN_METADATA!r}"
        )
    if not isinstance(context.asset_partitions_def, dg.TimeWindowPartitionsDefinition):
        return PartitionFilter(column, keys=tuple(context.asset_partition_keys))
    window = context.asset_partitions_time_window
    start, end = window_bounds(column_type or pa.date32(), window.start, window.end)
    return PartitionFilter(column, start=start, end=end)


def _column_schema(schema: pa.Schema, primary_key: list[str]) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                field.name,
                postgres_type(field.type),
                constraints=dg.TableColumnConstraints(
                    nullable=field.name not in primary_key, unique=primary_key == [field.name]
                ),
            )
            for field in schema
        ]
    )


class PostgresIOManager(dg.ConfigurableIOManager):
    """Stores Arrow outputs as PostgreSQL tables ``<schema>.<last part of the asset key>``."""

    postgres: dg.ResourceDependency[PostgresResource]
    schema_name: str = "gold"

    def _table(self, asset_key: dg.AssetKey) -> str:
        return asset_key.path[-1]

    def handle_output(self, context: dg.OutputContext, obj: pa.Table) -> None:
        if not isinstance(obj, pa.Table):
            raise TypeError(
                f"{context.asset_key.to_user_string()}: the Postgres IO manager stores pyarrow "
                f"Tables, got {type(obj).__name__}"
            )
        metadata = context.definition_metadata or {}
        primary_key = list(metadata.get(PRIMARY_KEY_METADATA) or [])
        column = metadata.get(PARTITION_COLUMN_METADATA)
        table = self._table(context.asset_key)
        partition = _partition_filter(
            context, column, obj.schema.field(column).type if column in obj.column_names else None
        )
        with self.postgres.connect() as connection:
            change = ensure_table(connection, self.schema_name, table, obj.schema, primary_key)
            result = replace_rows(connection, self.schema_name, table, obj, partition)
            total_rows = count_rows(connection, self.schema_name, table)
        if change.added_columns:
            context.log.info(
                f"{self.schema_name}.{table}: added column(s) {', '.join(change.added_columns)}"
            )
        entry = {
            "dagster/relation_identifier": f"{self.schema_name}.{table}",
            "dagster/row_count": total_rows,
            "dagster/partition_row_count": result.inserted,
            "rows_written": result.inserted,
            "rows_replaced": result.deleted,
            "write_seconds": round(result.seconds, 3),
            "dagster/column_schema": _column_schema(obj.schema, primary_key),
        }
        if partition is None:
            entry.pop("dagster/partition_row_count")
        if change.added_columns:
            entry["added_columns"] = list(change.added_columns)
        context.add_output_metadata(entry)

    def load_input(self, context: dg.InputContext) -> pa.Table:
        upstream = context.upstream_output
        metadata = (upstream.definition_metadata if upstream is not None else None) or {}
        table = self._table(context.asset_key)
        with self.postgres.connect() as connection:
            column = metadata.get(PARTITION_COLUMN_METADATA)
            column_type = None
            if column:
                types = column_types(connection, self.schema_name, table)
                column_type = arrow_type(types[column]) if column in types else None
            partition = _partition_filter(context, column, column_type)
            return read_rows(connection, self.schema_name, table, partition)
