"""DMS CSV encoding: rows as the AWS DMS S3 target writes them, the inverse of ``reader``.

A row is ``[Op,] [commit timestamp,] <contract columns...> [, AR_H_CHANGE_SEQ]``, as
the ``DmsSettings`` say, ending in LF; a field is quoted only when it holds the
delimiter, a quote, CR or LF (RFC 4180), and NULL is written as ``null_value``.
Values are DMS's text for a PostgreSQL source: timestamps and times as
``yyyy-MM-dd HH:mm:ss[.SSSSSS]`` without trailing fraction zeros (timestamptz in
UTC, no offset), booleans ``true``/``false``, strings as they are; a column that
already holds strings is written verbatim.

``encode_dms_file`` encodes one file of a contract's rows, its key saying what the
file is (full load or CDC, gzip); ``encode_csv_rows`` writes rows given field by
field, for small hand-made files; ``full_load_key`` and ``cdc_key`` name files as
DMS does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from gzip import compress

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.contracts import DmsSettings, TableContract
from lakehouse_assets.dms.keys import FileKind, date_folder, parse_object_key, table_prefix

Values = pa.Array | pa.ChunkedArray


def full_load_key(dms: DmsSettings, schema: str, table: str, counter: int) -> str:
    """The key of a table's full-load file number ``counter`` (a hex counter from 1)."""
    return f"{table_prefix(dms, schema, table)}LOAD{counter:08X}.csv"


def cdc_key(dms: DmsSettings, schema: str, table: str, written_at: datetime) -> str:
    """The key of a table's CDC file written at ``written_at`` (UTC): its date folder,
    when date partitioning is on, and ``YYYYMMDD-HHMMSSmmm.csv``."""
    folder = (
        date_folder(dms.date_partition, written_at.date(), written_at.hour)
        if dms.date_partition.enabled
        else ""
    )
    name = f"{written_at:%Y%m%d-%H%M%S}{written_at.microsecond // 1000:03d}.csv"
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
    ``commit_ts`` is required with ``timestamp_column``. A ``.gz`` key is gzipped.
    """
    parsed = parse_object_key(key, dms)
    if parsed.kind is FileKind.CDC:
        if ops is None:
            raise ValueError(f"{key}: a CDC file needs the Op of every row")
    elif dms.include_op_for_full_load:
        ops = pa.repeat("I", rows.num_rows) if ops is None else ops
    else:
        ops = None
    data = _joined(
        _lines(rows, contract, dms, ops=ops, commit_ts=commit_ts, change_seqs=change_seqs)
    )
    return _gzip(data) if parsed.gzip else data


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


def _lines(
    rows: pa.Table,
    contract: TableContract,
    dms: DmsSettings,
    *,
    ops: Values | None,
    commit_ts: Values | None,
    change_seqs: Values | None = None,
) -> pa.StringArray:
    """Every row as one CSV line ending in LF: [Op,] [timestamp,] columns [, change seq].

    ``ops`` None writes no Op column; ``change_seqs`` None leaves AR_H_CHANGE_SEQ
    empty (full-load rows have none).
    """
    fields = [] if ops is None else [_array(ops)]
    if dms.timestamp_column:
        if commit_ts is None:
            raise ValueError("the DMS settings have a timestamp column: commit_ts is required")
        fields.append(_timestamp_text(_array(commit_ts)))
    for column in contract.columns:
        fields.append(_csv_field(_value_text(_array(rows[column.name])), dms.delimiter))
    if dms.change_seq_column:
        fields.append(
            pa.nulls(rows.num_rows, pa.string()) if change_seqs is None else _array(change_seqs)
        )
    line = pc.binary_join_element_wise(
        *fields, dms.delimiter, null_handling="replace", null_replacement=dms.null_value
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


def _value_text(values: pa.Array) -> pa.Array:
    """One column as DMS writes it for a PostgreSQL source."""
    if pa.types.is_timestamp(values.type) or pa.types.is_time(values.type):
        return _timestamp_text(values)
    return values.cast(pa.string())


def _timestamp_text(values: pa.Array) -> pa.Array:
    """``yyyy-MM-dd HH:mm:ss[.SSSSSS]`` (or ``HH:mm:ss[...]``) without trailing fraction
    zeros; timestamptz in UTC without an offset."""
    if pa.types.is_timestamp(values.type):
        values = values.cast(pa.timestamp("us"))
    return pc.replace_substring_regex(values.cast(pa.string()), r"\.?0+$", "")


def _csv_field(text: pa.Array, delimiter: str) -> pa.Array:
    """RFC 4180: quote a field only when it holds the delimiter, a quote, CR or LF."""
    needs_quotes = pc.match_substring_regex(text, f'[{re.escape(delimiter)}"\r\n]')
    if not pc.any(needs_quotes).as_py():
        return text
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
    return pc.if_else(needs_quotes, quoted, text)


def _array(values: Values) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
