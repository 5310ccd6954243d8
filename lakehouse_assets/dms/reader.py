"""Read DMS files into Arrow: contract column names, raw string values, DMS metadata.

CSV (``.csv``, ``.csv.gz``): a DMS row is ``[Op,] [commit timestamp,] <contract
columns...> [, change seq]``: CDC rows always start with Op, full-load rows only with
``include_op_for_full_load``. Files are RFC 4180 CSV; quoted fields may hold the
delimiter, doubled quotes and newlines. Without a header row fields are known by
position: the timestamp right after Op, the change seq last. With ``add_column_name``
(DMS ``AddColumnName``) every file starts with a header row and fields are known by name,
case-insensitively, so a file whose columns are reordered reads the same: Op is the column
named ``Op``; the timestamp is the column named ``timestamp_name``, else the one right
after Op (without Op: the first that is not a contract column); the change seq is the
column named ``change_seq_name``.

Parquet (``.parquet``): columns are known by name as with a header row. Values arrive
typed; they become the text DMS writes in CSV (``writer.dms_text``), so bronze stays raw
strings and silver types both formats by the same rules: timestamps ``yyyy-MM-dd
HH:mm:ss[.ffffff]`` (timestamptz in UTC, no offset), dates ISO, booleans ``true``/``false``,
decimals plain, bytes ``\\x`` and hex, text as it is. NULL stays NULL and '' stays ''
(Parquet has no ``CsvNullValue``). A file is read as its name says, whatever
``dms.format`` says, so a table whose endpoint changed format reads its older files too.

Schema drift: columns of a header row or Parquet file that the contract lacks are kept,
as raw strings after the standard columns, named as the file names them, lower-cased.
The table's schema metadata then says so, as JSON:

- ``lakehouse.extra_columns`` (``EXTRA_COLUMNS_KEY``): the extra columns the table holds,
  e.g. ``["col_a","col_b"]``;
- ``lakehouse.extra_columns_by_file`` (``EXTRA_COLUMNS_BY_FILE_KEY``): file key -> its
  extra columns, e.g. ``{"bronze/.../20240102-101500000.csv":["col_a"]}``
  (``extra_columns_by_file``).

A file without drift has neither key. ``raw_schema(contract)`` is the schema of the
standard columns; ``without_extra_columns`` drops the extras (keeping the by-file report),
and ``read_dms_files`` returns the standard columns only, unless ``keep_extra_columns``.
A file that lacks a contract column is a structural fault (``DmsFormatError``).

Parsing is pyarrow's multi-threaded CSV reader. Only when it rejects a file do
we scan it again row by row, to name the line and the value at fault.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from lakehouse_assets.contracts import DmsSettings, TableContract
from lakehouse_assets.dms.keys import DmsObjectKey, FileFormat, FileKind, parse_object_key
from lakehouse_assets.dms.writer import dms_text

OP = "_op"
COMMIT_TS = "_commit_ts"
CHANGE_SEQ = "_change_seq"
SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"
METADATA_COLUMNS = (OP, COMMIT_TS, CHANGE_SEQ, SOURCE_FILE, SOURCE_ROW)
OPS = ("I", "U", "D")
COMMIT_TS_TYPE = pa.timestamp("us", tz="UTC")
EXTRA_COLUMNS_KEY = b"lakehouse.extra_columns"
EXTRA_COLUMNS_BY_FILE_KEY = b"lakehouse.extra_columns_by_file"
# Arrow hands a reader thread blocks of this size; large blocks keep small
# files in one block and big files well parallelised.
_BLOCK_SIZE = 16 << 20

# Where in a file a row sits, for messages: "line 4" (CSV), "row 4" (Parquet).
Locate = Callable[[int], str]


class DmsFormatError(ValueError):
    """A structural fault in a DMS file; the message names file, line and value."""


@dataclass(frozen=True)
class FileLayout:
    """A file's fields in file order, under the reader's names: ``_op``, ``_commit_ts``,
    the contract's column names, ``_change_seq`` and extra (drift) columns."""

    fields: tuple[str, ...]
    # The names the file gives its fields (header row, Parquet); empty: known by position.
    source_names: tuple[str, ...] = ()
    extra_columns: tuple[str, ...] = ()
    # The Arrow type of each field of a Parquet file; empty for CSV (all text).
    source_types: tuple[pa.DataType, ...] = ()


