"""PostgreSQL tables from Arrow: create or evolve a table, replace rows, read rows (no Dagster).

Writing goes in two steps:

1. Schema (``ensure_table``), in its own short transaction (DDL locks out readers,
   so it is kept apart from the data): create the table from the Arrow schema with
   the given primary key, add columns new in the data, and refuse a type the
   existing column cannot hold losslessly, naming column and types.
2. Data (``replace_rows``), in one transaction: delete the rows of the partitions
   being written (all rows without a ``PartitionFilter``), then bulk-load the new
   rows with ``COPY ... FROM STDIN``. PostgreSQL's MVCC means a dashboard reading
   at the same time sees the old rows or the new ones, never a mix, and is never
   blocked; a failure rolls everything back. (A whole table is not swapped by
   ``DROP``/``RENAME``: the dbt views on the gold tables depend on it, and a reader
   waiting on a dropped table fails.)

``read_rows`` returns a table (or its partitions) as Arrow, typed from the table.
Identifiers are always quoted with ``psycopg2.sql.Identifier``; values travel as
query parameters or COPY data, never pasted into SQL text.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from psycopg2 import sql
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor

COPY_BATCH_ROWS = 200_000


class GoldSchemaError(ValueError):
    """An output does not fit the existing table (type change, key change, missing column)."""


# --------------------------------------------------------------------------- types


def postgres_type(arrow_type: pa.DataType) -> str:
    """The PostgreSQL column type for an Arrow type, spelled as ``format_type`` spells it."""
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if (
        pa.types.is_int8(arrow_type)
        or pa.types.is_int16(arrow_type)
        or pa.types.is_uint8(arrow_type)
    ):
        return "smallint"
    if pa.types.is_int32(arrow_type) or pa.types.is_uint16(arrow_type):
        return "integer"
    if pa.types.is_int64(arrow_type) or pa.types.is_uint32(arrow_type):
        return "bigint"
    if pa.types.is_uint64(arrow_type):
        return "numeric(20,0)"
    if pa.types.is_float16(arrow_type) or pa.types.is_float32(arrow_type):
        return "real"
    if pa.types.is_float64(arrow_type):
        return "double precision"
    if pa.types.is_decimal(arrow_type):
        return f"numeric({arrow_type.precision},{arrow_type.scale})"
    if (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_string_view(arrow_type)
    ):
        return "text"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp with time zone" if arrow_type.tz else "timestamp without time zone"
    if pa.types.is_time(arrow_type):
        return "time without time zone"
    if pa.types.is_dictionary(arrow_type):
        return postgres_type(arrow_type.value_type)
    raise GoldSchemaError(f"no PostgreSQL column type for Arrow type {arrow_type}")


def arrow_type(postgres: str) -> pa.DataType:
    """The Arrow type to load a column of this PostgreSQL type (``format_type`` spelling)."""
    simple = {
        "boolean": pa.bool_(),
        "smallint": pa.int16(),
        "integer": pa.int32(),
        "bigint": pa.int64(),
        "real": pa.float32(),
        "double precision": pa.float64(),
        "text": pa.string(),
        "character varying": pa.string(),
        "date": pa.date32(),
        "timestamp without time zone": pa.timestamp("us"),
        "timestamp with time zone": pa.timestamp("us", tz="UTC"),
        "time without time zone": pa.time64("us"),
        "jsonb": pa.string(),
        "json": pa.string(),
        "uuid": pa.string(),
    }
    if postgres in simple:
        return simple[postgres]
    if postgres.startswith("character varying"):
        return pa.string()
    if postgres.startswith("numeric("):
        precision, scale = (int(part) for part in postgres[len("numeric(") : -1].split(","))
        return pa.decimal128(precision, scale)
    if postgres == "numeric":
        return pa.float64()
    raise GoldSchemaError(f"no Arrow type for PostgreSQL type {postgres!r}")


_INTEGER_WIDTH = {"smallint": 2, "integer": 4, "bigint": 8}
_FLOAT_WIDTH = {"real": 4, "double precision": 8}


def _numeric(spelling: str) -> tuple[int, int] | None:
    if not spelling.startswith("numeric("):
        return None
    precision, scale = spelling[len("numeric(") : -1].split(",")
    return int(precision), int(scale)


def fits(new: str, existing: str) -> bool:
    """Can every value of PostgreSQL type ``new`` be stored losslessly in ``existing``?"""
    if new == existing:
        return True
    if new in _INTEGER_WIDTH and existing in _INTEGER_WIDTH:
        return _INTEGER_WIDTH[new] <= _INTEGER_WIDTH[existing]
    if new in _FLOAT_WIDTH and existing in _FLOAT_WIDTH:
        return _FLOAT_WIDTH[new] <= _FLOAT_WIDTH[existing]
    new_numeric, existing_numeric = _numeric(new), _numeric(existing)
    if new_numeric and existing_numeric:
        (p1, s1), (p2, s2) = new_numeric, existing_numeric
        return s1 <= s2 and p1 - s1 <= p2 - s2
    if new in _INTEGER_WIDTH and existing_numeric:
        digits = {"smallint": 5, "integer": 10, "bigint": 19}[new]
        return existing_numeric[0] - existing_numeric[1] >= digits
    return False


# --------------------------------------------------------------------------- table layout


@dataclass(frozen=True)
class ExistingColumn:
    name: str
    type: str
    not_null: bool


def read_columns(cursor: Cursor, schema: str, table: str) -> list[ExistingColumn]:
    """The table's columns in order (empty when the table does not exist)."""
    cursor.execute(
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
        FROM pg_catalog.pg_attribute a
        JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """,
        (schema, table),
    )
    return [ExistingColumn(name, kind, not_null) for name, kind, not_null in cursor.fetchall()]


def read_primary_key(cursor: Cursor, schema: str, table: str) -> list[str]:
    cursor.execute(
        """
        SELECT a.attname
        FROM pg_catalog.pg_index i
        JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position) ON true
        JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
        WHERE n.nspname = %s AND c.relname = %s AND i.indisprimary
        ORDER BY k.position
        """,
        (schema, table),
    )
    return [row[0] for row in cursor.fetchall()]


def _qualified(schema: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def _lock(cursor: Cursor, *names: str) -> None:
    """Serialize writers of one table (or schema) across processes, until commit."""
    cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (".".join(names),))


@dataclass(frozen=True)
class SchemaChange:
    created: bool
    added_columns: tuple[str, ...]


def ensure_table(
    connection: Connection,
    schema: str,
    table: str,
    arrow_schema: pa.Schema,
    primary_key: Sequence[str],
) -> SchemaChange:
    """Create ``schema.table`` for ``arrow_schema`` or evolve it; commits (DDL only)."""
    wanted = {field.name: postgres_type(field.type) for field in arrow_schema}
    missing_key = [name for name in primary_key if name not in wanted]
    if missing_key:
        raise GoldSchemaError(
            f"{schema}.{table}: primary key column(s) {missing_key} are not in the output "
            f"(columns: {list(wanted)})"
        )
    try:
        with connection.cursor() as cursor:
            _lock(cursor, schema)
            cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            _lock(cursor, schema, table)
            existing = read_columns(cursor, schema, table)
            if not existing:
                columns = [
                    sql.SQL("{} {}{}").format(
                        sql.Identifier(name),
                        sql.SQL(kind),
                        sql.SQL(" NOT NULL") if name in primary_key else sql.SQL(""),
                    )
                    for name, kind in wanted.items()
                ]
                if primary_key:
                    columns.append(
                        sql.SQL("PRIMARY KEY ({})").format(
                            sql.SQL(", ").join(map(sql.Identifier, primary_key))
                        )
                    )
                cursor.execute(
                    sql.SQL("CREATE TABLE {} ({})").format(
                        _qualified(schema, table), sql.SQL(", ").join(columns)
                    )
                )
                connection.commit()
                return SchemaChange(created=True, added_columns=())

            current = {column.name: column for column in existing}
            problems = [
                f"column {name!r} is {current[name].type} in the table but the output has {kind}"
                for name, kind in wanted.items()
                if name in current and not fits(kind, current[name].type)
            ]
            problems += [
                f"column {column.name!r} is NOT NULL in the table but missing from the output"
                for column in existing
                if column.name not in wanted and column.not_null
            ]
            stored_key = read_primary_key(cursor, schema, table)
            if primary_key and list(primary_key) != stored_key:
                problems.append(
                    f"the primary key is {stored_key} in the table "
                    f"but {list(primary_key)} on the asset"
                )
            if problems:
                raise GoldSchemaError(
                    f"{schema}.{table}: the output does not fit the existing table: "
                    + "; ".join(problems)
                    + ". PostgreSQL columns are not retyped automatically: migrate the table "
                    "(ALTER TABLE ... ALTER COLUMN ... TYPE ...), or drop it and rematerialize "
                    "every partition of the asset."
                )
            added = [name for name in wanted if name not in current]
            for name in added:
                cursor.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                        _qualified(schema, table), sql.Identifier(name), sql.SQL(wanted[name])
                    )
                )
        connection.commit()
        return SchemaChange(created=False, added_columns=tuple(added))
    except BaseException:
        connection.rollback()
        raise


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class PartitionFilter:
    """Rows of some partitions: ``start <= column < end`` (time windows) or ``column IN keys``."""

    column: str
    start: date | datetime | None = None
    end: date | datetime | None = None
    keys: tuple[str, ...] | None = None

    def where(self) -> tuple[sql.Composable, tuple]:
        column = sql.Identifier(self.column)
        if self.keys is not None:
            return sql.SQL("{} = ANY(%s)").format(column), (list(self.keys),)
        return sql.SQL("{} >= %s AND {} < %s").format(column, column), (self.start, self.end)

    def outside(self, table: pa.Table) -> int:
        """How many rows of ``table`` do not belong to these partitions."""
        values = table[self.column]
        if self.keys is not None:
            inside = pc.is_in(
                pc.cast(values, pa.string()), value_set=pa.array(self.keys, pa.string())
            )
        else:
            start = pa.scalar(self.start, values.type)
            end = pa.scalar(self.end, values.type)
            inside = pc.and_(pc.greater_equal(values, start), pc.less(values, end))
        return table.num_rows - pc.sum(pc.fill_null(inside, False).cast(pa.int64())).as_py()


def window_bounds(column_type: pa.DataType, start: datetime, end: datetime) -> tuple:
    """A partition time window in the partition column's own type."""
    if pa.types.is_date(column_type):
        return start.date(), end.date()
    if pa.types.is_timestamp(column_type) and column_type.tz is None:
        return (
            start.astimezone(UTC).replace(tzinfo=None),
            end.astimezone(UTC).replace(tzinfo=None),
        )
    return start, end


