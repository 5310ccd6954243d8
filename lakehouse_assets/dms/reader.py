"""Read DMS CSV files into Arrow: contract column names, raw string values, DMS metadata.

A DMS CSV row is ``[Op,] [commit timestamp,] <contract columns...> [, AR_H_CHANGE_SEQ]``:
CDC rows always start with Op, full-load rows only with
``include_op_for_full_load``. Files are RFC 4180 CSV without a header; quoted
fields may hold the delimiter, doubled quotes and newlines.

Parsing is pyarrow's multi-threaded CSV reader. Only when it rejects a file do
we scan it again row by row, to name the line and the value at fault.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from lakehouse_assets.contracts import DmsSettings, TableContract
from lakehouse_assets.dms.keys import FileKind, parse_object_key

OP = "_op"
COMMIT_TS = "_commit_ts"
CHANGE_SEQ = "_change_seq"
SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"
METADATA_COLUMNS = (OP, COMMIT_TS, CHANGE_SEQ, SOURCE_FILE, SOURCE_ROW)
OPS = ("I", "U", "D")
COMMIT_TS_TYPE = pa.timestamp("us", tz="UTC")
# Arrow hands a reader thread blocks of this size; large blocks keep small
# files in one block and big files well parallelised.
_BLOCK_SIZE = 16 << 20


class DmsFormatError(ValueError):
    """A structural fault in a DMS file; the message names file, line and value."""


@dataclass(frozen=True)
class _Layout:
    """Which fields a file's rows hold, in order."""

    has_op: bool
    has_timestamp: bool
    has_change_seq: bool
    columns: tuple[str, ...]

    @property
    def field_names(self) -> list[str]:
        names = [OP] if self.has_op else []
        names += [COMMIT_TS] if self.has_timestamp else []
        names += list(self.columns)
        names += [CHANGE_SEQ] if self.has_change_seq else []
        return names

    def describe(self) -> str:
        parts = ["Op"] if self.has_op else []
        parts += ["timestamp"] if self.has_timestamp else []
        parts.append(f"{len(self.columns)} contract columns")
        parts += ["AR_H_CHANGE_SEQ"] if self.has_change_seq else []
        return " + ".join(parts)


def raw_schema(contract: TableContract) -> pa.Schema:
    """The schema of what the reader returns for ``contract``."""
    return pa.schema(
        [pa.field(name, pa.string()) for name in contract.column_names]
        + [
            pa.field(OP, pa.string()),
            pa.field(COMMIT_TS, COMMIT_TS_TYPE),
            pa.field(CHANGE_SEQ, pa.string()),
            pa.field(SOURCE_FILE, pa.string()),
            pa.field(SOURCE_ROW, pa.int64()),
        ]
    )


def read_dms_file(data: bytes, key: str, contract: TableContract, dms: DmsSettings) -> pa.Table:
    """Parse one DMS file (plain or gzip) of ``contract``'s table.

    Full-load rows without an Op column get ``_op = "I"``: a loaded row is an
    upsert of the row's state at transfer time.
    """
    parsed = parse_object_key(key, dms)
    layout = _Layout(
        has_op=parsed.kind is FileKind.CDC or dms.include_op_for_full_load,
        has_timestamp=dms.timestamp_column,
        has_change_seq=dms.change_seq_column,
        columns=tuple(contract.column_names),
    )
    if parsed.gzip or data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DmsFormatError(f"{key}: not a valid gzip file: {exc}") from exc
    if not data.strip():
        return raw_schema(contract).empty_table()
    table = _parse_csv(data, key, layout, dms)
    return _with_metadata(table, data, key, layout, contract, dms)


def read_dms_files(
    files: Iterable[tuple[str, bytes]], contract: TableContract, dms: DmsSettings
) -> pa.Table:
    """Parse several files of one table into one table, in the order given."""
    tables = [read_dms_file(data, key, contract, dms) for key, data in files]
    if not tables:
        return raw_schema(contract).empty_table()
    return pa.concat_tables(tables)