def raw_schema(contract: TableContract) -> pa.Schema:
    """The schema of the standard columns the reader returns for ``contract``."""
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
    """Parse one DMS file (CSV, plain or gzip, or Parquet) of ``contract``'s table.

    Returns the standard columns (``raw_schema``), then any extra columns of schema drift
    (see the module's docstring). Full-load rows without an Op column get ``_op = "I"``:
    a loaded row is an upsert of the row's state at transfer time.
    """
    parsed = parse_object_key(key, dms)
    has_op = _has_op(parsed, dms)
    if parsed.format is FileFormat.PARQUET:
        return _read_parquet(data, key, has_op, contract, dms)
    data = _decompressed(data, parsed)
    if not data.strip():
        return raw_schema(contract).empty_table()
    layout = _csv_layout(data, key, has_op, contract, dms)
    table = _parse_csv(data, key, layout, contract, dms)
    if not layout.source_names:
        _reject_header_row(table, key, layout, contract)
    data_start = 1 if layout.source_names else 0  # the header row is no data row

    def locate(row: int) -> str:
        return f"line {_line_of_row(data, row + data_start, dms)}"

    return _with_metadata(table, key, layout, contract, locate)


def read_dms_files(
    files: Iterable[tuple[str, bytes]],
    contract: TableContract,
    dms: DmsSettings,
    *,
    keep_extra_columns: bool = False,
) -> pa.Table:
    """Parse several files of one table into one table, in the order given.

    The result has the standard columns (``raw_schema``) and, in its metadata, the extra
    columns of every drifting file (``extra_columns_by_file``). With ``keep_extra_columns``
    the extra columns follow, null in the rows of files without them.
    """
    tables = [read_dms_file(data, key, contract, dms) for key, data in files]
    if not tables:
        return raw_schema(contract).empty_table()
    by_file = {
        file: names for table in tables for file, names in extra_columns_by_file(table).items()
    }
    if keep_extra_columns:
        combined = pa.concat_tables(tables, promote_options="permissive")
        extras = combined.column_names[len(raw_schema(contract)) :]
    else:
        combined = pa.concat_tables([without_extra_columns(table) for table in tables])
        extras = []
    return combined.replace_schema_metadata(_drift_metadata(extras, by_file))


def extra_columns_by_file(table: pa.Table) -> dict[str, list[str]]:
    """File key -> the columns it has that the contract lacks, for the files read into
    ``table`` that have any."""
    metadata = table.schema.metadata or {}
    return json.loads(metadata.get(EXTRA_COLUMNS_BY_FILE_KEY, b"{}"))


def without_extra_columns(table: pa.Table) -> pa.Table:
    """``table`` with the standard columns only; the by-file drift report stays."""
    metadata = table.schema.metadata or {}
    extras = json.loads(metadata.get(EXTRA_COLUMNS_KEY, b"[]"))
    if not extras:
        return table
    return table.drop_columns(extras).replace_schema_metadata(
        _drift_metadata([], extra_columns_by_file(table))
    )


def file_layout(
    key: str, contract: TableContract, dms: DmsSettings, read: Callable[[], bytes]
) -> FileLayout:
    """How ``read_dms_file`` maps the fields of file ``key``, for other readers of the same
    files (Spark). ``read`` gives the file's bytes; it is called only when the layout depends
    on them (a header row, Parquet). Raises ``DmsFormatError`` as ``read_dms_file`` does for
    a header row or Parquet schema it rejects."""
    parsed = parse_object_key(key, dms)
    has_op = _has_op(parsed, dms)
    if parsed.format is FileFormat.PARQUET:
        schema = _parquet_file(read(), key).schema_arrow
        return _named_layout(
            schema.names, key, "Parquet columns", has_op, contract, dms, schema.types
        )
    if not dms.add_column_name:
        return _positional_layout(has_op, contract, dms)
    data = _decompressed(read(), parsed)
    if not data.strip():
        return _positional_layout(has_op, contract, dms)  # no header row to read
    return _csv_layout(data, key, has_op, contract, dms)


def _has_op(parsed: DmsObjectKey, dms: DmsSettings) -> bool:
    return parsed.kind is FileKind.CDC or dms.include_op_for_full_load


def _decompressed(data: bytes, parsed: DmsObjectKey) -> bytes:
    if parsed.gzip or data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DmsFormatError(f"{parsed.key}: not a valid gzip file: {exc}") from exc
    return data


