"""Spark reads the bronze DMS files itself, with the DMS reader's rules (dms/reader.py).

CSV files without a header row: the explicit all-string schema from the contract, Op only
in CDC files unless ``include_op_for_full_load``, the timestamp column, the change seq
last, RFC 4180 quoting with newlines, the null value, gzip. Files that name their columns
(CSV with ``add_column_name``, Parquet) are inspected on the driver first: the reader's
``file_layout`` maps the header row or Parquet schema by name, case-insensitively, with the
reader's structural errors. Spark's ``header`` option and its Parquet schema come from one
file of a scan, so each group of files that share a layout is one scan.

Parquet values become the arrow reader's text (``dms.writer.dms_text``) in Spark SQL, where
Spark's own cast to string differs: floats (Java's ``100.0``, ``1.0E10``, ``NaN`` become
Arrow's ``100``, ``1e+10``, ``nan``), decimals below 1e-6 (``1E-7`` becomes ``0.0000001``)
and binary (``\\x`` and hex, not the bytes as UTF-8). Timestamps, dates, booleans and
integers cast alike (the session time zone is UTC). Two limits: on Java before 19
``Double.toString`` may give more digits than the shortest (``1.9999999999999998E23`` for
2e23), the same number in other words; and Spark reads no Parquet TIME column (a table with a
``time`` column is merged by the arrow engine anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from lakehouse_assets.contracts import DmsSettings, TableContract
from lakehouse_assets.dms import (
    CHANGE_SEQ,
    COMMIT_TS,
    OP,
    SOURCE_FILE,
    SOURCE_ROW,
    DmsFormatError,
    parse_object_key,
)
from lakehouse_assets.dms.keys import FileFormat
from lakehouse_assets.dms.reader import FileLayout, file_layout
from lakehouse_assets.silver.merge import FILE_ORDER

_PATH = "_lh_path"
_MID = "_lh_mid"
# Driver threads that read the files that name their columns (I/O bound on S3).
_INSPECT_WORKERS = 8
# Java's Double.toString / Float.toString: [-]digits.digits[E[-]exponent].
_JAVA_FLOAT = "^(-?)([0-9]+)[.]([0-9]+)(?:E(-?[0-9]+))?$"


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


def read_bronze(
    spark,
    files: Sequence[BronzeFileRef],
    contract: TableContract,
    dms: DmsSettings,
    read_bytes: Callable[[BronzeFileRef], bytes] | None = None,
):
    """The DMS files as the reader's columns: contract columns (raw strings), ``_op``,
    ``_commit_ts`` still as text, ``_change_seq``, ``_source_file``, ``_source_row`` and
    ``_file_order``.

    ``read_bytes`` reads a file on the driver (default: local files only); it is called for
    the files whose layout depends on their content (header rows, Parquet).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    read = read_bytes or local_bytes
    with ThreadPoolExecutor(max_workers=_INSPECT_WORKERS) as pool:
        layouts = list(
            pool.map(lambda ref: file_layout(ref.key, contract, dms, lambda: read(ref)), files)
        )
    groups: dict[tuple[FileFormat, FileLayout], list[BronzeFileRef]] = {}
    orders = []
    for ref, layout in zip(files, layouts):
        parsed = parse_object_key(ref.key, dms)
        groups.setdefault((parsed.format, layout), []).append(ref)
        orders.append((ref.key, parsed.order_text))

    frames = []
    for (file_format, layout), refs in groups.items():
        if file_format is FileFormat.PARQUET:
            frame = _scan_parquet(spark, refs, layout)
        else:
            frame = _scan_csv(spark, refs, layout, dms)
        # Right after the scan: a multi-line CSV file is one split, read in order; a Parquet
        # file's splits keep their order too (Spark packs splits largest first, the tail last).
        frame = frame.withColumn(_PATH, F.input_file_name()).withColumn(
            _MID, F.monotonically_increasing_id()
        )
        for name, missing in (
            (OP, F.lit("I")),
            (COMMIT_TS, F.lit(None)),
            (CHANGE_SEQ, F.lit(None)),
        ):
            if name not in layout.fields:
                frame = frame.withColumn(name, missing.cast("string"))
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


def _scan_csv(spark, refs: list[BronzeFileRef], layout: FileLayout, dms: DmsSettings):
    """One CSV scan of files that share ``layout``, its fields under the reader's names."""
    from pyspark.sql.types import StringType, StructField, StructType

    # A header row is skipped in every file; naming the schema's columns as the header does
    # keeps Spark from warning that they differ.
    names = layout.source_names or layout.fields
    schema = StructType([StructField(name, StringType(), True) for name in names])
    return (
        spark.read.format("csv")
        .schema(schema)
        .option("header", "true" if layout.source_names else "false")
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
        .toDF(*layout.fields)
    )


