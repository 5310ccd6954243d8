"""``silver.<table>__applied``: the ledger of bronze files a silver table has applied.

One row per file version applied (key, size, ETag or a local file's modification time),
written *after* the merge's commit, so the only failure mode is applying a file again
(harmless: the merge is idempotent), never skipping one. Files whose changes all lost
(stale, redelivered) are recorded too. A run merges only the files of its days that the
ledger does not hold, or holds with another size or ETag.

The ledger is its own small Iceberg table (not snapshot summaries, which later snapshots
do not carry and expiry drops; not table properties, which grow with every file), so it
survives snapshot expiry, compaction and orphan-file removal like any table. It is
partitioned by ``shard``: the bronze day of a CDC file, or ``load`` for every full-load file,
and each commit rewrites the shards it touches as one file each, so a run reads one small
file per day it covers. CDC shards more than ``retention_days`` older than the newest one
are dropped (bronze keeps 90 days: minio/lifecycle.json); the ``load`` shard is kept, as
reload detection compares the LOAD files still in bronze with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import In
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import LongType, NestedField, StringType, TimestamptzType

from lakehouse_assets.bronze.files import BronzeFile
from lakehouse_assets.contracts import TableContract
from lakehouse_assets.dms import FileKind
from lakehouse_assets.names import APPLIED, silver_identifier
from lakehouse_assets.settings import DEFAULT_LEDGER_RETENTION_DAYS
from lakehouse_assets.silver.result import with_commit_retries
from lakehouse_assets.silver.tables import TABLE_PROPERTIES, ensure_namespace, write_data_files

LOAD_SHARD = "load"

_SCHEMA = Schema(
    NestedField(1, "shard", StringType(), required=True),
    NestedField(2, "key", StringType(), required=True),
    NestedField(3, "size", LongType(), required=True),
    NestedField(4, "etag", StringType(), required=True),
    NestedField(5, "last_modified", TimestamptzType(), required=False),
    NestedField(6, "kind", StringType(), required=True),
    NestedField(7, "rows", LongType(), required=False),
    NestedField(8, "min_commit_ts", TimestamptzType(), required=False),
    NestedField(9, "max_commit_ts", TimestamptzType(), required=False),
    NestedField(10, "applied_at", TimestamptzType(), required=True),
)
_SPEC = PartitionSpec(
    PartitionField(source_id=1, field_id=1000, transform=IdentityTransform(), name="shard")
)


@dataclass(frozen=True)
class LedgerEntry:
    """One applied file version."""

    shard: str  # the bronze day of a CDC file, or LOAD_SHARD
    key: str
    size: int
    etag: str
    last_modified: datetime | None
    kind: str  # FileKind value
    rows: int | None
    min_commit_ts: datetime | None
    max_commit_ts: datetime | None
    applied_at: datetime

    def same_version(self, file: BronzeFile) -> bool:
        return self.size == file.info.size and self.etag == file.info.etag


def shard_of(file: BronzeFile) -> str:
    return LOAD_SHARD if file.key.kind is FileKind.FULL_LOAD else file.day.isoformat()


def ledger_identifier(contract: TableContract) -> str:
    return silver_identifier(contract.name, APPLIED)


def entry_for(
    file: BronzeFile,
    rows: int | None,
    commit_range: tuple[datetime | None, datetime | None],
    applied_at: datetime,
) -> LedgerEntry:
    return LedgerEntry(
        shard=shard_of(file),
        key=file.info.key,
        size=file.info.size,
        etag=file.info.etag,
        last_modified=file.info.last_modified,
        kind=file.key.kind.value,
        rows=rows,
        min_commit_ts=commit_range[0],
        max_commit_ts=commit_range[1],
        applied_at=applied_at,
    )


# --------------------------------------------------------------------------- reading


def _table(catalog: Catalog, contract: TableContract) -> Table | None:
    identifier = ledger_identifier(contract)
    return catalog.load_table(identifier) if catalog.table_exists(identifier) else None


def read_ledger(
    catalog: Catalog, contract: TableContract, shards: Iterable[str] | None = None
) -> dict[str, LedgerEntry]:
    """The entries of ``shards`` (every shard when None), by object key."""
    table = _table(catalog, contract)
    if table is None or table.current_snapshot() is None:
        return {}
    row_filter = In("shard", sorted(set(shards))) if shards is not None else None
    scan = table.scan(row_filter=row_filter) if row_filter is not None else table.scan()
    return {row["key"]: _from_row(row) for row in scan.to_arrow().to_pylist()}


def _from_row(row: dict) -> LedgerEntry:
    return LedgerEntry(**row)


# --------------------------------------------------------------------------- writing


def record_applied(
    catalog: Catalog,
    contract: TableContract,
    entries: Sequence[LedgerEntry],
    retention_days: int = DEFAULT_LEDGER_RETENTION_DAYS,
) -> None:
    """Add (or replace, by key) ``entries``, rewriting each touched shard as one file, and
    drop the CDC shards older than ``retention_days`` before the newest one."""
    if not entries:
        return

    def record() -> None:
        table = _load_or_create(catalog, contract)
        touched = sorted({entry.shard for entry in entries})
        current = read_ledger(catalog, contract, touched)
        merged = {**current, **{entry.key: entry for entry in entries}}
        expired = _expired_shards(table, touched, retention_days)
        # ``shard`` is the partition: the shards' files hold nothing else, and are replaced
        # whole with the new ones in one snapshot.
        replaced = [
            task.file
            for task in table.scan(row_filter=In("shard", [*touched, *expired])).plan_files()
        ]
        added = write_data_files(table, _to_arrow(merged.values()))
        with table.transaction() as transaction:
            with transaction.update_snapshot().overwrite() as overwrite:
                for data_file in replaced:
                    overwrite.delete_data_file(data_file)
                for data_file in added:
                    overwrite.append_data_file(data_file)

    with_commit_retries(record)


def _expired_shards(table: Table, touched: Sequence[str], retention_days: int) -> list[str]:
    days = sorted(
        date.fromisoformat(shard) for shard in {*_shards(table), *touched} if shard != LOAD_SHARD
    )
    if not days:
        return []
    horizon = days[-1] - timedelta(days=retention_days)
    return [day.isoformat() for day in days if day < horizon]


def _shards(table: Table) -> set[str]:
    """The shards present, from the partition metadata (no data file is read)."""
    if table.current_snapshot() is None:
        return set()
    partitions = table.inspect.partitions()
    return {record["shard"] for record in partitions["partition"].to_pylist()}


def _to_arrow(entries: Iterable[LedgerEntry]) -> pa.Table:
    ordered = sorted(entries, key=lambda e: (e.shard, e.key))
    schema = _SCHEMA.as_arrow()
    columns = {name: [getattr(entry, name) for entry in ordered] for name in schema.names}
    return pa.Table.from_pydict(columns, schema=schema)


def _load_or_create(catalog: Catalog, contract: TableContract) -> Table:
    ensure_namespace(catalog)
    return catalog.create_table_if_not_exists(
        ledger_identifier(contract),
        schema=_SCHEMA,
        partition_spec=_SPEC,
        properties=TABLE_PROPERTIES,
    )


def newest_commit_in(entries: Mapping[str, LedgerEntry]) -> datetime | None:
    values = [entry.max_commit_ts for entry in entries.values() if entry.max_commit_ts]
    return max(values) if values else None


def commit_range(commit_ts: pa.ChunkedArray | pa.Array) -> tuple[datetime | None, datetime | None]:
    if len(commit_ts) == 0:
        return None, None
    bounds = pc.min_max(commit_ts)
    return bounds["min"].as_py(), bounds["max"].as_py()