# ---------------------------------------------------------------------------- layouts


def _positional_layout(has_op: bool, contract: TableContract, dms: DmsSettings) -> FileLayout:
    """The fields of a CSV file without a header row: [Op,] [timestamp,] columns [, seq]."""
    fields = [OP] if has_op else []
    fields += [COMMIT_TS] if dms.timestamp_column else []
    fields += contract.column_names
    fields += [CHANGE_SEQ] if dms.change_seq_column else []
    return FileLayout(tuple(fields))


def _csv_layout(
    data: bytes, key: str, has_op: bool, contract: TableContract, dms: DmsSettings
) -> FileLayout:
    if not dms.add_column_name:
        return _positional_layout(has_op, contract, dms)
    header = _header_row(data, key, dms)
    contract_names = {name.lower() for name in contract.column_names}
    if not contract_names & {name.lower() for name in header}:
        preview = _preview(dms.delimiter.join(header))
        raise DmsFormatError(
            f"{key}, line 1: expected a header row (dms.add_column_name: true), found "
            f"{preview!r}, which names no contract column: set dms.add_column_name: false "
            "if the files have no header row"
        )
    return _named_layout(header, key, "line 1 (header row)", has_op, contract, dms)


def _header_row(data: bytes, key: str, dms: DmsSettings) -> list[str]:
    """The names of the first line; only that line is decoded (names hold no newlines)."""
    end = data.find(b"\n")
    line = data if end < 0 else data[:end]
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as bad:
        raise DmsFormatError(f"{key}, line 1: the header row is not UTF-8 ({bad})") from None
    reader = csv.reader([text], delimiter=dms.delimiter, quotechar='"', strict=True)
    try:
        return next(reader)
    except csv.Error as bad_csv:
        raise DmsFormatError(f"{key}, line 1: malformed CSV header row: {bad_csv}") from None


def _named_layout(
    names: Sequence[str],
    key: str,
    where: str,
    has_op: bool,
    contract: TableContract,
    dms: DmsSettings,
    types: Sequence[pa.DataType] = (),
) -> FileLayout:
    """Map the names a file gives its columns (header row, Parquet) to the reader's fields.

    Names compare case-insensitively. Columns the contract lacks become extra columns,
    named as the file names them, lower-cased.
    """

    def fault(message: str) -> DmsFormatError:
        return DmsFormatError(f"{key}, {where}: {message}")

    lowered = [name.lower() for name in names]
    position: dict[str, int] = {}
    for index, name in enumerate(lowered):
        if not name:
            raise fault(f"column {index + 1} has no name")
        if name in position:
            raise fault(f"column {names[index]!r} appears twice (names compare case-insensitively)")
        position[name] = index

    fields: list[str | None] = [None] * len(names)
    if "op" in position:
        fields[position["op"]] = OP
    elif has_op:
        raise fault(
            "no Op column (CDC files have one, and full-load files with "
            "dms.include_op_for_full_load)"
        )
    if dms.change_seq_column:
        _claim(fields, position, dms.change_seq_name, CHANGE_SEQ, fault, "dms.change_seq_column")
    if dms.timestamp_column and dms.timestamp_name:
        _claim(fields, position, dms.timestamp_name, COMMIT_TS, fault, "dms.timestamp_column")

    missing = []
    for column in contract.column_names:
        index = position.get(column.lower())
        if index is None or fields[index] is not None:
            missing.append(column)
        else:
            fields[index] = column
    if missing:
        raise fault(f"missing contract column(s) {missing}; the file has {list(names)}")

    if dms.timestamp_column and not dms.timestamp_name:
        # TimestampColumnName without a name in the contract: DMS puts it right after Op.
        index = fields.index(OP) + 1 if OP in fields else _first_unclaimed(fields)
        if index >= len(fields) or fields[index] is not None:
            after = "right after Op" if OP in fields else "besides the contract columns"
            raise fault(
                f"no timestamp column {after} (dms.timestamp_column: true); if the files have "
                "it elsewhere, name it: timestamp_column: <name>"
            )
        fields[index] = COMMIT_TS

    resolved, extras = [], []
    for index, field in enumerate(fields):
        if field is None:
            field = lowered[index]
            if field in METADATA_COLUMNS:
                raise fault(f"column {names[index]!r} has the name of a reader metadata column")
            extras.append(field)
        resolved.append(field)
    return FileLayout(
        fields=tuple(resolved),
        source_names=tuple(names),
        extra_columns=tuple(extras),
        source_types=tuple(types),
    )


