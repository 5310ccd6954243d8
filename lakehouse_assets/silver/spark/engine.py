"""The silver merge on Apache Spark: the arrow engine's result (writer.py), value for value.

Spark reads the bronze DMS files itself, with the DMS reader's rules
(dms/reader.py: explicit all-string schema from the contract, Op only in CDC files
unless ``include_op_for_full_load``, the timestamp column, AR_H_CHANGE_SEQ last,
RFC 4180 quoting with newlines, the null value, gzip), types the values with
casting.py's grammar (a value casting.py rejects is rejected here, with the same
``_reason``), keeps the newest change per key with a window, and applies it with
one ``MERGE INTO`` whose ``WHEN MATCHED`` condition is merge.py's rule: a change
replaces the stored row only when its position (commit ts, change seq, file
order, row) is after the stored row's. Deletes are written as tombstones.

Tables are created and evolved by pyiceberg (tables.py), in the catalog Spark
reaches through Iceberg's JDBC catalog (spark_session.py), so both engines write
the same tables (format v2, the contract's partition spec and sort order).

Differences, by design: Spark has no ``time`` type, so a contract with a ``time``
column stays on the arrow engine (``unsupported_reason``). The merge is Iceberg's
copy-on-write ``MERGE INTO``: it rewrites the data files that hold a changed key,
with Spark's own pruning (partition, min/max, runtime filtering on the keys).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.io.pyarrow import schema_to_pyarrow

from lakehouse_assets.contracts import Column, DmsSettings, TableContract
from lakehouse_assets.dms import (
    CHANGE_SEQ,
    COMMIT_TS,
    OP,
    SOURCE_FILE,
    SOURCE_ROW,
    DmsFormatError,
    FileKind,
    parse_object_key,
    read_dms_file,
)
from lakehouse_assets.names import CATALOG_NAME
from lakehouse_assets.silver.casting import REASON
from lakehouse_assets.silver.merge import FILE_ORDER, INGESTED_AT, IS_DELETED, POSITION, newer_sql
from lakehouse_assets.silver.pruning import candidate_files
from lakehouse_assets.silver.rejects import replace_rejects
from lakehouse_assets.silver.result import (
    MergeResult,
    TableWrite,
    snapshot_properties,
    with_commit_retries,
)
from lakehouse_assets.silver.tables import load_or_create_silver_table, table_identifier

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PATH = "_lh_path"
_MID = "_lh_mid"
_BAD = "_lh_bad_"  # per column: the value could not be typed
_REJECT_AT = "_lh_reject_at"  # index of the first column at fault (contract order)
_REJECT_KIND = "_lh_reject_kind"  # 'bad' or 'missing'
_STORED = "_lh_stored"
_WINS = "_lh_wins"
_UNSUPPORTED_TYPES = {
    "time": "Spark has no time-of-day type (Iceberg's Spark integration refuses time columns)"
}


# ------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class BronzeFileRef:
    """One DMS file: its key in the lake (``_source_file``) and the URI Spark reads it from."""

    key: str
    uri: str


def spark_uri(lake_uri: str, key: str) -> str:
    """The URI Spark reads ``key`` of the lake at ``lake_uri`` from (``s3a://`` for S3)."""
    parsed = urlparse(lake_uri)
    if parsed.scheme in ("s3", "s3a"):
        prefix = parsed.path.strip("/")
        return f"s3a://{parsed.netloc}/{prefix + '/' if prefix else ''}{key}"
    local = parsed.path if parsed.scheme == "file" else lake_uri
    return Path(local, key).resolve().as_uri()


def unsupported_reason(contract: TableContract) -> str | None:
    """Why the Spark engine cannot merge ``contract``'s table, or None."""
    for column in contract.columns:
        if column.type in _UNSUPPORTED_TYPES:
            return f"column {column.name!r} is {column.type}: {_UNSUPPORTED_TYPES[column.type]}"
    return None


class SparkEngineUnsupported(ValueError):
    """The contract uses a type Spark cannot hold; merge this table with the arrow engine."""


# ------------------------------------------------------------------ SQL helpers


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _lit(text: str) -> str:
    """A SQL string literal (Spark parses backslash escapes in literals)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# ------------------------------------------------------------------ typing (casting.py's grammar)

_INT = r"^(-?[0-9]+|0[xX][0-9a-fA-F]+)$"
_DECIMAL = r"^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$"
_FLOAT = (
    r"^[+-]?(([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?"
    r"|[iI][nN][fF]([iI][nN][iI][tT][yY])?|[nN][aA][nN])$"
)
_DATE = r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$"
# yyyy-MM-dd[( |T)HH[:mm[:ss[.f{1,6}]]]] (what Arrow's timestamp cast accepts)
_TS = (
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[ T]([0-9]{2})(?::([0-9]{2})(?::([0-9]{2})([.][0-9]{1,6})?)?)?)?$"
)
# timestamptz: a time is required; offset Z, +hh, +hhmm or +hh:mm (casting._to_timestamptz)
_TSTZ = (
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"[ T]([0-9]{2})(?::([0-9]{2})(?::([0-9]{2})([.][0-9]{1,6})?)?)?"
    r"(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?$"
)
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_HEX = r"^(\\x)?(([0-9a-fA-F]{2})*)$"
_INT_TYPES = {"smallint": "SMALLINT", "int": "INT", "bigint": "BIGINT"}


def _rx(pattern: str) -> str:
    return _lit(pattern)


def _timestamp_parts(value: str, pattern: str) -> list[str]:
    groups = [f"regexp_extract({value}, {_rx(pattern)}, {index})" for index in range(1, 8)]
    year, month, day, hour, minute, second, fraction = groups
    hour = f"coalesce(nullif({hour}, ''), '0')"
    minute = f"coalesce(nullif({minute}, ''), '0')"
    seconds = f"CAST(concat(coalesce(nullif({second}, ''), '0'), {fraction}) AS DECIMAL(8,6))"
    in_range = f"(CAST({hour} AS INT) < 24 AND CAST({minute} AS INT) < 60 AND {seconds} < 60)"
    return [
        f"CAST({year} AS INT)",
        f"CAST({month} AS INT)",
        f"CAST({day} AS INT)",
        f"CAST({hour} AS INT)",
        f"CAST({minute} AS INT)",
        seconds,
        in_range,
    ]


# The usual shape, which Spark's own cast parses exactly as Arrow (NULL when out of range).
_TS_FULL = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,6})?$"


def _timestamp_ntz_sql(value: str) -> str:
    year, month, day, hour, minute, seconds, in_range = _timestamp_parts(value, _TS)
    return (
        f"(CASE WHEN {value} RLIKE {_rx(_TS_FULL)} THEN CAST({value} AS TIMESTAMP_NTZ) "
        f"WHEN {value} RLIKE {_rx(_TS)} AND {in_range} "
        f"THEN make_timestamp_ntz({year}, {month}, {day}, {hour}, {minute}, {seconds}) END)"
    )


def _timestamp_utc_sql(value: str) -> str:
    """A naive DMS timestamp read as UTC (the commit timestamp column; the session is UTC)."""
    year, month, day, hour, minute, seconds, in_range = _timestamp_parts(value, _TS)
    return (
        f"(CASE WHEN {value} RLIKE {_rx(_TS_FULL)} THEN CAST({value} AS TIMESTAMP) "
        f"WHEN {value} RLIKE {_rx(_TS)} AND {in_range} "
        f"THEN make_timestamp({year}, {month}, {day}, {hour}, {minute}, {seconds}, 'UTC') END)"
    )


def _timestamptz_sql(value: str) -> str:
    year, month, day, hour, minute, seconds, in_range = _timestamp_parts(value, _TSTZ)
    offset = f"regexp_extract({value}, {_rx(_TSTZ)}, 8)"
    zone = (
        f"(CASE WHEN {offset} IN ('', 'Z') THEN 'UTC' "
        f"WHEN length({offset}) = 3 THEN concat({offset}, ':00') "
        f"WHEN length({offset}) = 5 "
        f"THEN concat(substring({offset}, 1, 3), ':', substring({offset}, 4, 2)) "
        f"ELSE {offset} END)"
    )
    return (
        f"(CASE WHEN {value} RLIKE {_rx(_TSTZ)} AND {in_range} "
        f"THEN make_timestamp({year}, {month}, {day}, {hour}, {minute}, {seconds}, {zone}) END)"
    )


def typed_sql(value: str, column: Column) -> str:
    """SQL typing the raw string ``value`` like casting.convert_column: NULL when the value
    cannot be typed (a non-null input with a null result is a bad value)."""
    kind = column.type
    decimal = column.decimal
    if kind in ("string", "json"):
        return value  # json is validated by a UDF (Python's parser, as casting.py)
    if kind in _INT_TYPES:
        sql_type = _INT_TYPES[kind]
        target = "INT" if kind == "smallint" else sql_type  # Iceberg has no 16-bit integer
        # Decimal digits: Spark's cast (NULL on overflow). Hex (0x..., as Arrow): by value.
        number = (
            f"(CASE WHEN {value} RLIKE '^0[xX]' "
            f"THEN CAST(conv(substring({value}, 3), 16, 10) AS DECIMAL(38,0)) "
            f"ELSE CAST({value} AS DECIMAL(38,0)) END)"
        )
        bounds = {"SMALLINT": 2**15, "INT": 2**31, "BIGINT": 2**63}[sql_type]
        return (
            f"(CASE WHEN {value} RLIKE '^-?[0-9]+$' "
            f"THEN CAST(CAST({value} AS {sql_type}) AS {target}) "
            f"WHEN {value} RLIKE {_rx(_INT)} AND {number} >= -{bounds} AND {number} < {bounds} "
            f"THEN CAST({number} AS {target}) END)"
        )
    if decimal:
        precision, scale = decimal
        exact = f"CAST({value} AS DECIMAL({precision},{scale}))"
        wide_scale = min(38, scale + 12)
        wide = f"CAST({value} AS DECIMAL(38,{wide_scale}))"
        # Arrow refuses a value that would need rounding to the scale, or overflow.
        # Needs no rounding: Spark's cast, NULL on overflow.
        plain = f"^-?[0-9]+([.][0-9]{{0,{scale}}})?$"
        return (
            f"(CASE WHEN {value} RLIKE {_rx(plain)} THEN {exact} "
            f"WHEN {value} RLIKE {_rx(_DECIMAL)} AND {exact} IS NOT NULL "
            f"AND ({wide} IS NULL OR {wide} = {exact}) THEN {exact} END)"
        )
    if kind in ("real", "double"):
        sql_type = "FLOAT" if kind == "real" else "DOUBLE"
        special = (
            f"(CASE WHEN lower({value}) RLIKE '^[+-]?nan$' THEN 'NaN' "
            f"WHEN lower({value}) RLIKE '^[+]?inf(inity)?$' THEN 'Infinity' "
            f"WHEN lower({value}) RLIKE '^-inf(inity)?$' THEN '-Infinity' ELSE {value} END)"
        )
        return f"(CASE WHEN {value} RLIKE {_rx(_FLOAT)} THEN CAST({special} AS {sql_type}) END)"
    if kind == "boolean":
        return (
            f"(CASE WHEN lower({value}) IN ('t', 'true', '1') THEN true "
            f"WHEN lower({value}) IN ('f', 'false', '0') THEN false END)"
        )
    if kind == "date":
        return f"(CASE WHEN {value} RLIKE {_rx(_DATE)} THEN CAST({value} AS DATE) END)"
    if kind == "timestamp":
        return _timestamp_ntz_sql(value)
    if kind == "timestamptz":
        return _timestamptz_sql(value)
    if kind == "uuid":
        return f"(CASE WHEN {value} RLIKE {_rx(_UUID)} THEN lower({value}) END)"
    if kind == "bytes":
        digits = f"regexp_extract({value}, {_rx(_HEX)}, 2)"
        return f"(CASE WHEN {value} RLIKE {_rx(_HEX)} THEN unhex({digits}) END)"
    raise SparkEngineUnsupported(
        f"column {column.name!r}: type {kind} is not supported by the Spark engine"
    )


def _json_validator():
    """A UDF body: is the text JSON by Python's parser, as casting.py checks it? Built here
    (stdlib only, pickled by value) so executors need only Python, not this project."""

    def is_valid(text):

        if text is None:
            return True

        def reject(name):
            raise ValueError(name)

        try:
            json.loads(text, parse_constant=reject)
        except ValueError:
            return False
        return True

    return is_valid


def _reason_builder(names: list[str], types: list[str]):
    """A UDF body: casting.py's ``_reason`` text (Python's repr of the value) for a reject."""

    def reason(at, kind, value):
        if kind == "bad":
            return f"column {names[at]!r}: {value!r} is not a valid {types[at]}"
        return f"column {names[at]!r} is required but empty"

    return reason


# ------------------------------------------------------------------ reading bronze


def _field_names(contract: TableContract, dms: DmsSettings, has_op: bool) -> list[str]:
    names = [OP] if has_op else []
    names += [COMMIT_TS] if dms.timestamp_column else []
    names += list(contract.column_names)
    names += [CHANGE_SEQ] if dms.change_seq_column else []
    return names


def read_bronze(spark, files: Sequence[BronzeFileRef], contract: TableContract, dms: DmsSettings):
    """The DMS files as the reader's columns: contract columns (raw strings), ``_op``,
    ``_commit_ts`` still as text, ``_change_seq``, ``_source_file``, ``_source_row`` and
    ``_file_order``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    groups: dict[bool, list[BronzeFileRef]] = {}
    orders = []
    for ref in files:
        parsed = parse_object_key(ref.key, dms)
        has_op = parsed.kind is FileKind.CDC or dms.include_op_for_full_load
        groups.setdefault(has_op, []).append(ref)
        orders.append((ref.key, parsed.order_text))

    frames = []
    for has_op, refs in groups.items():
        names = _field_names(contract, dms, has_op)
        schema = StructType([StructField(name, StringType(), True) for name in names])
        frame = (
            spark.read.format("csv")
            .schema(schema)
            .option("header", "false")
            .option("sep", dms.delimiter)
            .option("quote", '"')
            .option("escape", '"')
            .option("multiLine", "true")
            # DMS ends rows with \n. Without this the parser guesses the row end from the first
            # newline in the file, which may be a \r\n inside a quoted value.
            .option("lineSep", "\n")
            .option("nullValue", dms.null_value)
            .option("mode", "FAILFAST")
            .option("encoding", "UTF-8")
            .option("ignoreLeadingWhiteSpace", "false")
            .option("ignoreTrailingWhiteSpace", "false")
            .load([ref.uri for ref in refs])
            # Right after the scan: a multi-line CSV file is one split, read in order.
            .withColumn(_PATH, F.input_file_name())
            .withColumn(_MID, F.monotonically_increasing_id())
        )
        if not has_op:
            frame = frame.withColumn(OP, F.lit("I"))
        if not dms.timestamp_column:
            frame = frame.withColumn(COMMIT_TS, F.lit(None).cast("string"))
        if not dms.change_seq_column:
            frame = frame.withColumn(CHANGE_SEQ, F.lit(None).cast("string"))
        frames.append(frame.select(*contract.column_names, OP, COMMIT_TS, CHANGE_SEQ, _PATH, _MID))
    if not frames:
        return None
    raw = frames[0]
    for frame in frames[1:]:
        raw = raw.unionByName(frame)
    raw = raw.withColumn(
        SOURCE_ROW, F.row_number().over(Window.partitionBy(_PATH).orderBy(_MID)).cast("long")
    )

    # Spark reports the path as a URI; map it back to the lake key and the file's order.
    reported = [(_reported_path(ref.uri), ref.key) for ref in files]
    order_of = dict(orders)
    mapping = spark.createDataFrame(
        [(path, key, order_of[key]) for path, key in reported],
        schema=f"{_PATH} string, {SOURCE_FILE} string, {FILE_ORDER} string",
    )
    return raw.join(F.broadcast(mapping), on=_PATH, how="left").drop(_MID)


