"""Reading silver history for gold: Arrow scans of the versions live in a window, with the
filter pushed into the Iceberg scan, for summaries whose past must not move when a row
changes later (MRR keeps the price a subscription had on each day)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import And, BooleanExpression, EqualTo
from pyiceberg.schema import Schema

from lakehouse_assets.history import VALID_FROM, VALID_TO
from lakehouse_assets.names import HISTORY, silver_identifier
from lakehouse_assets.silver.merge import IS_DELETED

__all__ = ["VALID_FROM", "VALID_TO", "has_history", "history_schema", "scan_history"]


def has_history(catalog: Catalog, table: str) -> bool:
    return catalog.table_exists(silver_identifier(table, HISTORY))


def history_schema(catalog: Catalog, table: str) -> Schema:
    return catalog.load_table(silver_identifier(table, HISTORY)).schema()


def scan_history(
    catalog: Catalog, table: str, columns: Sequence[str], row_filter: BooleanExpression
) -> pa.Table:
    """The live (not deleted) versions of ``silver.<table>`` matching ``row_filter``."""
    history = catalog.load_table(silver_identifier(table, HISTORY))
    expression = And(EqualTo(IS_DELETED, False), row_filter)
    rows = history.scan(row_filter=expression, selected_fields=tuple(columns)).to_arrow()
    fields = [
        f.with_type(pa.string()) if pa.types.is_large_string(f.type) else f for f in rows.schema
    ]
    return rows.cast(pa.schema(fields))