def _claim(
    fields: list[str | None],
    position: dict[str, int],
    name: str,
    field: str,
    fault: Callable[[str], DmsFormatError],
    setting: str,
) -> None:
    """Assign the column named ``name`` to ``field``; the file must have it."""
    index = position.get(name.lower())
    if index is None or fields[index] is not None:
        raise fault(f"no column {name!r} ({setting})")
    fields[index] = field


def _first_unclaimed(fields: list[str | None]) -> int:
    return next((index for index, field in enumerate(fields) if field is None), len(fields))


def _describe(layout: FileLayout, dms: DmsSettings) -> str:
    """What a row's fields are, for messages: ``Op + timestamp + 3 contract columns``."""
    if layout.source_names:
        return f"the {len(layout.fields)} columns of the header row"
    parts = ["Op"] if OP in layout.fields else []
    parts += ["timestamp"] if COMMIT_TS in layout.fields else []
    metadata = {OP, COMMIT_TS, CHANGE_SEQ}
    parts.append(f"{sum(field not in metadata for field in layout.fields)} contract columns")
    parts += [dms.change_seq_name] if CHANGE_SEQ in layout.fields else []
    return " + ".join(parts)


# ---------------------------------------------------------------------------- Parquet


def _parquet_file(data: bytes, key: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise DmsFormatError(f"{key}: not a readable Parquet file: {exc}") from None


def _read_parquet(
    data: bytes, key: str, has_op: bool, contract: TableContract, dms: DmsSettings
) -> pa.Table:
    file = _parquet_file(data, key)
    schema = file.schema_arrow
    layout = _named_layout(
        schema.names, key, "Parquet columns", has_op, contract, dms, schema.types
    )
    try:
        table = file.read()
    except (pa.ArrowException, OSError) as exc:
        raise DmsFormatError(f"{key}: not a readable Parquet file: {exc}") from None
    texts = [
        _parquet_text(table.column(index), key, name) for index, name in enumerate(schema.names)
    ]
    return _with_metadata(
        pa.Table.from_arrays(texts, names=list(layout.fields)),
        key,
        layout,
        contract,
        lambda row: f"row {row + 1}",
    )


def _parquet_text(values: pa.ChunkedArray, key: str, name: str) -> pa.ChunkedArray:
    """A Parquet column as the text the CSV twin holds, chunk by chunk."""
    try:
        return pa.chunked_array([dms_text(chunk) for chunk in values.chunks], pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DmsFormatError(
            f"{key}: Parquet column {name!r} ({values.type}) has no DMS text form: {exc}"
        ) from None


# ---------------------------------------------------------------------------- both formats


def _with_metadata(
    table: pa.Table,
    key: str,
    layout: FileLayout,
    contract: TableContract,
    locate: Locate,
) -> pa.Table:
    """The standard columns from the parsed fields, then the extra columns, if any."""
    rows = table.num_rows
    if OP in layout.fields:
        op = table[OP]
        bad = pc.invert(pc.fill_null(pc.is_in(op, pa.array(OPS)), False))
        if pc.any(bad).as_py():
            row = pc.index(bad, True).as_py()
            raise DmsFormatError(
                f"{key}, {locate(row)}: Op must be I, U or D, found {op[row].as_py()!r}"
            )
    else:
        op = pa.array(np.full(rows, "I", dtype=object), pa.string())

    if COMMIT_TS in layout.fields:
        commit_ts = _parse_commit_ts(table[COMMIT_TS], key, locate)
    else:
        commit_ts = pa.nulls(rows, COMMIT_TS_TYPE)
    change_seq = table[CHANGE_SEQ] if CHANGE_SEQ in layout.fields else pa.nulls(rows, pa.string())
    source_file = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(rows, dtype=np.int32)), pa.array([key])
    ).cast(pa.string())
    source_row = pa.array(np.arange(1, rows + 1, dtype=np.int64))
    columns = [table[name] for name in contract.column_names]
    standard = pa.Table.from_arrays(
        columns + [op, commit_ts, change_seq, source_file, source_row],
        schema=raw_schema(contract),
    )
    if not layout.extra_columns:
        return standard
    for name in layout.extra_columns:
        standard = standard.append_column(pa.field(name, pa.string()), table[name])
    extras = list(layout.extra_columns)
    return standard.replace_schema_metadata(_drift_metadata(extras, {key: extras}))


