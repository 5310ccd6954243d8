"""DMS file encoding: rows as the AWS DMS S3 target writes them, the inverse of ``reader``.

CSV (``.csv``, ``.csv.gz``): a row is ``[Op,] [commit timestamp,] <contract columns...>
[, change seq]``, as the ``DmsSettings`` say, ending in LF; a field is quoted only when it
holds the delimiter, a quote, CR or LF (RFC 4180), and NULL is written as ``null_value``.
With ``add_column_name`` the file starts with a header row of the fields' names
(``field_names``): ``Op``, the timestamp column (``timestamp_name``, else
``DEFAULT_TIMESTAMP_NAME``), the contract's column names, the change seq
(``change_seq_name``).

Parquet (``.parquet``): one column per field, named and ordered as in the header row.
``Op``, the timestamp column and the change seq are strings (DMS documents the timestamp
column as a STRING column in Parquet too, text as in CSV); the contract columns have their
contract types (smallint int16, decimal(p,s), time time64[us], timestamp timestamp[us],
timestamptz timestamp[us, UTC], bytes binary, json and uuid strings). A column given as
strings stays a string column, as DMS writes some source types.

Values are DMS's text for a PostgreSQL source (``dms_text``): timestamps and times as
``yyyy-MM-dd HH:mm:ss[.SSSSSS]`` without trailing fraction zeros (timestamptz in UTC, no
offset), booleans ``true``/``false``, decimals plain (``0.0000001``, never ``1E-7``), bytes
as ``\\x`` and lower-case hex, strings as they are; a column that already holds strings is
written verbatim. The reader turns Parquet values into the same text, so a Parquet file
reads exactly like its CSV twin.

``encode_dms_file`` encodes one file of a contract's rows, its key saying what the
file is (full load or CDC, CSV, gzip or Parquet); ``encode_csv_rows`` writes rows given
field by field, for small hand-made files; ``full_load_key`` and ``cdc_key`` name files as
DMS does.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from gzip import compress

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakehouse_assets.contracts import DmsSettings, TableContract
from lakehouse_assets.dms.keys import (
    FileFormat,
    FileKind,
    date_folder,
    parse_object_key,
    table_prefix,
)

Values = pa.Array | pa.ChunkedArray
OP_NAME = "Op"
# The timestamp column's name in header rows and Parquet files when the contract names none.
DEFAULT_TIMESTAMP_NAME = "timestamp"
# Lower-case hex digits of every byte value, for bytea text.
_HEX_DIGITS = np.frombuffer(bytes(range(256)).hex().encode(), np.uint8).reshape(256, 2)


def full_load_key(dms: DmsSettings, schema: str, table: str, counter: int) -> str:
    """The key of a table's full-load file number ``counter`` (a hex counter from 1)."""
    return f"{table_prefix(dms, schema, table)}LOAD{counter:08X}.{dms.format}"


def cdc_key(dms: DmsSettings, schema: str, table: str, written_at: datetime) -> str:
    """The key of a table's CDC file written at ``written_at`` (UTC): its date folder,
    when date partitioning is on, and ``YYYYMMDD-HHMMSSmmm.csv`` (``.parquet`` with
    ``format: parquet``)."""
    folder = (
        date_folder(dms.date_partition, written_at.date(), written_at.hour)
        if dms.date_partition.enabled
        else ""
    )
    name = f"{written_at:%Y%m%d-%H%M%S}{written_at.microsecond // 1000:03d}.{dms.format}"
    return f"{table_prefix(dms, schema, table)}{folder}{name}"


def encode_dms_file(
    rows: pa.Table,
    key: str,
    contract: TableContract,
    dms: DmsSettings,
    *,
    ops: Values | None = None,
    commit_ts: Values | None = None,
    change_seqs: Values | None = None,
) -> bytes:
    """The bytes of the DMS file ``key`` holding ``rows`` (the contract's columns).

    ``ops`` is each row's Op: required for a CDC file; a full-load file carries an
    Op column (``I`` unless given) only with ``include_op_for_full_load``.
    ``commit_ts`` is required with ``timestamp_column``. A ``.gz`` key is gzipped, a
    ``.parquet`` key is a Parquet file.
    """
    parsed = parse_object_key(key, dms)
    if parsed.kind is FileKind.CDC:
        if ops is None:
            raise ValueError(f"{key}: a CDC file needs the Op of every row")
    elif dms.include_op_for_full_load:
        ops = pa.repeat("I", rows.num_rows) if ops is None else ops
    else:
        ops = None
    columns = [_array(rows[column.name]) for column in contract.columns]
    metadata = {"ops": ops, "commit_ts": commit_ts, "change_seqs": change_seqs}
    if parsed.format is FileFormat.PARQUET:
        typed = [
            _typed(values, column.arrow_type) for values, column in zip(columns, contract.columns)
        ]
        fields = _fields(typed, rows.num_rows, dms, **metadata)
        names = field_names(contract, dms, has_op=ops is not None)
        return _parquet_bytes(pa.Table.from_arrays(fields, names=names))
    fields = _fields(columns, rows.num_rows, dms, **metadata)
    data = _joined(_lines([dms_text(field) for field in fields], dms))
    if dms.add_column_name:
        data = encode_csv_rows([field_names(contract, dms, has_op=ops is not None)], dms) + data
    return _gzip(data) if parsed.gzip else data


