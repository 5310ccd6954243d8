"""Table contracts: the one place a replicated table is described.

A contract file holds the DMS endpoint settings (``dms:``) and the replicated
tables (``tables:``). Loading validates everything up front, so a bad contract
fails with a message naming the file, the table and the field instead of
failing later inside a run.

Names are normalised here, once: table and column names become lower case, the only
names Glue, Athena and Trino keep (sources such as Oracle upper-case them). Every lake
name (asset keys, Iceberg tables and columns, gold) is the lower-case one; the DMS side
keeps the source's spelling where it matters (``TableContract.source_name``, the table's
DMS folder; header and Parquet columns match names case-insensitively). Two names that
differ only in case are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

SIMPLE_TYPES: dict[str, pa.DataType] = {
    "smallint": pa.int16(),
    "int": pa.int32(),
    "bigint": pa.int64(),
    "real": pa.float32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    # JSON and UUID stay text in Arrow and Iceberg; typing validates them.
    "json": pa.string(),
    "uuid": pa.string(),
    "bytes": pa.binary(),
}
_DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_PARAM_TRANSFORM = re.compile(r"^(bucket|truncate)\[(\d+)\]$")
_TIME_TRANSFORMS = {"year", "month", "day", "hour"}
_TEMPORAL_TYPES = {"date", "timestamp", "timestamptz"}
_DATE_SEQUENCES = {"YYYYMMDD", "YYYYMMDDHH", "YYYYMM", "MMYYYYDD", "DDMMYYYY"}
_DATE_DELIMITERS = {"SLASH": "/", "UNDERSCORE": "_", "DASH": "-", "NONE": ""}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

DEMO_CONTRACTS = "demo.yaml"


class ContractError(ValueError):
    """A contract file that cannot be used; the message names file, table and field."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True

    @property
    def arrow_type(self) -> pa.DataType:
        return arrow_type(self.type)

    @property
    def decimal(self) -> tuple[int, int] | None:
        match = _DECIMAL.match(self.type)
        return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class PartitionSpec:
    column: str
    transform: str  # identity, year, month, day, hour, bucket[N], truncate[N]

    @property
    def width(self) -> int | None:
        match = _PARAM_TRANSFORM.match(self.transform)
        return int(match.group(2)) if match else None


@dataclass(frozen=True)
class DatePartitioning:
    enabled: bool = False
    sequence: str = "YYYYMMDD"
    delimiter: str = "SLASH"

    @property
    def separator(self) -> str:
        return _DATE_DELIMITERS[self.delimiter]


DEFAULT_CHANGE_SEQ_NAME = "AR_H_CHANGE_SEQ"
FORMATS = ("csv", "parquet")
BAD_FILE_ACTIONS = ("quarantine", "fail")


@dataclass(frozen=True)
class DmsSettings:
    """How the DMS S3 endpoint writes files (its endpoint settings, by DMS name)."""

    bucket_folder: str = "bronze/dms"
    include_op_for_full_load: bool = False
    timestamp_column: bool = True
    # TimestampColumnName, where files name their columns (a header row, Parquet); empty:
    # the column after Op (CSV without header: always the 2nd, after Op).
    timestamp_name: str = ""
    change_seq_column: bool = False
    # The change sequence column's name (a transformation rule's add-column, or DMS's own
    # trailing AR_H_CHANGE_SEQ). CSV without a header: always the last column.
    change_seq_name: str = DEFAULT_CHANGE_SEQ_NAME
    null_value: str = ""
    delimiter: str = ","
    date_partition: DatePartitioning = field(default_factory=DatePartitioning)
    format: str = "csv"  # DataFormat: csv or parquet
    add_column_name: bool = False  # AddColumnName: CSV files start with a header row
    # A structurally bad file: quarantined (silver.<table>__quarantine) while the rest is
    # merged, or "fail": the run stops.
    on_bad_file: str = "quarantine"
    # A full load began this long before its earliest transfer time (README, "Full loads").
    load_start_margin_seconds: int = 60
    # LOAD files whose transfer times lie further apart than this belong to different loads.
    load_gap_minutes: int = 60


@dataclass(frozen=True)
class TableContract:
    name: str  # lower case: the lake's name (asset keys, silver.<name>)
    schema: str
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]
    partition_by: PartitionSpec | None = None
    history: bool = False  # keep every version in silver.<table>__history (SCD type 2)
    source_name: str = ""  # the table as the contract (the source, DMS) spells it; empty: name

    @property
    def dms_name(self) -> str:
        """The table's name in DMS object keys (``<schema>/<table>/...``): the source's spelling."""
        return self.source_name or self.name

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    @property
    def arrow_schema(self) -> pa.Schema:
        """The typed schema of the source table (contract order)."""
        return pa.schema(
            [pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.columns]
        )