def _drift_metadata(extras: list[str], by_file: dict[str, list[str]]) -> dict[bytes, bytes] | None:
    """The schema metadata that reports schema drift (module docstring); None: no drift."""
    metadata = {}
    if extras:
        metadata[EXTRA_COLUMNS_KEY] = json.dumps(extras, separators=(",", ":")).encode()
    if by_file:
        metadata[EXTRA_COLUMNS_BY_FILE_KEY] = json.dumps(by_file, separators=(",", ":")).encode()
    return metadata or None


def _parse_commit_ts(raw: pa.ChunkedArray, key: str, locate: Locate) -> pa.ChunkedArray:
    """``yyyy-MM-dd HH:mm:ss[.SSSSSS]`` in UTC; a missing or bad value is a structural fault."""
    if raw.null_count:
        row = pc.index(pc.is_null(raw), True).as_py()
        raise DmsFormatError(f"{key}, {locate(row)}: the DMS timestamp column is empty")
    try:
        return pc.cast(raw, pa.timestamp("us")).cast(COMMIT_TS_TYPE)
    except pa.ArrowInvalid:
        for row, value in enumerate(raw.to_pylist()):
            try:
                pc.cast(pa.array([value]), pa.timestamp("us"))
            except pa.ArrowInvalid:
                raise DmsFormatError(
                    f"{key}, {locate(row)}: DMS timestamp {value!r} is not "
                    "yyyy-MM-dd HH:mm:ss[.SSSSSS]"
                ) from None
        raise


# ---------------------------------------------------------------------------- CSV


def _parse_csv(
    data: bytes, key: str, layout: FileLayout, contract: TableContract, dms: DmsSettings
) -> pa.Table:
    names = list(layout.fields)
    try:
        return pcsv.read_csv(
            io.BytesIO(data),
            read_options=pcsv.ReadOptions(
                column_names=names,
                skip_rows=1 if layout.source_names else 0,
                block_size=_BLOCK_SIZE,
            ),
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
        raise _diagnose(data, key, layout, contract, dms, exc) from None


def _looks_like_header(fields: Sequence[str | None], has_op: bool, contract: TableContract) -> bool:
    """A first row whose Op field says ``Op``, or which names every contract column."""
    if has_op and fields and (fields[0] or "").lower() == "op":
        return True
    names = {field.lower() for field in fields if field}
    return {name.lower() for name in contract.column_names} <= names


def _header_row_error(key: str) -> DmsFormatError:
    return DmsFormatError(
        f"{key}, line 1: looks like a header row (AddColumnName): set dms.add_column_name: true"
    )


def _reject_header_row(
    table: pa.Table, key: str, layout: FileLayout, contract: TableContract
) -> None:
    """A file read without header rows (``add_column_name`` false) whose first row is one.

    With an Op column its first field tells (a header's says ``Op``), which spares
    reading the whole first row of every CDC file.
    """
    if not table.num_rows:
        return
    has_op = OP in layout.fields
    columns = [table[OP]] if has_op else table.columns
    if _looks_like_header([column[0].as_py() for column in columns], has_op, contract):
        raise _header_row_error(key)


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


def _preview(text: str) -> str:
    return text if len(text) <= 200 else text[:200] + "..."


def _diagnose(
    data: bytes,
    key: str,
    layout: FileLayout,
    contract: TableContract,
    dms: DmsSettings,
    exc: Exception,
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
    expected = len(layout.fields)
    has_op = OP in layout.fields
    try:
        for line, fields in _rows_with_lines(data, dms):
            if (
                line == 1
                and not layout.source_names
                and _looks_like_header(fields, has_op, contract)
            ):
                return _header_row_error(key)
            if len(fields) != expected:
                return DmsFormatError(
                    f"{key}, line {line}: expected {expected} fields ({_describe(layout, dms)}), "
                    f"found {len(fields)}: {_preview(dms.delimiter.join(fields))!r}"
                )
    except csv.Error as bad_csv:
        return DmsFormatError(f"{key}: malformed CSV: {bad_csv}")
    return DmsFormatError(f"{key}: cannot parse as DMS CSV: {exc}")