def _parse_csv(data: bytes, key: str, layout: _Layout, dms: DmsSettings) -> pa.Table:
    names = layout.field_names
    try:
        return pcsv.read_csv(
            io.BytesIO(data),
            read_options=pcsv.ReadOptions(column_names=names, block_size=_BLOCK_SIZE),
            parse_options=pcsv.ParseOptions(
                delimiter=dms.delimiter,
                quote_char='"',
                double_quote=True,
                escape_char=False,
                newlines_in_values=True,
            ),
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                null_values=[dms.null_value],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise _diagnose(data, key, layout, dms, exc) from None


def _with_metadata(
    table: pa.Table,
    data: bytes,
    key: str,
    layout: _Layout,
    contract: TableContract,
    dms: DmsSettings,
) -> pa.Table:
    rows = table.num_rows
    if layout.has_op:
        op = table[OP]
        bad = pc.invert(pc.fill_null(pc.is_in(op, pa.array(OPS)), False))
        if pc.any(bad).as_py():
            row = pc.index(bad, True).as_py()
            raise DmsFormatError(
                f"{key}, line {_line_of_row(data, row, dms)}: Op must be I, U or D, "
                f"found {op[row].as_py()!r}"
            )
    else:
        op = pa.array(np.full(rows, "I", dtype=object), pa.string())

    if layout.has_timestamp:
        commit_ts = _parse_commit_ts(table[COMMIT_TS], data, key, dms)
    else:
        commit_ts = pa.nulls(rows, COMMIT_TS_TYPE)
    change_seq = table[CHANGE_SEQ] if layout.has_change_seq else pa.nulls(rows, pa.string())
    source_file = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(rows, dtype=np.int32)), pa.array([key])
    ).cast(pa.string())
    source_row = pa.array(np.arange(1, rows + 1, dtype=np.int64))
    columns = [table[name] for name in contract.column_names]
    return pa.Table.from_arrays(
        columns + [op, commit_ts, change_seq, source_file, source_row],
        schema=raw_schema(contract),
    )


def _parse_commit_ts(
    raw: pa.ChunkedArray, data: bytes, key: str, dms: DmsSettings
) -> pa.ChunkedArray:
    """``yyyy-MM-dd HH:mm:ss[.SSSSSS]`` in UTC; a missing or bad value is a structural fault."""
    if raw.null_count:
        row = pc.index(pc.is_null(raw), True).as_py()
        raise DmsFormatError(
            f"{key}, line {_line_of_row(data, row, dms)}: the DMS timestamp column is empty"
        )
    try:
        return pc.cast(raw, pa.timestamp("us")).cast(COMMIT_TS_TYPE)
    except pa.ArrowInvalid:
        for row, value in enumerate(raw.to_pylist()):
            try:
                pc.cast(pa.array([value]), pa.timestamp("us"))
            except pa.ArrowInvalid:
                raise DmsFormatError(
                    f"{key}, line {_line_of_row(data, row, dms)}: DMS timestamp {value!r} is not "
                    "yyyy-MM-dd HH:mm:ss[.SSSSSS]"
                ) from None
        raise


def _rows_with_lines(data: bytes, dms: DmsSettings):
    """Yield (first line number, fields) per non-empty CSV row: the slow path for messages."""
    text = data.decode("utf-8")
    reader = csv.reader(
        io.StringIO(text, newline=""),
        delimiter=dms.delimiter,
        quotechar='"',
        doublequote=True,
        strict=True,
    )
    next_line = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        if fields:
            yield next_line, fields
        next_line = reader.line_num + 1


def _line_of_row(data: bytes, row: int, dms: DmsSettings) -> int:
    for index, (line, _) in enumerate(_rows_with_lines(data, dms)):
        if index == row:
            return line
    return -1


def _diagnose(
    data: bytes, key: str, layout: _Layout, dms: DmsSettings, exc: Exception
) -> DmsFormatError:
    """Turn a failed fast parse into a message naming the file, line and what was found."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        line = data.count(b"\n", 0, bad.start) + 1
        return DmsFormatError(
            f"{key}, line {line}: not UTF-8 "
            f"(byte {data[bad.start : bad.start + 1]!r} at offset {bad.start})"
        )
    expected = len(layout.field_names)
    try:
        for line, fields in _rows_with_lines(data, dms):
            if len(fields) != expected:
                preview = dms.delimiter.join(fields)
                preview = preview if len(preview) <= 200 else preview[:200] + "..."
                return DmsFormatError(
                    f"{key}, line {line}: expected {expected} fields ({layout.describe()}), "
                    f"found {len(fields)}: {preview!r}"
                )
    except csv.Error as bad_csv:
        return DmsFormatError(f"{key}: malformed CSV: {bad_csv}")
    return DmsFormatError(f"{key}: cannot parse as DMS CSV: {exc}")