def field_names(contract: TableContract, dms: DmsSettings, has_op: bool) -> list[str]:
    """The names of a file's fields as a header row and Parquet columns give them."""
    names = [OP_NAME] if has_op else []
    names += [dms.timestamp_name or DEFAULT_TIMESTAMP_NAME] if dms.timestamp_column else []
    names += contract.column_names
    names += [dms.change_seq_name] if dms.change_seq_column else []
    lowered = [name.lower() for name in names]
    if len(set(lowered)) != len(lowered):
        clash = next(name for name in names if lowered.count(name.lower()) > 1)
        raise ValueError(f"table {contract.name!r}: two fields are named {clash!r}")
    return names


def change_seq_values(commit_ts: Values, first: int) -> pa.StringArray:
    """AR_H_CHANGE_SEQ values: the commit time's digits to the microsecond and an
    increasing change number from ``first`` (35 digits)."""
    stamps = _array(commit_ts).cast(pa.timestamp("us"))
    # %S of a microsecond timestamp is SS.ffffff: dropping the dot leaves the digits.
    digits = pc.replace_substring(pc.strftime(stamps, "%Y%m%d%H%M%S"), ".", "")
    numbers = pa.array(np.arange(first, first + len(stamps), dtype=np.int64)).cast(pa.string())
    return pc.binary_join_element_wise(digits, pc.utf8_lpad(numbers, 15, "0"), "")


def encode_csv_rows(rows: Iterable[Sequence[str | None]], dms: DmsSettings) -> bytes:
    """Rows given field by field (Op, timestamp and change seq included; None is NULL)
    as one DMS CSV file. Rows may differ in width, so malformed files can be written too."""
    rows = [list(row) for row in rows]
    flat = _csv_field(
        pa.array([field for row in rows for field in row], pa.string()), dms.delimiter
    )
    texts = pc.fill_null(flat, dms.null_value).to_pylist()
    lines, start = [], 0
    for row in rows:
        lines.append(dms.delimiter.join(texts[start : start + len(row)]) + "\n")
        start += len(row)
    return "".join(lines).encode("utf-8")


def _fields(
    columns: list[pa.Array],
    rows: int,
    dms: DmsSettings,
    *,
    ops: Values | None,
    commit_ts: Values | None,
    change_seqs: Values | None,
) -> list[pa.Array]:
    """Every field of the file as one array: [Op,] [timestamp,] columns [, change seq].

    ``ops`` None writes no Op column; ``change_seqs`` None leaves the change seq
    empty (full-load rows have none). The timestamp is text, as DMS writes it.
    """
    fields = [] if ops is None else [_array(ops).cast(pa.string())]
    if dms.timestamp_column:
        if commit_ts is None:
            raise ValueError("the DMS settings have a timestamp column: commit_ts is required")
        fields.append(_timestamp_text(_array(commit_ts)))
    fields += columns
    if dms.change_seq_column:
        fields.append(
            pa.nulls(rows, pa.string())
            if change_seqs is None
            else _array(change_seqs).cast(pa.string())
        )
    return fields


def _typed(values: pa.Array, arrow_type: pa.DataType) -> pa.Array:
    """A contract column in its contract type; text stays text (written verbatim)."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return values.cast(pa.string())
    return values.cast(arrow_type)


def _lines(texts: list[pa.Array], dms: DmsSettings) -> pa.StringArray:
    """Every row of the fields' texts as one CSV line ending in LF."""
    quoted = [_csv_field(text, dms.delimiter) for text in texts]
    line = pc.binary_join_element_wise(
        *quoted, dms.delimiter, null_handling="replace", null_replacement=dms.null_value
    )
    return pc.binary_join_element_wise(line, "\n", "")


def _joined(lines: pa.StringArray) -> bytes:
    """The lines' text as one block, straight from Arrow's buffers."""
    if not len(lines):
        return b""
    offsets = np.frombuffer(
        lines.buffers()[1], np.int32, count=len(lines) + 1, offset=lines.offset * 4
    )
    return memoryview(lines.buffers()[2])[offsets[0] : offsets[-1]].tobytes()


