"""Reading silver for gold: Arrow scans of live rows, with the partition's filter pushed
into the Iceberg scan (so pyiceberg prunes by partition spec and min/max statistics and
reads only the files that can hold matching rows)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    LessThan,
)
from pyiceberg.schema import Schema
from pyiceberg.types import DateType, TimestamptzType

from lakehouse_assets.names import silver_identifier
from lakehouse_assets.silver.merge import IS_DELETED


class SilverTableMissing(LookupError):
    """Gold asked for a silver table that no silver run has created yet."""


def day_bound(schema: Schema, column: str, day: date) -> str:
    """Midnight (UTC) of ``day`` as an Iceberg literal for ``column``'s type."""
    field_type = schema.find_field(column).field_type
    if isinstance(field_type, DateType):
        return day.isoformat()
    if isinstance(field_type, TimestamptzType):
        return f"{day.isoformat()}T00:00:00+00:00"
    return f"{day.isoformat()}T00:00:00"


def days_filter(schema: Schema, column: str, start: date, end: date) -> BooleanExpression:
    """``start <= column < end`` (``end`` exclusive), typed for the column."""
    return And(
        GreaterThanOrEqual(column, day_bound(schema, column, start)),
        LessThan(column, day_bound(schema, column, end)),
    )


def scan_live(
    catalog: Catalog,
    table: str,
    columns: Sequence[str] | None = None,
    row_filter: BooleanExpression | None = None,
) -> pa.Table:
    """Live rows (``NOT _is_deleted``) of ``silver.<table>`` matching ``row_filter``."""
    identifier = silver_identifier(table)
    if not catalog.table_exists(identifier):
        raise SilverTableMissing(
            f"{identifier} does not exist yet: materialize silver/{table} first"
        )
    iceberg_table = catalog.load_table(identifier)
    expression = And(EqualTo(IS_DELETED, False), row_filter or AlwaysTrue())
    selected = tuple(columns) if columns else ("*",)
    return _plain_strings(
        iceberg_table.scan(row_filter=expression, selected_fields=selected).to_arrow()
    )


def live_schema(catalog: Catalog, table: str) -> Schema:
    identifier = silver_identifier(table)
    if not catalog.table_exists(identifier):
        raise SilverTableMissing(
            f"{identifier} does not exist yet: materialize silver/{table} first"
        )
    return catalog.load_table(identifier).schema()


def _plain_strings(table: pa.Table) -> pa.Table:
    """Iceberg scans return large_string; plain strings keep downstream types stable."""
    fields = [
        field.with_type(pa.string()) if pa.types.is_large_string(field.type) else field
        for field in table.schema
    ]
    return table.cast(pa.schema(fields))