def _scan_parquet(spark, refs: list[BronzeFileRef], layout: FileLayout):
    """One Parquet scan of files that share ``layout``: every field as the arrow reader's
    text, under the reader's names."""
    frame = spark.read.parquet(*[ref.uri for ref in refs])
    types = {field.name: field.dataType for field in frame.schema.fields}
    return frame.select(
        *[
            _parquet_text(source, types[source], refs[0].key).alias(field)
            for source, field in zip(layout.source_names, layout.fields)
        ]
    )


def _parquet_text(name: str, data_type, key: str):
    """A Parquet column as the text ``dms.writer.dms_text`` gives for it."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    column = _quoted(name)
    if isinstance(data_type, T.StringType):
        return F.col(column)
    if isinstance(data_type, T.BinaryType):
        return F.concat(F.lit("\\x"), F.lower(F.hex(F.col(column))))
    if isinstance(data_type, (T.FloatType, T.DoubleType)):
        return F.expr(_float_text_sql(column))
    if isinstance(data_type, T.DecimalType):
        return F.expr(_decimal_text_sql(column, data_type.scale))
    if isinstance(
        data_type,
        (
            T.BooleanType,
            T.ByteType,
            T.ShortType,
            T.IntegerType,
            T.LongType,
            T.DateType,
            T.TimestampType,
            T.TimestampNTZType,
        ),
    ):
        return F.col(column).cast("string")
    raise DmsFormatError(
        f"{key}: Parquet column {name!r} ({data_type.simpleString()}) has no DMS text form"
    )


def _float_text_sql(value: str) -> str:
    """Arrow's text for a float from Java's: the significant digits, plain for a decimal
    exponent from -6 to 9 (``0.000001``, ``1000000000``), else ``d.ddde+x``/``d.ddde-x``."""
    java = f"CAST({value} AS STRING)"

    def part(group: int) -> str:
        return f"regexp_extract({java}, '{_JAVA_FLOAT}', {group})"

    sign = part(1)
    digits = f"concat({part(2)}, {part(3)})"
    unpadded = f"regexp_replace({digits}, '^0+', '')"
    significant = f"regexp_replace({unpadded}, '0+$', '')"
    # The decimal exponent of the first significant digit.
    exponent = (
        f"(length({part(2)}) - 1 + coalesce(CAST(nullif({part(4)}, '') AS INT), 0) "
        f"- (length({digits}) - length({unpadded})))"
    )
    return f"""(CASE
        WHEN {value} IS NULL THEN NULL
        WHEN {java} = 'NaN' THEN 'nan'
        WHEN {java} = 'Infinity' THEN 'inf'
        WHEN {java} = '-Infinity' THEN '-inf'
        WHEN {significant} = '' THEN concat({sign}, '0')
        WHEN {exponent} BETWEEN 0 AND 9 THEN concat(
            {sign},
            rpad({significant}, {exponent} + 1, '0'),
            CASE WHEN length({significant}) > {exponent} + 1
                THEN concat('.', substring({significant}, {exponent} + 2)) ELSE '' END)
        WHEN {exponent} BETWEEN -6 AND -1 THEN concat(
            {sign}, '0.', repeat('0', -{exponent} - 1), {significant})
        ELSE concat(
            {sign},
            substring({significant}, 1, 1),
            CASE WHEN length({significant}) > 1
                THEN concat('.', substring({significant}, 2)) ELSE '' END,
            'e',
            CASE WHEN {exponent} > 0 THEN '+' ELSE '-' END,
            CAST(abs({exponent}) AS STRING))
    END)"""


def _decimal_text_sql(value: str, scale: int) -> str:
    """Plain decimal text: Spark, like Arrow, writes a value below 1e-6 as its unscaled
    digits and an exponent (``1E-7``, ``-1.00E-7``); that is ``[-]0.`` and the digits
    left-padded to the scale, as ``dms.writer`` spells it out."""
    text = f"CAST({value} AS STRING)"
    if scale <= 0:
        return text
    digits = f"regexp_replace(regexp_extract({text}, '^-?([0-9.]+)E', 1), '[.]', '')"
    return (
        f"(CASE WHEN {text} LIKE '%E%' THEN concat(CASE WHEN {text} LIKE '-%' THEN '-' "
        f"ELSE '' END, '0.', lpad({digits}, {scale}, '0')) ELSE {text} END)"
    )


def _quoted(name: str) -> str:
    """``name`` as a Spark SQL identifier."""
    return "`" + name.replace("`", "``") + "`"


def _reported_path(uri: str) -> str:
    """How ``input_file_name()`` spells a file given to the reader as ``uri``."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return "file://" + parsed.path
    return uri


def local_bytes(ref: BronzeFileRef) -> bytes:
    """A local file's bytes, for the driver (other stores: pass ``read_bytes``)."""
    parsed = urlparse(ref.uri)
    if parsed.scheme != "file":
        raise DmsFormatError(f"{ref.key}: cannot read {ref.uri} on the driver (pass read_bytes)")
    return Path(unquote(parsed.path)).read_bytes()