def _gzip(data: bytes) -> bytes:
    """A ``.csv.gz`` file's bytes; no timestamp in the header, so output is reproducible."""
    return compress(data, compresslevel=6, mtime=0)


def _parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def dms_text(values: pa.Array) -> pa.Array:
    """One column as the text DMS writes for it in CSV (PostgreSQL source); text as it is.

    Raises ``pa.ArrowNotImplementedError`` for types without a text form (lists, structs).
    """
    kind = values.type
    if pa.types.is_dictionary(kind):
        return dms_text(values.dictionary_decode())
    if pa.types.is_timestamp(kind) or pa.types.is_time(kind):
        return _timestamp_text(values)
    if pa.types.is_decimal(kind):
        return _decimal_text(values)
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return _bytea_text(values)
    if pa.types.is_fixed_size_binary(kind):
        return _bytea_text(values.cast(pa.binary()))
    return values.cast(pa.string())


def _timestamp_text(values: pa.Array) -> pa.Array:
    """``yyyy-MM-dd HH:mm:ss[.SSSSSS]`` (or ``HH:mm:ss[...]``) without trailing fraction
    zeros; timestamptz in UTC without an offset."""
    if pa.types.is_timestamp(values.type):
        values = values.cast(pa.timestamp("us"))
    else:  # microseconds, so the text always has the fraction the pattern below trims
        values = values.cast(pa.time64("us"))
    return pc.replace_substring_regex(values.cast(pa.string()), r"\.?0+$", "")


def _decimal_text(values: pa.Array) -> pa.Array:
    """Plain decimal text with the type's scale (``12.50``, ``0.0000001``).

    Arrow, like Java's BigDecimal, writes a value below 1e-6 as its unscaled digits and an
    exponent (``1E-7``, ``-1.00E-7``, ``0E-9``): such a value is ``[-]0.`` and its digits
    left-padded to the scale.
    """
    text = values.cast(pa.string())
    scientific = pc.match_substring(text, "E")
    if not pc.any(scientific).as_py():
        return text
    parts = pc.extract_regex(
        pc.if_else(scientific, text, "0E"), r"^(?P<sign>-?)(?P<digits>[0-9.]+)E"
    )
    digits = pc.replace_substring(pc.struct_field(parts, "digits"), ".", "")
    plain = pc.binary_join_element_wise(
        pc.struct_field(parts, "sign"), "0.", pc.utf8_lpad(digits, values.type.scale, "0"), ""
    )
    return pc.if_else(scientific, plain, text)


def _bytea_text(values: pa.Array) -> pa.Array:
    """PostgreSQL's bytea text form, ``\\x`` and lower-case hex digits.

    Arrow has no hex kernel, so the text is built on the buffers: value ``i`` becomes
    ``\\x`` at ``2 * i + 2 * offset[i]`` followed by two digits per byte.
    """
    values = values.cast(pa.large_binary())
    offsets = np.frombuffer(
        values.buffers()[1], np.int64, count=len(values) + 1, offset=values.offset * 8
    )
    data = values.buffers()[2]
    raw = (
        np.frombuffer(data, np.uint8)[offsets[0] : offsets[-1]]
        if data is not None
        else np.zeros(0, np.uint8)
    )
    lengths = np.diff(offsets)
    starts = 2 * np.arange(len(values)) + 2 * (offsets[:-1] - offsets[0])
    text = np.empty(len(raw) * 2 + len(values) * 2, np.uint8)
    text[starts] = ord("\\")
    text[starts + 1] = ord("x")
    # Byte j of value i sits at start_i + 2 + 2 * (j - offset_i) = 2 * j + 2 * (i + 1).
    rows = np.repeat(np.arange(len(values)), lengths)
    at = 2 * np.arange(len(raw)) + 2 * (rows + 1)
    text[at] = _HEX_DIGITS[raw, 0]
    text[at + 1] = _HEX_DIGITS[raw, 1]
    text_offsets = np.append(starts, len(text)).astype(np.int64)
    hexed = pa.Array.from_buffers(
        pa.large_string(), len(values), [None, pa.py_buffer(text_offsets), pa.py_buffer(text)]
    )
    return pc.if_else(values.is_valid(), hexed, pa.scalar(None, pa.large_string())).cast(
        pa.string()
    )


def _csv_field(text: pa.Array, delimiter: str) -> pa.Array:
    """RFC 4180: quote a field only when it holds the delimiter, a quote, CR or LF."""
    needs_quotes = pc.match_substring_regex(text, f'[{re.escape(delimiter)}"\r\n]')
    if not pc.any(needs_quotes).as_py():
        return text
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
    return pc.if_else(needs_quotes, quoted, text)


def _array(values: Values) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
