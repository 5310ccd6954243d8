"""Which DMS files make up a bronze partition (a day of one table), and reading them.

A file's day is its date folder, else the date in a CDC file's name, else (for
full-load files, which DMS never puts in date folders) the object's
last-modified date.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.contracts import DmsSettings, TableContract
from lakehouse_assets.dms import (
    COMMIT_TS,
    DmsKeyError,
    DmsObjectKey,
    FileKind,
    date_folder_prefix,
    parse_object_key,
    raw_schema,
    read_dms_file,
    table_prefix,
    without_extra_columns,
)
from lakehouse_assets.lake import LakeStore, ObjectInfo

# Full-load file names start with one of these (DMS writes them at the table folder).
_FULL_LOAD_PREFIXES = ("LOAD", "SEGMENT")
# Reads are I/O bound on S3; Arrow parses each file with its own threads.
_READ_WORKERS = 8


@dataclass(frozen=True)
class BronzeFile:
    info: ObjectInfo
    key: DmsObjectKey

    @property
    def day(self) -> date:
        return self.key.partition_date(self.info.last_modified)


def list_partition_files(
    store: LakeStore, dms: DmsSettings, contract: TableContract, days: Iterable[date]
) -> list[BronzeFile]:
    """The DMS files of ``contract``'s table that belong to ``days``, in application order.

    With date partitioning on, only the days' date folders and the table
    folder's full-load files are listed, so the cost follows the days asked
    for, not the table's history.
    """
    wanted = set(days)
    prefix = table_prefix(dms, contract.schema, contract.dms_name)
    if dms.date_partition.enabled:
        prefixes = sorted({prefix + date_folder_prefix(dms.date_partition, day) for day in wanted})
        prefixes += [prefix + name for name in _FULL_LOAD_PREFIXES]
    else:
        prefixes = [prefix]
    found = [
        file
        for listing_prefix in prefixes
        for file in _dms_files(store.list_objects(listing_prefix), dms)
        if file.day in wanted
    ]
    return sorted(found, key=lambda file: file.key.order)


def list_load_objects(
    store: LakeStore, dms: DmsSettings, contract: TableContract
) -> list[ObjectInfo]:
    """Every full-load file of the table now in bronze, whatever its day (a reload is
    reconciled only once all of them are applied)."""
    prefix = table_prefix(dms, contract.schema, contract.dms_name)
    listings = (
        [prefix + name for name in _FULL_LOAD_PREFIXES] if dms.date_partition.enabled else [prefix]
    )
    return [
        file.info
        for listing_prefix in listings
        for file in _dms_files(store.list_objects(listing_prefix), dms)
        if file.key.kind is FileKind.FULL_LOAD
    ]


def _dms_files(objects: Iterator[ObjectInfo], dms: DmsSettings) -> Iterator[BronzeFile]:
    for info in objects:
        try:
            key = parse_object_key(info.key, dms)
        except DmsKeyError:
            continue  # not a DMS data file (e.g. a manifest or a partial upload)
        yield BronzeFile(info=info, key=key)


def read_partition_files(
    store: LakeStore, dms: DmsSettings, contract: TableContract, files: list[BronzeFile]
) -> pa.Table:
    """Read ``files`` into one Arrow table, rows in the files' order."""
    if not files:
        return raw_schema(contract).empty_table()

    def read(file: BronzeFile) -> pa.Table:
        # Columns the contract lacks (schema drift) stay out of the one table.
        return without_extra_columns(
            read_dms_file(store.get(file.info.key), file.info.key, contract, dms)
        )

    with ThreadPoolExecutor(max_workers=min(_READ_WORKERS, len(files))) as pool:
        return pa.concat_tables(list(pool.map(read, files)))


@dataclass(frozen=True)
class BronzeStats:
    files: int
    bytes: int
    rows: int
    first_commit_ts: datetime | None
    last_commit_ts: datetime | None


def bronze_stats(files: list[BronzeFile], table: pa.Table) -> BronzeStats:
    commit_ts = table[COMMIT_TS]
    bounds = pc.min_max(commit_ts) if table.num_rows else None
    return BronzeStats(
        files=len(files),
        bytes=sum(file.info.size for file in files),
        rows=table.num_rows,
        first_commit_ts=bounds["min"].as_py() if bounds else None,
        last_commit_ts=bounds["max"].as_py() if bounds else None,
    )