def copy_rows(cursor: Cursor, schema: str, table: str, data: pa.Table) -> None:
    """Bulk-load ``data`` with ``COPY ... FROM STDIN`` (CSV), in batches of bounded memory.

    Arrow's CSV writer quotes every string and writes NULL as an empty unquoted
    field, which is exactly how PostgreSQL's CSV format tells NULL from ''.
    """
    if data.num_rows == 0:
        return
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
        _qualified(schema, table), sql.SQL(", ").join(map(sql.Identifier, data.column_names))
    )
    options = pa_csv.WriteOptions(include_header=False, batch_size=8192)
    for batch in data.to_batches(max_chunksize=COPY_BATCH_ROWS):
        buffer = io.BytesIO()
        pa_csv.write_csv(pa.Table.from_batches([batch]), buffer, options)
        buffer.seek(0)
        cursor.copy_expert(statement, buffer)


@dataclass(frozen=True)
class ReplaceResult:
    deleted: int
    inserted: int
    seconds: float


def replace_rows(
    connection: Connection,
    schema: str,
    table: str,
    data: pa.Table,
    partition: PartitionFilter | None,
) -> ReplaceResult:
    """In one transaction: delete the partition's rows (every row without a partition),
    load ``data``, commit. Readers see the old rows or the new rows."""
    if partition is not None:
        stray = partition.outside(data)
        if stray:
            raise GoldSchemaError(
                f"{schema}.{table}: {stray} of {data.num_rows} output rows have a "
                f"{partition.column!r} outside the partition(s) being written; they would "
                "outlive a later rewrite of their own partition"
            )
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            _lock(cursor, schema, table)
            if partition is None:
                cursor.execute(sql.SQL("DELETE FROM {}").format(_qualified(schema, table)))
            else:
                condition, params = partition.where()
                cursor.execute(
                    sql.SQL("DELETE FROM {} WHERE {}").format(_qualified(schema, table), condition),
                    params,
                )
            deleted = cursor.rowcount
            copy_rows(cursor, schema, table, data)
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    return ReplaceResult(
        deleted=deleted, inserted=data.num_rows, seconds=time.perf_counter() - started
    )


