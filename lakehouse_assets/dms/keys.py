"""DMS object keys: where AWS DMS puts a file, and what its name says.

Layout under the endpoint's bucket folder (AWS DMS S3 target):

- full load: ``<schema>/<table>/[sub-folders/][SEGMENTn_]LOAD<hex counter>.csv[.gz]``
- CDC:       ``<schema>/<table>/[<date folder>/]<YYYYMMDD-HHMMSSmmm>.csv[.gz]``

With ``DataFormat=parquet`` the names end in ``.parquet`` instead (Parquet compresses
inside the file, so there is no ``.parquet.gz``); the layouts and the order are the same.

The date folder follows ``DatePartitionSequence`` (YYYYMMDD, YYYYMMDDHH, YYYYMM,
MMYYYYDD, DDMMYYYY) joined by ``DatePartitionDelimiter`` (SLASH, UNDERSCORE,
DASH, NONE). Plain name order is not application order (``LOAD...`` sorts after
``2024...``, ``LOAD0000000A`` after ``LOAD00000010``), so every key gets an
explicit ``order`` tuple.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from lakehouse_assets.contracts import DatePartitioning, DmsSettings

# A data file's extension: CSV, maybe gzipped, or Parquet.
_EXTENSION = r"\.(?:csv(?P<gz>\.gz)?|(?P<parquet>parquet))"
_FULL_LOAD = re.compile(
    r"^(?:SEGMENT(?P<segment>\d+)_)?LOAD(?P<counter>[0-9A-Fa-f]+)" + _EXTENSION + "$"
)
_CDC = re.compile(r"^(?P<day>\d{8})-(?P<time>\d+)" + _EXTENSION + "$")

# Field widths of each DatePartitionSequence, in folder order.
_SEQUENCE_FIELDS: dict[str, tuple[str, ...]] = {
    "YYYYMMDD": ("Y", "M", "D"),
    "YYYYMMDDHH": ("Y", "M", "D", "H"),
    "YYYYMM": ("Y", "M"),
    "MMYYYYDD": ("M", "Y", "D"),
    "DDMMYYYY": ("D", "M", "Y"),
}
_WIDTH = {"Y": 4, "M": 2, "D": 2, "H": 2}


class FileKind(StrEnum):
    FULL_LOAD = "full_load"
    CDC = "cdc"


class FileFormat(StrEnum):
    """How a data file is encoded (the endpoint's ``DataFormat``), as its name says."""

    CSV = "csv"
    PARQUET = "parquet"


class DmsKeyError(ValueError):
    """An object key that is not a DMS data file of the expected layout."""


@dataclass(frozen=True)
class DmsObjectKey:
    key: str
    schema: str
    table: str
    kind: FileKind
    file_name: str
    gzip: bool
    # Day of the date folder, else of the CDC file name; None for a full-load
    # file outside date folders (its day is the object's last-modified date).
    date: date | None
    # Application order of files of one table: full load before CDC, LOAD
    # counters numerically, CDC by the timestamp in the name.
    order: tuple[int | str, ...]
    format: FileFormat = FileFormat.CSV

    @property
    def order_text(self) -> str:
        """``order`` as one string that sorts the same way, for columnar sorting."""
        if self.kind is FileKind.FULL_LOAD:
            _, folder, segment, counter = self.order
            # \x01 sorts before every path character, so "a" < "a/b" as in the tuple.
            return f"0|{folder}\x01{segment:010d}|{counter:016d}"
        _, stamp, name = self.order
        return f"1|{stamp}|{name}"

    def partition_date(self, last_modified: datetime | None) -> date:
        """The daily partition the file belongs to (DESIGN.md, bronze layer)."""
        if self.date is not None:
            return self.date
        if last_modified is None:
            raise DmsKeyError(f"{self.key}: a full-load file needs its last-modified time")
        return last_modified.date()


def table_prefix(dms: DmsSettings, schema: str, table: str) -> str:
    """The key prefix (with trailing slash) of one table's files."""
    folder = f"{dms.bucket_folder}/" if dms.bucket_folder else ""
    return f"{folder}{schema}/{table}/"


def date_folder(partitioning: DatePartitioning, day: date, hour: int = 0) -> str:
    """The date folder DMS writes a file of ``day`` (and ``hour``) into, with trailing slash."""
    values = {
        "Y": f"{day.year:04d}",
        "M": f"{day.month:02d}",
        "D": f"{day.day:02d}",
        "H": f"{hour:02d}",
    }
    fields = _SEQUENCE_FIELDS[partitioning.sequence]
    return partitioning.separator.join(values[f] for f in fields) + "/"


def date_folder_prefix(partitioning: DatePartitioning, day: date) -> str:
    """The narrowest folder prefix that holds every date-partitioned file of ``day``.

    It may hold other days too (the YYYYMM sequence has month folders), so the
    caller still filters on the parsed date.
    """
    folder = date_folder(partitioning, day)
    if partitioning.sequence == "YYYYMMDDHH":
        # Drop the hour field and keep the separator before it.
        return folder[: -len("00/")]
    return folder


def parse_object_key(key: str, dms: DmsSettings) -> DmsObjectKey:
    """Parse a DMS data file's key (relative to the lake root)."""
    folder = f"{dms.bucket_folder}/" if dms.bucket_folder else ""
    if not key.startswith(folder):
        raise DmsKeyError(f"{key}: not under the DMS bucket folder {dms.bucket_folder!r}")
    parts = key[len(folder) :].split("/")
    if len(parts) < 3 or not all(parts):
        raise DmsKeyError(f"{key}: expected <schema>/<table>/.../<file> under {folder!r}")
    schema, table, *middle, file_name = parts

    full_load = _FULL_LOAD.match(file_name)
    if full_load:
        segment = int(full_load.group("segment") or 0)
        counter = int(full_load.group("counter"), 16)
        folder_day = _folder_date(middle, dms.date_partition, key, required=False)
        return DmsObjectKey(
            key=key,
            schema=schema,
            table=table,
            kind=FileKind.FULL_LOAD,
            file_name=file_name,
            gzip=bool(full_load.group("gz")),
            date=folder_day,
            order=(0, "/".join(middle), segment, counter),
            format=_format(full_load),
        )

    cdc = _CDC.match(file_name)
    if cdc:
        name_day = _parse_day(cdc.group("day"), key)
        folder_day = _folder_date(middle, dms.date_partition, key, required=True)
        # Left-align the time digits so HHMMSSmmm and longer fractions compare.
        stamp = cdc.group("day") + cdc.group("time").ljust(15, "0")
        return DmsObjectKey(
            key=key,
            schema=schema,
            table=table,
            kind=FileKind.CDC,
            file_name=file_name,
            gzip=bool(cdc.group("gz")),
            date=folder_day or name_day,
            order=(1, stamp, file_name),
            format=_format(cdc),
        )
    raise DmsKeyError(
        f"{key}: {file_name!r} is neither a full-load file (LOAD<hex>.csv) "
        "nor a CDC file (YYYYMMDD-HHMMSSmmm.csv); .csv.gz and .parquet are accepted too"
    )


def _format(name: re.Match[str]) -> FileFormat:
    return FileFormat.PARQUET if name.group("parquet") else FileFormat.CSV


def _parse_day(text: str, key: str) -> date:
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise DmsKeyError(f"{key}: {text!r} is not a valid YYYYMMDD date") from None


def _folder_date(
    middle: list[str], partitioning: DatePartitioning, key: str, required: bool
) -> date | None:
    """The day named by the date folders between table and file, if any.

    ``required`` is set for CDC files: with date partitioning on, they must sit
    in a date folder. Full-load files may sit in arbitrary sub-folders.
    """
    if not partitioning.enabled or not middle:
        if required and partitioning.enabled:
            raise DmsKeyError(
                f"{key}: date partitioning is on ({partitioning.sequence}, "
                f"{partitioning.delimiter}) but the CDC file is not in a date folder"
            )
        return None
    fields = _SEQUENCE_FIELDS[partitioning.sequence]
    joined = "/".join(middle)
    separator = re.escape(partitioning.separator)
    pattern = separator.join(f"(?P<{f}>\\d{{{_WIDTH[f]}}})" for f in fields)
    match = re.fullmatch(pattern, joined)
    if not match:
        if required:
            raise DmsKeyError(
                f"{key}: folder {joined!r} does not match the date partitioning "
                f"{partitioning.sequence} with delimiter {partitioning.delimiter}"
            )
        return None
    if "D" not in match.groupdict():
        return None  # YYYYMM: the day comes from the file name
    try:
        return date(int(match["Y"]), int(match["M"]), int(match["D"]))
    except ValueError:
        raise DmsKeyError(f"{key}: folder {joined!r} is not a valid date") from None
