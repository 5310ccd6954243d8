"""Gold exports for external readers: a gold summary also as the Iceberg table ``gold.<name>``
in the catalog ``lakehouse``, beside silver.

Why Iceberg and not Parquet folders: a reader of a plain ``date=.../`` folder on S3 lists
whatever objects are there at that moment, so a rewrite shows half a partition unless every
reader honours a commit marker of ours. An Iceberg commit swaps the table's metadata
pointer at once: readers see the old partition or the new one, never a mix, with nothing
to honour but the table format that Athena, Trino, Spark, DuckDB and pyiceberg already read
through the same catalog (Glue, REST or SQL). A range of days is one commit, as it is one
PostgreSQL transaction.

The export is written in the gold asset's own run, from the same rows as the PostgreSQL
table, so the late-change refreshes of ``gold_refresh_sensor`` replace it too. Partitioned
summaries are partitioned by ``day`` (identity); a run replaces exactly its days (an
overwrite filtered to them: whole-file deletes plus the new files). Unpartitioned summaries
are replaced whole. Retention is gold's: every day is kept; the files of replaced
partitions stay referenced by older snapshots until snapshot expiry removes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import dagster as dg
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import (
    NamespaceAlreadyExistsError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, GreaterThanOrEqual, LessThan
from pyiceberg.table import Table

from lakehouse_assets.names import GOLD_NAMESPACE
from lakehouse_assets.silver.result import with_commit_retries

ALL = "all"
# Old metadata files are deleted on commit (a gold table is replaced many times a day).
EXPORT_TABLE_PROPERTIES = {
    "format-version": "2",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "100",
}


class GoldExportError(ValueError):
    """The export setting names a summary that does not exist."""


def export_identifier(name: str) -> str:
    return f"{GOLD_NAMESPACE}.{name}"


class GoldExportsResource(dg.ConfigurableResource):
    """Which gold summaries are also written as Iceberg tables ``gold.<name>``:
    ``all``, a comma-separated list of summary names, or empty for none
    (``LAKEHOUSE_GOLD_EXPORTS``)."""

    summaries: str = ""

    def exported(self, name: str, known: frozenset[str]) -> bool:
        """Whether summary ``name`` is exported; an unknown name in the setting is an error."""
        wanted = {part.strip() for part in self.summaries.split(",") if part.strip()}
        if wanted == {ALL}:
            return True
        unknown = sorted(wanted - known)
        if unknown:
            raise GoldExportError(
                f"gold exports {', '.join(unknown)}: no such summary (choose {ALL!r} or "
                f"names from {', '.join(sorted(known))})"
            )
        return name in wanted


@dataclass(frozen=True)
class ExportResult:
    identifier: str
    snapshot_id: int | None
    rows: int
    commit_attempts: int


def days_expression(column: str, start: date, end: date) -> BooleanExpression:
    """``start <= column < end`` on a date column (``end`` exclusive)."""
    return And(GreaterThanOrEqual(column, start.isoformat()), LessThan(column, end.isoformat()))


def _ensure_namespace(catalog: Catalog) -> None:
    try:
        catalog.create_namespace(GOLD_NAMESPACE)
    except NamespaceAlreadyExistsError:
        pass


def _load_or_create(
    catalog: Catalog, name: str, schema: pa.Schema, day_column: str | None
) -> Table:
    """The export table; created, partitioned by ``day_column``, in one commit."""
    identifier = export_identifier(name)
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        pass
    _ensure_namespace(catalog)
    try:
        with catalog.create_table_transaction(
            identifier, schema=schema, properties=EXPORT_TABLE_PROPERTIES
        ) as create:
            if day_column is not None:
                with create.update_spec() as spec:
                    spec.add_identity(day_column)
    except TableAlreadyExistsError:  # another run created it first
        pass
    return catalog.load_table(identifier)


def export_rows(
    catalog: Catalog,
    name: str,
    rows: pa.Table,
    days: tuple[str, date, date] | None,
) -> ExportResult:
    """Replace ``gold.<name>``'s rows of ``days`` (column, start, end exclusive) with ``rows``
    in one commit; ``days`` None: replace the whole table. New columns are added first."""

    def replace() -> tuple[int | None, int]:
        table = _load_or_create(catalog, name, rows.schema, days[0] if days else None)
        if _missing_columns(table, rows.schema):
            with table.update_schema() as update:
                update.union_by_name(rows.schema)
            table = catalog.load_table(export_identifier(name))
        where = days_expression(*days) if days else AlwaysTrue()
        table.overwrite(rows, overwrite_filter=where)  # one commit: delete the days, append
        snapshot = table.current_snapshot()  # the commit updated ``table`` in place
        return (snapshot.snapshot_id if snapshot else None), rows.num_rows

    (snapshot_id, written), attempts = with_commit_retries(replace)
    return ExportResult(export_identifier(name), snapshot_id, written, attempts)


def _missing_columns(table: Table, schema: pa.Schema) -> list[str]:
    present = {field.name for field in table.schema().fields}
    return [name for name in schema.names if name not in present]