def read_rows(
    connection: Connection,
    schema: str,
    table: str,
    partition: PartitionFilter | None = None,
    batch_rows: int = 50_000,
) -> pa.Table:
    """The table's rows (of ``partition`` only, when given) as Arrow, typed from the table."""
    with connection.cursor() as cursor:
        columns = read_columns(cursor, schema, table)
        if not columns:
            raise GoldSchemaError(
                f"{schema}.{table} does not exist: materialize the upstream asset first"
            )
    arrow_schema = pa.schema([pa.field(column.name, arrow_type(column.type)) for column in columns])
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.Identifier(column.name) for column in columns),
        _qualified(schema, table),
    )
    params: tuple = ()
    if partition is not None:
        condition, params = partition.where()
        query = sql.SQL("{} WHERE {}").format(query, condition)
    batches = []
    # A named (server-side) cursor streams the rows instead of holding them all twice.
    with connection.cursor(name=f"lakehouse_read_{time.monotonic_ns()}") as cursor:
        cursor.itersize = batch_rows
        cursor.execute(query, params)
        while rows := cursor.fetchmany(batch_rows):
            by_column = list(zip(*rows))
            batches.append(
                pa.record_batch(
                    [
                        pa.array(values, type=field.type)
                        for values, field in zip(by_column, arrow_schema)
                    ],
                    schema=arrow_schema,
                )
            )
    connection.rollback()  # end the read transaction
    return pa.Table.from_batches(batches, schema=arrow_schema)


def count_rows(connection: Connection, schema: str, table: str) -> int:
    """How many rows the table holds (ends the read transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(_qualified(schema, table)))
        total = cursor.fetchone()[0]
    connection.rollback()
    return total


def column_types(connection: Connection, schema: str, table: str) -> dict[str, str]:
    """The table's column types by name, ``format_type`` spelling (empty when no table)."""
    with connection.cursor() as cursor:
        types = {column.name: column.type for column in read_columns(cursor, schema, table)}
    connection.rollback()
    return types