def _reported_path(uri: str) -> str:
    """How ``input_file_name()`` spells a file given to the reader as ``uri``."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return "file://" + parsed.path
    return uri


def _diagnose(
    files: Sequence[BronzeFileRef],
    contract: TableContract,
    dms: DmsSettings,
    read_bytes: Callable[[BronzeFileRef], bytes],
) -> None:
    """Re-read the files with the DMS reader, which names the file, line and value at fault."""
    for ref in files:
        read_dms_file(read_bytes(ref), ref.key, contract, dms)  # raises DmsFormatError


def _local_bytes(ref: BronzeFileRef) -> bytes:
    parsed = urlparse(ref.uri)
    if parsed.scheme != "file":
        raise DmsFormatError(
            f"{ref.key}: cannot re-read {ref.uri} to name the fault (pass read_bytes)"
        )
    return Path(unquote(parsed.path)).read_bytes()


# ------------------------------------------------------------------ the merge


def spark_merge_changes(
    spark,
    catalog,
    contract: TableContract,
    dms: DmsSettings,
    files: Sequence[BronzeFileRef],
    ingested_at: datetime,
    read_bytes: Callable[[BronzeFileRef], bytes] | None = None,
    timings: dict[str, float] | None = None,
) -> MergeResult:
    """Merge the DMS ``files`` (one batch, any number of days) into ``silver.<table>`` with
    Spark: the same table as ``writer.merge_changes`` over the same files; safe to repeat.

    ``timings``, when given, receives the seconds of each phase: ``read`` (parse and type
    the files), ``plan`` (newest change per key, compared with the stored rows), ``merge``
    (the ``MERGE INTO`` commit) and ``rejects``."""
    clock = _Clock(timings)
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType

    reason = unsupported_reason(contract)
    if reason:
        raise SparkEngineUnsupported(
            f"{table_identifier(contract)}: {reason}; use the arrow engine"
        )
    read_bytes = read_bytes or _local_bytes
    spark_table = f"{CATALOG_NAME}.{table_identifier(contract)}"
    load_or_create_silver_table(catalog, contract, dms)  # pyiceberg: create or evolve, format v2

    raw = read_bronze(spark, files, contract, dms)
    if raw is None:
        return MergeResult.empty(
            catalog.load_table(table_identifier(contract)).metadata.current_snapshot_id
        )

    # --- structure: Op values and the commit timestamp, as the DMS reader checks them
    commit_ts = (
        _timestamp_utc_sql(_q(COMMIT_TS)) if dms.timestamp_column else "CAST(NULL AS TIMESTAMP)"
    )
    raw = raw.withColumn(COMMIT_TS, F.expr(commit_ts))
    # --- typing: one expression per column (step 1), then flags on its results (step 2; two
    # projections, so each typing expression is evaluated once per value)
    is_delete = F.col(OP) == F.lit("D")
    json_valid = F.udf(_json_validator(), BooleanType())
    names = contract.column_names
    step1 = [F.col(name).alias(f"_lh_raw_{index}") for index, name in enumerate(names)]
    for index, column in enumerate(contract.columns):
        if column.type == "json":
            step1.append(json_valid(F.col(column.name)).alias(f"_lh_ok_{index}"))
        else:
            step1.append(F.expr(typed_sql(_q(column.name), column)).alias(f"_lh_typed_{index}"))
    metadata = [OP, COMMIT_TS, CHANGE_SEQ, SOURCE_FILE, SOURCE_ROW, FILE_ORDER]
    typed_step = raw.select(*step1, *metadata)

    typed_columns, bad_flags = [], []
    for index, column in enumerate(contract.columns):
        value = F.col(f"_lh_raw_{index}")
        if column.type == "json":
            typed = value
            bad_value = value.isNotNull() & ~F.col(f"_lh_ok_{index}")
        else:
            typed = F.col(f"_lh_typed_{index}")
            bad_value = value.isNotNull() & typed.isNull()
        bad = bad_value  # a bad value is NULL in the typed row, as in casting.convert_column
        if column.name not in contract.primary_key:
            bad = bad & ~is_delete  # a delete needs only its key
        missing = F.lit(False)
        if not column.nullable:
            missing = value.isNull() & ~bad
            if column.name not in contract.primary_key:
                missing = missing & ~is_delete
        typed_columns.append(F.when(bad_value, F.lit(None)).otherwise(typed).alias(column.name))
        bad_flags.append((bad, missing))

    reject_at = F.lit(None).cast("int")
    reject_kind = F.lit(None).cast("string")
    for index in reversed(range(len(contract.columns))):
        bad, missing = bad_flags[index]
        reject_at = F.when(bad | missing, F.lit(index)).otherwise(reject_at)
        reject_kind = (
            F.when(bad, F.lit("bad")).when(missing, F.lit("missing")).otherwise(reject_kind)
        )

    structural = F.col(OP).isNull() | ~F.col(OP).isin("I", "U", "D")
    if dms.timestamp_column:
        structural = structural | F.col(COMMIT_TS).isNull()
    staged = typed_step.select(
        *[F.col(f"_lh_raw_{index}") for index in range(len(names))],
        *typed_columns,
        *metadata,
        reject_at.alias(_REJECT_AT),
        reject_kind.alias(_REJECT_KIND),
        structural.alias("_lh_structural"),
    )
    try:
        # Materialized once: the file scan (row positions come from non-deterministic
        # expressions, which MERGE INTO refuses in its source) and the typing.
        staged = staged.localCheckpoint(eager=True)
    except Exception as exc:
        if "malformed" not in str(exc).lower():
            raise
        _diagnose(files, contract, dms, read_bytes)
        raise
    summary = staged.agg(
        F.count(F.lit(1)).alias("changes"),
        F.sum(F.col("_lh_structural").cast("int")).alias("structural"),
        F.sum(F.col(_REJECT_AT).isNotNull().cast("int")).alias("rejected"),
        F.unix_micros(F.max(COMMIT_TS)).alias("max_commit_us"),
        F.sum(F.col(SOURCE_FILE).isNull().cast("int")).alias("unmapped"),
        F.collect_set(SOURCE_FILE).alias("files_with_rows"),
    ).collect()[0]
    if summary["structural"]:
        _diagnose(files, contract, dms, read_bytes)
        raise DmsFormatError(
            f"{table_identifier(contract)}: {summary['structural']} rows with a bad Op or timestamp"
        )
    if summary["unmapped"]:
        raise RuntimeError(
            f"{summary['unmapped']} rows of files Spark reported under an unexpected path"
        )
    rejected = summary["rejected"] or 0
    clock.lap("read")
    max_us = summary["max_commit_us"]
    batch_max = None if max_us is None else _EPOCH + timedelta(microseconds=max_us)

    valid = staged.filter(F.col(_REJECT_AT).isNull())
    write, attempts = with_commit_retries(
        lambda: _merge_once(
            spark, catalog, contract, spark_table, valid, ingested_at, batch_max, clock
        )
    )
    replace_rejects(
        catalog,
        contract,
        sorted(summary["files_with_rows"] or []),
        _rejects(contract, staged, rejected),
    )
    clock.lap("rejects")
    return MergeResult.of(
        write,
        changes=summary["changes"],
        rejected=rejected,
        max_commit_ts=batch_max,
        attempts=attempts,
    )


class _Clock:
    def __init__(self, timings: dict[str, float] | None):
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[name] = self.timings.get(name, 0.0) + now - self.last
        self.last = now


def _merge_once(
    spark, catalog, contract, spark_table, valid, ingested_at, batch_max, clock
) -> TableWrite:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    key = list(contract.primary_key)
    newest_first = Window.partitionBy(*key).orderBy(
        *[F.col(name).desc_nulls_last() for name in POSITION]
    )
    latest = (
        valid.withColumn("_lh_rank", F.row_number().over(newest_first))
        .filter(F.col("_lh_rank") == 1)
        .drop("_lh_rank")
    )
    table = catalog.load_table(table_identifier(contract))
    table_columns = [field.name for field in table.schema().fields]
    date_columns = [
        c.name for c in contract.columns if c.type in ("date", "timestamp", "timestamptz")
    ]

    stored_columns = list(dict.fromkeys([*key, *POSITION, IS_DELETED, *date_columns]))
    stored = spark.table(spark_table).select(
        *[F.col(name).alias(f"{_STORED}{name}") for name in stored_columns]
    )
    condition = None
    for name in key:
        clause = F.col(name) == F.col(f"{_STORED}{name}")
        condition = clause if condition is None else condition & clause
    joined = latest.join(stored, on=condition, how="left")
    has_stored = F.col(f"{_STORED}{SOURCE_ROW}").isNotNull()
    newer = newer_sql(
        {name: _q(name) for name in POSITION}, {name: _q(f"{_STORED}{name}") for name in POSITION}
    )
    wins = (~has_stored) | F.expr(newer)
    stored_live = has_stored & ~F.coalesce(F.col(f"{_STORED}{IS_DELETED}"), F.lit(True))
    joined = joined.withColumn(_WINS, wins).withColumn("_lh_stored_live", stored_live).persist()
    try:
        delete = F.col(OP) == F.lit("D")
        # Per date column, the dates (UTC) of the changed rows, new and old values
        # (writer.touched_dates), collected with the counts.
        touched = [
            F.collect_set(F.when(F.col(_WINS), F.to_date(F.col(source)))).alias(
                f"_lh_touched_{index}_{side}"
            )
            for index, name in enumerate(date_columns)
            for side, source in (("new", name), ("old", f"{_STORED}{name}"))
        ]
        counts = joined.agg(
            F.sum((F.col(_WINS) & ~delete & ~F.col("_lh_stored_live")).cast("int")).alias(
                "inserted"
            ),
            F.sum((F.col(_WINS) & ~delete & F.col("_lh_stored_live")).cast("int")).alias("updated"),
            F.sum((F.col(_WINS) & delete).cast("int")).alias("deleted"),
            F.sum((~F.col(_WINS)).cast("int")).alias("stale"),
            *touched,
        ).collect()[0]
        planned = TableWrite(
            inserted=counts["inserted"] or 0,
            updated=counts["updated"] or 0,
            deleted=counts["deleted"] or 0,
            stale=counts["stale"] or 0,
            files_scanned=len(
                candidate_files(table, contract, _batch_keys(latest, contract, table))
            ),
            files_rewritten=0,
            files_added=0,
            snapshot_id=table.metadata.current_snapshot_id,
        )
        if not planned.committed:
            clock.lap("plan")
            return planned  # nothing newer than the table: no commit
        touched_dates = {}
        for index, name in enumerate(date_columns):
            days = set(counts[f"_lh_touched_{index}_new"]) | set(counts[f"_lh_touched_{index}_old"])
            if days:
                touched_dates[name] = sorted(day.isoformat() for day in days)
        clock.lap("plan")

        source = joined.filter(F.col(_WINS)).select(
            *[F.col(name) for name in table_columns if name not in (INGESTED_AT, IS_DELETED)],
            F.lit(ingested_at).cast("timestamp").alias(INGESTED_AT),
            delete.alias(IS_DELETED),
        )
        view = f"_lh_changes_{contract.name}"
        source.createOrReplaceTempView(view)
        on = " AND ".join(f"t.{_q(name)} = s.{_q(name)}" for name in key)
        newer = newer_sql(
            {name: f"s.{_q(name)}" for name in POSITION},
            {name: f"t.{_q(name)}" for name in POSITION},
        )
        assignments = ", ".join(f"t.{_q(name)} = s.{_q(name)}" for name in table_columns)
        names = ", ".join(_q(name) for name in table_columns)
        values = ", ".join(f"s.{_q(name)}" for name in table_columns)
        statement = (
            f"MERGE INTO {spark_table} t USING {view} s ON {on} "
            f"WHEN MATCHED AND {newer} THEN UPDATE SET {assignments} "
            f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
        )
        with _commit_properties(spark, snapshot_properties(table, batch_max)):
            spark.sql(statement)
        spark.catalog.dropTempView(view)
        clock.lap("merge")
        snapshot = catalog.load_table(table_identifier(contract)).current_snapshot()
        summary = snapshot.summary.additional_properties if snapshot and snapshot.summary else {}
        return replace(
            planned,
            files_rewritten=int(summary.get("deleted-data-files", 0)),
            files_added=int(summary.get("added-data-files", 0)),
            snapshot_id=snapshot.snapshot_id if snapshot else None,
            touched_dates=touched_dates,
        )
    finally:
        joined.unpersist()


def _batch_keys(latest, contract: TableContract, table) -> pa.Array:
    """The batch's distinct keys, sorted, on the driver, as ``merge.key_array`` gives them:
    what ``candidate_files`` prunes by."""
    from pyspark.sql import functions as F

    if len(contract.primary_key) == 1:
        name = contract.primary_key[0]
        key_type = schema_to_pyarrow(table.schema().find_field(name).field_type)
        column = F.col(name)
    else:
        key_type = pa.string()
        column = F.concat_ws("\x1f", *[F.col(name).cast("string") for name in contract.primary_key])
    keys = pa.array([row[0] for row in latest.select(column).distinct().collect()]).cast(key_type)
    return pc.array_take(keys, pc.array_sort_indices(keys))


class _commit_properties:
    """Snapshot summary properties for the SQL commits of this thread: Iceberg's
    ``CommitMetadata`` (whose public entry point takes a Java callable), set directly."""

    def __init__(self, spark, properties: dict[str, str]):
        self.spark = spark
        self.properties = properties

    def _local(self):
        jvm = self.spark._jvm
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        cls = jvm.java.lang.Class.forName("org.apache.iceberg.spark.CommitMetadata", True, loader)
        field = cls.getDeclaredField("COMMIT_PROPERTIES")
        field.setAccessible(True)
        return field.get(None)

    def __enter__(self):
        values = self.spark._jvm.java.util.HashMap()
        for key, value in self.properties.items():
            values.put(key, value)
        self._local().set(values)
        return self

    def __exit__(self, *exc_info):
        self._local().remove()


def _rejects(contract: TableContract, staged, rejected: int) -> pa.Table:
    """The batch's rejects on the driver, as the arrow engine's ``cast_changes`` gives them:
    the raw strings, the DMS metadata and casting.py's ``_reason`` text."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    names = contract.column_names
    schema = pa.schema(
        [pa.field(name, pa.string()) for name in names]
        + [
            (OP, pa.string()),
            (COMMIT_TS, pa.int64()),
            (CHANGE_SEQ, pa.string()),
            (SOURCE_FILE, pa.string()),
            (SOURCE_ROW, pa.int64()),
            (REASON, pa.string()),
        ]
    )
    timestamp = pa.timestamp("us", tz="UTC")
    if not rejected:
        return schema.empty_table().cast(schema.set(len(names) + 1, pa.field(COMMIT_TS, timestamp)))
    reason = F.udf(
        _reason_builder(list(names), [column.type for column in contract.columns]), StringType()
    )
    raw_at = F.element_at(
        F.array(*[F.col(f"_lh_raw_{index}") for index in range(len(names))]), F.col(_REJECT_AT) + 1
    )
    rows = (
        staged.filter(F.col(_REJECT_AT).isNotNull())
        .select(
            *[F.col(f"_lh_raw_{index}").alias(name) for index, name in enumerate(names)],
            # Microseconds: pyspark hands timestamps to Python in the driver's local zone.
            OP,
            F.unix_micros(F.col(COMMIT_TS)).alias(COMMIT_TS),
            CHANGE_SEQ,
            SOURCE_FILE,
            SOURCE_ROW,
            reason(F.col(_REJECT_AT), F.col(_REJECT_KIND), raw_at).alias(REASON),
        )
        .collect()
    )
    table = pa.Table.from_pylist([row.asDict() for row in rows], schema=schema)
    return table.set_column(len(names) + 1, COMMIT_TS, table[COMMIT_TS].cast(timestamp))