@dataclass(frozen=True)
class Contracts:
    source: str  # the file the contracts were loaded from, for messages
    dms: DmsSettings
    tables: dict[str, TableContract]

    def table(self, name: str) -> TableContract:
        try:
            return self.tables[name]
        except KeyError:
            raise ContractError(
                f"{self.source}: no table {name!r} (known: {', '.join(sorted(self.tables))})"
            ) from None


def arrow_type(type_name: str) -> pa.DataType:
    if type_name in SIMPLE_TYPES:
        return SIMPLE_TYPES[type_name]
    match = _DECIMAL.match(type_name)
    if match:
        return pa.decimal128(int(match.group(1)), int(match.group(2)))
    raise ValueError(f"unknown type {type_name!r}")


def demo_contracts_path() -> Path:
    return Path(str(resources.files(__package__).joinpath(DEMO_CONTRACTS)))


def load_contracts(path: str | Path | None = None) -> Contracts:
    """Load and validate a contract file; ``None`` loads the packaged demo contracts."""
    source = Path(path) if path else demo_contracts_path()
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractError(f"{source}: cannot read contract file: {exc}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ContractError(f"{source}: not valid YAML: {exc}") from exc
    return parse_contracts(document, str(source))


@lru_cache(maxsize=8)
def load_contracts_cached(path: str = "") -> Contracts:
    """``load_contracts``, once per path and process: the definitions and the resources of a
    process see one and the same contracts."""
    return load_contracts(path or None)


def parse_contracts(document: Any, source: str) -> Contracts:
    where = _Where(source)
    if not isinstance(document, dict):
        raise where.error("the file must be a mapping with 'dms' and 'tables'")
    _reject_unknown(document, {"dms", "tables"}, where)
    dms = _parse_dms(document.get("dms") or {}, where.at("dms"))
    tables_doc = document.get("tables")
    if not isinstance(tables_doc, dict) or not tables_doc:
        raise where.at("tables").error("must map table names to table contracts")
    tables: dict[str, TableContract] = {}
    spelled: dict[str, str] = {}  # lower-case name -> the contract's spelling
    for name, body in tables_doc.items():
        table = _parse_table(name, body, where.table(name))
        if table.name in spelled:
            raise where.table(name).error(
                f"tables {spelled[table.name]!r} and {name!r} are both {table.name!r} once "
                "lower-cased (Glue, Athena and Trino keep only lower-case names): rename one"
            )
        spelled[table.name] = name
        tables[table.name] = table
    return Contracts(source=source, dms=dms, tables=tables)


@dataclass(frozen=True)
class _Where:
    """Where in a contract file a value sits, so every error names file, table and field."""

    source: str
    table_name: str | None = None
    path: str = ""

    def table(self, name: str) -> _Where:
        return _Where(self.source, name, "")

    def at(self, name: str | int) -> _Where:
        part = f"[{name}]" if isinstance(name, int) else str(name)
        joined = (
            f"{self.path}{part}"
            if isinstance(name, int) or not self.path
            else f"{self.path}.{part}"
        )
        return _Where(self.source, self.table_name, joined)

    def error(self, message: str) -> ContractError:
        place = [self.source]
        if self.table_name is not None:
            place.append(f"table {self.table_name!r}")
        if self.path:
            place.append(f"field {self.path!r}")
        return ContractError(f"{', '.join(place)}: {message}")


def _reject_unknown(body: dict[str, Any], known: set[str], where: _Where) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise where.at(unknown[0]).error(
            f"unknown field (expected one of {', '.join(sorted(known))})"
        )


def _bool(body: dict[str, Any], key: str, default: bool, where: _Where) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise where.at(key).error(f"must be true or false, got {value!r}")
    return value


# The contract's keys under ``dms:`` (the names columns given to timestamp_column and
# change_seq_column land in timestamp_name and change_seq_name).
_DMS_FIELDS = {
    "bucket_folder",
    "include_op_for_full_load",
    "timestamp_column",
    "change_seq_column",
    "null_value",
    "delimiter",
    "date_partition",
    "format",
    "add_column_name",
    "on_bad_file",
    "load_start_margin_seconds",
    "load_gap_minutes",
}


def _parse_dms(body: Any, where: _Where) -> DmsSettings:
    if not isinstance(body, dict):
        raise where.error("must be a mapping of DMS endpoint settings")
    defaults = DmsSettings()
    _reject_unknown(body, _DMS_FIELDS, where)
    delimiter = body.get("delimiter", defaults.delimiter)
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise where.at("delimiter").error(f"must be a single character, got {delimiter!r}")
    null_value = body.get("null_value", defaults.null_value)
    if not isinstance(null_value, str):
        raise where.at("null_value").error(f"must be a string, got {null_value!r}")
    bucket_folder = body.get("bucket_folder", defaults.bucket_folder)
    if not isinstance(bucket_folder, str):
        raise where.at("bucket_folder").error(f"must be a string, got {bucket_folder!r}")
    timestamp_column, timestamp_name = _flag_or_name(
        body, "timestamp_column", defaults.timestamp_column, where
    )
    change_seq_column, change_seq_name = _flag_or_name(
        body, "change_seq_column", defaults.change_seq_column, where
    )
    change_seq_name = change_seq_name or DEFAULT_CHANGE_SEQ_NAME
    return DmsSettings(
        bucket_folder=bucket_folder.strip("/"),
        include_op_for_full_load=_bool(
            body, "include_op_for_full_load", defaults.include_op_for_full_load, where
        ),
        timestamp_column=timestamp_column,
        timestamp_name=timestamp_name,
        change_seq_column=change_seq_column,
        change_seq_name=change_seq_name,
        null_value=null_value,
        delimiter=delimiter,
        date_partition=_parse_date_partition(
            body.get("date_partition") or {}, where.at("date_partition")
        ),
        format=_choice(body, "format", FORMATS, defaults.format, where),
        add_column_name=_bool(body, "add_column_name", defaults.add_column_name, where),
        on_bad_file=_choice(body, "on_bad_file", BAD_FILE_ACTIONS, defaults.on_bad_file, where),
        load_start_margin_seconds=_whole(
            body, "load_start_margin_seconds", defaults.load_start_margin_seconds, where
        ),
        load_gap_minutes=_whole(body, "load_gap_minutes", defaults.load_gap_minutes, where),
    )


def _flag_or_name(body: dict[str, Any], key: str, default: bool, where: _Where) -> tuple[bool, str]:
    """``key: true|false`` or ``key: <column name>`` (which turns it on)."""
    value = body.get(key, default)
    if isinstance(value, bool):
        return value, ""
    if isinstance(value, str) and _IDENTIFIER.match(value):
        return True, value
    raise where.at(key).error(f"must be true, false or a column name, got {value!r}")


def _choice(
    body: dict[str, Any], key: str, choices: tuple[str, ...], default: str, where: _Where
) -> str:
    value = str(body.get(key, default)).strip().lower()
    if value not in choices:
        raise where.at(key).error(f"must be one of {', '.join(choices)}, got {body.get(key)!r}")
    return value


def _whole(body: dict[str, Any], key: str, default: int, where: _Where) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise where.at(key).error(f"must be a whole number >= 0, got {value!r}")
    return value


def _parse_date_partition(body: Any, where: _Where) -> DatePartitioning:
    if not isinstance(body, dict):
        raise where.error("must be a mapping with enabled, sequence and delimiter")
    _reject_unknown(body, {"enabled", "sequence", "delimiter"}, where)
    sequence = str(body.get("sequence", "YYYYMMDD")).upper()
    if sequence not in _DATE_SEQUENCES:
        raise where.at("sequence").error(
            f"unknown sequence {sequence!r} (expected one of {', '.join(sorted(_DATE_SEQUENCES))})"
        )
    delimiter = str(body.get("delimiter", "SLASH")).upper()
    if delimiter not in _DATE_DELIMITERS:
        raise where.at("delimiter").error(
            f"unknown delimiter {delimiter!r} (expected one of {', '.join(_DATE_DELIMITERS)})"
        )
    return DatePartitioning(
        enabled=_bool(body, "enabled", False, where), sequence=sequence, delimiter=delimiter
    )


def _parse_table(name: Any, body: Any, where: _Where) -> TableContract:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise where.error("table names must be identifiers (letters, digits, underscore)")
    if not isinstance(body, dict):
        raise where.error("must be a mapping with schema, primary_key and columns")
    _reject_unknown(
        body,
        {"schema", "primary_key", "partition_by", "columns", "description", "history"},
        where,
    )
    schema = body.get("schema")
    if not isinstance(schema, str) or not schema:
        raise where.at("schema").error("missing: the source schema the table is replicated from")
    columns = _parse_columns(body.get("columns"), where.at("columns"))
    names = [column.name for column in columns]
    primary_key = body.get("primary_key")
    if isinstance(primary_key, str):
        primary_key = [primary_key]
    if not primary_key or not isinstance(primary_key, list):
        raise where.at("primary_key").error(
            "missing: CDC merges need the primary key column list, e.g. [id]"
        )
    primary_key = [key.lower() if isinstance(key, str) else key for key in primary_key]
    for key in primary_key:
        if key not in names:
            raise where.at("primary_key").error(f"column {key!r} is not in the table's columns")
    if len(set(primary_key)) != len(primary_key):
        raise where.at("primary_key").error(f"lists a column twice: {primary_key}")
    columns = tuple(
        Column(c.name, c.type, nullable=False) if c.name in primary_key else c for c in columns
    )
    partition = _parse_partition(body.get("partition_by"), columns, where.at("partition_by"))
    return TableContract(
        name=name.lower(),
        schema=schema,
        primary_key=tuple(primary_key),
        columns=columns,
        partition_by=partition,
        history=_bool(body, "history", False, where),
        source_name=name if name != name.lower() else "",
    )


def _parse_columns(body: Any, where: _Where) -> tuple[Column, ...]:
    if not isinstance(body, list) or not body:
        raise where.error("missing: the table's columns in DMS (source ordinal) order")
    columns: list[Column] = []
    spelled: dict[str, str] = {}  # lower-case name -> the contract's spelling
    for index, item in enumerate(body):
        here = where.at(index)
        if not isinstance(item, dict):
            raise here.error(f"must be a mapping like {{name: id, type: bigint}}, got {item!r}")
        _reject_unknown(item, {"name", "type", "nullable", "description"}, here)
        name = item.get("name")
        if not isinstance(name, str) or not _IDENTIFIER.match(name):
            raise here.at("name").error(f"must be an identifier, got {name!r}")
        if name.startswith("_"):
            raise here.at("name").error(
                f"column {name!r}: names starting with '_' are reserved for DMS metadata columns"
            )
        if name in spelled.values():
            raise here.at("name").error(f"duplicate column {name!r}")
        if name.lower() in spelled:
            raise here.at("name").error(
                f"columns {spelled[name.lower()]!r} and {name!r} are both {name.lower()!r} once "
                "lower-cased (Glue, Athena and Trino keep only lower-case names): rename one"
            )
        spelled[name.lower()] = name
        type_name = str(item.get("type", "")).strip().lower().replace(" ", "")
        try:
            arrow_type(type_name)
        except ValueError:
            raise here.at("type").error(
                f"column {name!r}: unknown type {item.get('type')!r} (expected one of "
                f"{', '.join(SIMPLE_TYPES)}, decimal(p,s))"
            ) from None
        decimal = _DECIMAL.match(type_name)
        if decimal and not 0 <= int(decimal.group(2)) <= int(decimal.group(1)) <= 38:
            raise here.at("type").error(
                f"column {name!r}: {type_name} needs 0 <= scale <= precision <= 38"
            )
        nullable = item.get("nullable", True)
        if not isinstance(nullable, bool):
            raise here.at("nullable").error(f"must be true or false, got {nullable!r}")
        columns.append(Column(name=name.lower(), type=type_name, nullable=nullable))
    return tuple(columns)


def _parse_partition(body: Any, columns: tuple[Column, ...], where: _Where) -> PartitionSpec | None:
    if body is None:
        return None
    if not isinstance(body, dict):
        raise where.error("must be a mapping like {column: created_at, transform: month}")
    _reject_unknown(body, {"column", "transform"}, where)
    column_name = body.get("column")
    column_name = column_name.lower() if isinstance(column_name, str) else column_name
    by_name = {column.name: column for column in columns}
    if column_name not in by_name:
        raise where.at("column").error(f"column {column_name!r} is not in the table's columns")
    transform = str(body.get("transform", "identity")).strip().lower()
    column_type = by_name[column_name].type
    if transform in _TIME_TRANSFORMS:
        if column_type not in _TEMPORAL_TYPES or (transform == "hour" and column_type == "date"):
            raise where.at("transform").error(
                f"transform {transform!r} needs a date or timestamp column; "
                f"{column_name!r} is {column_type}"
            )
    elif transform != "identity":
        match = _PARAM_TRANSFORM.match(transform)
        if not match or int(match.group(2)) < 1:
            raise where.at("transform").error(
                f"unknown transform {transform!r} (expected identity, year, month, day, hour, "
                "bucket[N] or truncate[N])"
            )
    return PartitionSpec(column=column_name, transform=transform)
