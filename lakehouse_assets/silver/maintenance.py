"""Iceberg maintenance of ``silver.<table>`` and its side tables (no Dagster here).

A merge a minute leaves a table with thousands of snapshots, small data files, manifests and
metadata files within weeks. These operations keep it fast to plan and cheap to store:

- ``purge_tombstones`` (silver only): tombstones positioned before a horizon, counted back
  from the newest applied commit, are removed, and the horizon is recorded in the table
  property ``lakehouse.tombstone-horizon`` (only ever raised) in the same commit.
- ``compact_data_files`` (silver, rejects, history): small files adjacent in key order within a
  partition are rewritten, key-sorted, into files of a target size, so merges keep pruning.
- ``rewrite_manifests``: the current manifests packed into a few (manifest_rewrite.py).
- ``expire_snapshots``: snapshots older than a retention, beyond the newest N and those a ref
  points to, are dropped from the metadata (their files go with orphan removal).
- ``remove_orphan_files``: files under the table's location that no kept snapshot or metadata
  references, older than a safety age (a merge in flight has written files it has not
  committed yet), are deleted through the lake store.

``maintain_table`` runs them in that order on every table of a contract. Each operation reads
the table again on every attempt and commits through ``with_commit_retries``, so it is correct
beside a merge of the same table where no pool keeps them apart: the loser of a commit race
plans again on the new state. Every snapshot maintenance commits carries
``lakehouse.max-commit-ts`` forward (the freshness check reads the current snapshot only).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.conversions import from_bytes
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import AlwaysTrue, EqualTo
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.manifest import DataFile, DataFileContent, ManifestFile
from pyiceberg.table import DataScan, FileScanTask, Table, TableProperties
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import ancestors_of
from pyiceberg.types import NestedField
from pyiceberg.utils.properties import property_as_int

from lakehouse_assets.contracts import DmsSettings, TableContract
from lakehouse_assets.dms import COMMIT_TS, SOURCE_FILE, SOURCE_ROW
from lakehouse_assets.lake import LakeStore, LocalLakeStore, S3LakeStore
from lakehouse_assets.names import (
    APPLIED,
    HISTORY,
    QUARANTINE,
    REJECTS,
    TOMBSTONE_HORIZON_PROPERTY,
    silver_identifier,
)
from lakehouse_assets.silver.generations import GENERATIONS_PROPERTY, LoadHistory
from lakehouse_assets.silver.history import VALID_FROM
from lakehouse_assets.silver.manifest_rewrite import (
    ManifestRewrite,
    manifest_target_bytes,
    plan_manifests,
)
from lakehouse_assets.silver.merge import FILE_ORDER, IS_DELETED
from lakehouse_assets.silver.result import (
    max_commit_ts,
    snapshot_properties,
    tombstone_horizon,
    with_commit_retries,
)
from lakehouse_assets.silver.tables import read_data_files, write_data_files

MIB = 1024 * 1024
DEFAULT_SNAPSHOT_RETENTION = timedelta(days=7)
DEFAULT_KEEP_LAST_SNAPSHOTS = 10
DEFAULT_ORPHAN_MIN_AGE = timedelta(days=1)
# Below this a merge still writing its files (it commits them at its end) could lose them.
MIN_ORPHAN_AGE = timedelta(hours=1)
DEFAULT_TARGET_FILE_BYTES = 128 * MIB
# Longer than bronze's 90-day retention (minio/lifecycle.json): no change bronze can still
# replay is positioned before it.
DEFAULT_TOMBSTONE_HORIZON = timedelta(days=120)
# The most a source commit timestamp is believed ahead of this clock.
CLOCK_SKEW = timedelta(days=1)
# A file at least this share of the target is left alone (Iceberg's Java default, 0.75):
# rewriting it with a small neighbour would cost a full file to gain a little.
FULL_FILE_RATIO = 0.75
_TIMESTAMP = pa.timestamp("us", tz="UTC")
_LISTING_WORKERS = 8


class MaintenanceOperation(StrEnum):
    """The operations, in the order ``maintain_table`` runs them: purge and compaction first
    (they rewrite files), then the manifests they left, then expiry, then the files that
    expiry (and crashed runs) left behind."""

    PURGE_TOMBSTONES = "purge_tombstones"
    COMPACT_DATA_FILES = "compact_data_files"
    REWRITE_MANIFESTS = "rewrite_manifests"
    EXPIRE_SNAPSHOTS = "expire_snapshots"
    REMOVE_ORPHAN_FILES = "remove_orphan_files"


ALL_OPERATIONS = tuple(MaintenanceOperation)


@dataclass(frozen=True)
class MaintenancePolicy:
    snapshot_retention: timedelta = DEFAULT_SNAPSHOT_RETENTION
    keep_last_snapshots: int = DEFAULT_KEEP_LAST_SNAPSHOTS
    orphan_min_age: timedelta = DEFAULT_ORPHAN_MIN_AGE
    target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES
    tombstone_horizon: timedelta | None = DEFAULT_TOMBSTONE_HORIZON  # None: never purge
    operations: tuple[MaintenanceOperation, ...] = ALL_OPERATIONS

    def __post_init__(self) -> None:
        if self.keep_last_snapshots < 1:
            raise ValueError("keep_last_snapshots must be at least 1 (the current snapshot)")
        check_orphan_age(self.orphan_min_age)
        if self.target_file_bytes < 1:
            raise ValueError("target_file_bytes must be positive")


@dataclass(frozen=True)
class TableStats:
    """A table's current state, as maintenance changes it."""

    data_files: int
    data_bytes: int
    delete_files: int
    records: int
    snapshots: int
    manifests: int
    metadata_json_bytes: int


@dataclass(frozen=True)
class OperationReport:
    table: str  # the identifier, silver.<table>[__<side>]
    operation: MaintenanceOperation
    before: TableStats
    after: TableStats
    details: dict[str, int | str] = field(default_factory=dict)  # what it removed, rewrote
    attempts: int = 1  # commit attempts (a lost race plans again)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "before": asdict(self.before),
            "after": asdict(self.after),
            **self.details,
            "attempts": self.attempts,
        }


class OrphanFilesError(RuntimeError):
    """The lake's listing and the table's paths do not agree: nothing is deleted."""


class SnapshotNotKeptError(LookupError):
    """Time travel to a snapshot the table no longer keeps (expired, or never existed)."""


# --------------------------------------------------------------------------- state


def table_stats(table: Table) -> TableStats:
    """Counted from the current snapshot's manifests (the summary totals are only as good
    as every writer's)."""
    snapshot = table.current_snapshot()
    manifests = list(snapshot.manifests(table.io)) if snapshot is not None else []
    data_files = data_bytes = delete_files = records = 0
    for entries in _entries_of(table, manifests):
        for data_file in entries:
            if data_file.content == DataFileContent.DATA:
                data_files += 1
                data_bytes += data_file.file_size_in_bytes
                records += data_file.record_count
            else:
                delete_files += 1
    return TableStats(
        data_files=data_files,
        data_bytes=data_bytes,
        delete_files=delete_files,
        records=records,
        snapshots=len(table.metadata.snapshots),
        manifests=len(manifests),
        metadata_json_bytes=len(table.io.new_input(table.metadata_location)),
    )


def _entries_of(table: Table, manifests: Iterable[ManifestFile]) -> Iterator[list[DataFile]]:
    """The live files of each manifest, read in parallel (S3 latency)."""

    def live(manifest: ManifestFile) -> list[DataFile]:
        return [e.data_file for e in manifest.fetch_manifest_entry(table.io, discard_deleted=True)]

    with ThreadPoolExecutor(max_workers=_LISTING_WORKERS) as pool:
        yield from pool.map(live, manifests)


def _single_attempt(table: Table) -> Table:
    """``table`` with pyiceberg's own commit retries off, in this process only (the property
    is never committed). pyiceberg 0.12 retries a lost race itself by rebuilding the snapshot
    on the new head with the snapshot properties computed for the old one: maintenance would
    then carry an older ``lakehouse.max-commit-ts`` over a merge's newer one. Without it the
    conflict reaches ``with_commit_retries``, which plans again on the new state."""
    properties = {**table.metadata.properties, TableProperties.COMMIT_NUM_RETRIES: "0"}
    return Table(
        table.name(),
        table.metadata.model_copy(update={"properties": properties}),
        table.metadata_location,
        table.io,
        table.catalog,
        table.config,
    )


def _discard(table: Table, written: Sequence[DataFile]) -> None:
    """Delete the data files of a commit that did not land (pyiceberg guarantees it for
    CommitFailedException and ValidationException; it removes its own manifests then)."""
    for data_file in written:
        try:
            table.io.delete(data_file.file_path)
        except OSError:
            pass  # an orphan now: orphan removal deletes it; the commit's failure is what counts


def _report(
    catalog: Catalog,
    identifier: str,
    operation: MaintenanceOperation,
    before: TableStats,
    details: dict[str, int | str],
    attempts: int = 1,
) -> OperationReport:
    after = table_stats(catalog.load_table(identifier))
    return OperationReport(identifier, operation, before, after, details, attempts)


# --------------------------------------------------------------------------- expire snapshots


def snapshots_to_expire(metadata: TableMetadata, older_than: datetime, keep_last: int) -> list[int]:
    """Snapshots committed before ``older_than``, except the newest ``keep_last`` of the
    current snapshot's ancestry and every snapshot a branch or tag points to."""
    protected = {ref.snapshot_id for ref in metadata.refs.values()}
    newest = islice(ancestors_of(metadata.current_snapshot(), metadata), keep_last)
    protected |= {snapshot.snapshot_id for snapshot in newest}
    cutoff_ms = int(older_than.timestamp() * 1000)
    return sorted(
        snapshot.snapshot_id
        for snapshot in metadata.snapshots
        if snapshot.timestamp_ms < cutoff_ms and snapshot.snapshot_id not in protected
    )


def expire_snapshots(
    catalog: Catalog,
    identifier: str,
    now: datetime,
    retention: timedelta = DEFAULT_SNAPSHOT_RETENTION,
    keep_last: int = DEFAULT_KEEP_LAST_SNAPSHOTS,
) -> OperationReport:
    """Drop old snapshots from the metadata (pyiceberg deletes no file: orphan removal does)."""
    if keep_last < 1:
        raise ValueError("keep_last must be at least 1 (the current snapshot)")

    def expire() -> tuple[TableStats, dict[str, int | str]]:
        table = catalog.load_table(identifier)
        before = table_stats(table)
        doomed = snapshots_to_expire(table.metadata, now - retention, keep_last)
        if doomed:
            try:
                table.maintenance.expire_snapshots().by_ids(doomed).commit()
            except ValueError as exc:
                # The catalog applies the removal to its newest metadata: a snapshot another
                # maintenance run expired since is a lost race, to plan again.
                kept = {snapshot.snapshot_id for snapshot in table.refresh().snapshots()}
                if not set(doomed) <= kept:
                    raise CommitFailedException(f"{identifier}: {exc}") from exc
                raise
        return before, {"snapshots_expired": len(doomed)}

    (before, details), attempts = with_commit_retries(expire)
    return _report(
        catalog, identifier, MaintenanceOperation.EXPIRE_SNAPSHOTS, before, details, attempts
    )


def scan_snapshot(table: Table, snapshot_id: int, **scan_options: Any) -> DataScan:
    """``table.scan(snapshot_id=...)``, failing clearly for a snapshot the table no longer
    keeps (pyiceberg would silently scan nothing)."""
    if table.snapshot_by_id(snapshot_id) is None:
        kept = sorted(table.snapshots(), key=lambda snapshot: snapshot.timestamp_ms)
        reach = (
            f"time travel reaches back to snapshot {kept[0].snapshot_id} committed "
            f"{_millis_iso(kept[0].timestamp_ms)}"
            if kept
            else "the table keeps no snapshot"
        )
        raise SnapshotNotKeptError(
            f"{'.'.join(table.name())}: snapshot {snapshot_id} is not kept (expired by silver "
            f"maintenance, or never a snapshot of this table); {reach}. Snapshots are kept for "
            "snapshot_retention_days and at least the last keep_last_snapshots."
        )
    return table.scan(snapshot_id=snapshot_id, **scan_options)


def _millis_iso(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).isoformat()


# --------------------------------------------------------------------------- orphan files


def check_orphan_age(min_age: timedelta) -> None:
    if min_age < MIN_ORPHAN_AGE:
        raise ValueError(
            f"orphan safety age {min_age} is below {MIN_ORPHAN_AGE}: a merge writes its files "
            "before it commits them, so a younger unreferenced file may be a merge's in flight"
        )


def lake_key(uri: str, store: LakeStore) -> str | None:
    """The lake key of a file the table names by URI, or None when it lies outside the
    lake. Paths are read as pyiceberg's file IO reads them (no percent-decoding)."""
    parsed = urlparse(uri)
    if isinstance(store, S3LakeStore):
        if parsed.scheme not in ("s3", "s3a", "s3n") or parsed.netloc != store.bucket:
            return None
        key = parsed.path.lstrip("/")
        return key[len(store.prefix) :] if key.startswith(store.prefix) else None
    if isinstance(store, LocalLakeStore):
        if parsed.scheme == "file":
            path = Path(parsed.netloc + parsed.path)  # file:///x and Hadoop's file:/x
        elif not parsed.scheme:
            path = Path(uri).absolute()
        else:
            return None
        try:
            return path.relative_to(store.root).as_posix()
        except ValueError:
            return None
    raise TypeError(f"unknown lake store {type(store).__name__}")


def referenced_paths(table: Table) -> set[str]:
    """Every file a kept snapshot or the metadata references: the current and logged
    metadata.json files, statistics files, manifest lists, manifests, and the data and
    delete files live in a kept snapshot."""
    metadata = table.metadata
    paths = {table.metadata_location, *(entry.metadata_file for entry in metadata.metadata_log)}
    paths |= {statistics.statistics_path for statistics in metadata.statistics}
    paths |= {statistics.statistics_path for statistics in metadata.partition_statistics}
    manifests: dict[str, ManifestFile] = {}
    paths |= {snapshot.manifest_list for snapshot in metadata.snapshots}
    # A manifest list per kept snapshot (thousands at a commit a minute): read in parallel.
    with ThreadPoolExecutor(_LISTING_WORKERS) as pool:
        for listed in pool.map(lambda s: s.manifests(table.io), metadata.snapshots):
            for manifest in listed:
                manifests.setdefault(manifest.manifest_path, manifest)
    paths |= set(manifests)
    for files in _entries_of(table, manifests.values()):
        paths |= {data_file.file_path for data_file in files}
    return paths


def remove_orphan_files(
    catalog: Catalog,
    identifier: str,
    store: LakeStore,
    now: datetime,
    min_age: timedelta = DEFAULT_ORPHAN_MIN_AGE,
) -> OperationReport:
    """Delete the files under the table's location that nothing references and that are
    older than ``min_age``; refuse (OrphanFilesError) when a referenced file is not listed,
    since the paths and the listing then do not agree."""
    check_orphan_age(min_age)
    table = catalog.load_table(identifier)
    before = table_stats(table)
    location = lake_key(table.location(), store)
    if location is None:
        raise OrphanFilesError(
            f"{identifier}: its location {table.location()} is not inside the lake "
            f"{store.uri}; no file removed"
        )
    prefix = location.rstrip("/") + "/"  # not the __rejects table beside silver.<table>
    keys = {path: lake_key(path, store) for path in referenced_paths(table)}
    outside = sorted(path for path, key in keys.items() if key is None)
    if outside:
        # A path this code cannot place in the lake might still name a listed file (another
        # engine's spelling of it): deleting "unreferenced" files would then corrupt the table.
        raise OrphanFilesError(
            f"{identifier}: {len(outside)} referenced file(s) are not inside the lake "
            f"{store.uri} (e.g. {outside[:3]}); no file removed"
        )
    referenced = set(keys.values())
    # Listed after the table was read: a file a commit added since is not referenced here,
    # but it is younger than the safety age, so it stays.
    listed = list(store.list_objects(prefix))
    listed_keys = {info.key for info in listed}
    missing = sorted(key for key in referenced if key.startswith(prefix) and key not in listed_keys)
    if missing:
        raise OrphanFilesError(
            f"{identifier}: {len(missing)} file(s) the table references are not in the lake "
            f"listing of {prefix!r} (e.g. {missing[:3]}): the table's paths and the lake's "
            "keys do not agree, or files were removed by hand; no file removed"
        )
    cutoff = now - min_age
    orphans = [info for info in listed if info.key not in referenced]
    removable = [info for info in orphans if info.last_modified < cutoff]
    store.delete_many(info.key for info in removable)
    details: dict[str, int | str] = {
        "files_listed": len(listed),
        "orphans_found": len(orphans),
        "orphans_too_young": len(orphans) - len(removable),
        "orphan_files_removed": len(removable),
        "orphan_bytes_removed": sum(info.size for info in removable),
    }
    return _report(catalog, identifier, MaintenanceOperation.REMOVE_ORPHAN_FILES, before, details)


# --------------------------------------------------------------------------- compaction


def _bound(data_file: DataFile, column: NestedField, lower: bool) -> Any:
    raw = (data_file.lower_bounds if lower else data_file.upper_bounds) or {}
    value = raw.get(column.field_id)
    return None if value is None else from_bytes(column.field_type, value)


def _key_order(task: FileScanTask, column: NestedField) -> tuple:
    """Files by their key range (first sort column), files without bounds last."""
    low, high = _bound(task.file, column, True), _bound(task.file, column, False)
    return (low is None, low, high is None, high, task.file.file_path)


def _pack(
    ordered: Sequence[FileScanTask], column: NestedField, target_bytes: int
) -> list[tuple[FileScanTask, ...]]:
    """Runs of adjacent small files, each at most ``target_bytes``; a full file ends a run,
    and so does a full file's key range reaching over the gap to the next small file (one
    file spanning the gap would be read by every merge of a key the full file holds).
    Only runs of two or more files are worth a rewrite."""
    runs: list[list[FileScanTask]] = [[]]
    size = 0
    full_high: Any = None  # the highest key of the full files passed so far
    previous_high: Any = None  # the highest key of the run's last small file
    for task in ordered:
        file_bytes = task.file.file_size_in_bytes
        high = _bound(task.file, column, False)
        if file_bytes >= FULL_FILE_RATIO * target_bytes:
            runs.append([])
            size = 0
            if high is not None:
                full_high = high if full_high is None else max(full_high, high)
            continue
        over_gap = full_high is not None and (previous_high is None or full_high > previous_high)
        if runs[-1] and (size + file_bytes > target_bytes or over_gap):
            runs.append([])
            size = 0
        runs[-1].append(task)
        size += file_bytes
        previous_high = high
    return [tuple(run) for run in runs if len(run) >= 2]


def plan_compaction(
    table: Table, sort_columns: Sequence[str], target_bytes: int
) -> list[tuple[FileScanTask, ...]]:
    """The groups of data files to rewrite together, per partition, in key order."""
    column = table.schema().find_field(sort_columns[0])
    partitions: dict[tuple, list[FileScanTask]] = defaultdict(list)
    for task in table.scan().plan_files():
        partitions[(task.file.spec_id, task.file.partition)].append(task)
    groups = []
    for tasks in partitions.values():
        ordered = sorted(tasks, key=lambda task: _key_order(task, column))
        groups += _pack(ordered, column, target_bytes)
    return groups


def _file_chunks(
    rows: pa.Table, disk_bytes: int, target_bytes: int, memory_bytes: int
) -> Iterator[pa.Table]:
    """Consecutive slices of the sorted ``rows``, each about ``target_bytes`` on disk (at the
    group's bytes per row) and within ``memory_bytes`` in memory, so pyiceberg's writer,
    which splits by in-memory size, writes each slice as one file of a key range of its own."""
    disk_per_row = disk_bytes / rows.num_rows
    memory_per_row = max(rows.nbytes / rows.num_rows, 1)
    per_file = max(1, int(min(target_bytes / disk_per_row, memory_bytes / memory_per_row)))
    for start in range(0, rows.num_rows, per_file):
        yield rows.slice(start, per_file)


def compact_data_files(
    catalog: Catalog,
    identifier: str,
    sort_columns: Sequence[str],
    target_bytes: int = DEFAULT_TARGET_FILE_BYTES,
) -> OperationReport:
    """Rewrite runs of small data files adjacent in key order within a partition into files
    of about ``target_bytes``, sorted by ``sort_columns``: one overwrite commit per run, so a
    merge that commits meanwhile costs one run's rewrite, not the table's. A run whose files a
    merge has rewritten since the plan is left for the next compaction."""
    table = catalog.load_table(identifier)
    before = table_stats(table)
    totals = {"files_rewritten": 0, "files_added": 0, "bytes_rewritten": 0}
    attempts = 1  # the most any run's commit took
    for group in plan_compaction(table, sort_columns, target_bytes):
        paths = {task.file.file_path for task in group}
        done, tries = with_commit_retries(
            partial(_compact_group, catalog, identifier, paths, sort_columns, target_bytes)
        )
        attempts = max(attempts, tries)
        for name, value in done.items():
            totals[name] += value
    return _report(
        catalog,
        identifier,
        MaintenanceOperation.COMPACT_DATA_FILES,
        before,
        dict(totals),
        attempts,
    )


def _compact_group(
    catalog: Catalog,
    identifier: str,
    paths: set[str],
    sort_columns: Sequence[str],
    target_bytes: int,
) -> dict[str, int]:
    """One attempt at rewriting the data files ``paths`` as one sorted run, in one commit."""
    table = _single_attempt(catalog.load_table(identifier))
    group = [task for task in table.scan().plan_files() if task.file.file_path in paths]
    if len(group) < len(paths):  # a merge rewrote one of them: plan it again another day
        return {"files_rewritten": 0, "files_added": 0, "bytes_rewritten": 0}
    # Half pyiceberg's in-memory target: a slice's rows may be larger than the average.
    memory_bytes = (
        property_as_int(  # type: ignore[operator]  # the default is an int
            table.properties,
            TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
            TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
        )
        // 2
    )
    arrow_schema = table.schema().as_arrow()
    order = [(name, "ascending") for name in sort_columns]
    transaction = table.transaction()
    added: list[DataFile] = []
    try:
        rows = pa.concat_tables([rows for _, rows in read_data_files(table, group)])
        disk_bytes = sum(task.file.file_size_in_bytes for task in group)
        if rows.num_rows:
            for chunk in _file_chunks(rows.sort_by(order), disk_bytes, target_bytes, memory_bytes):
                added += write_data_files(table, chunk.cast(arrow_schema))
        properties = snapshot_properties(table, None)
        with transaction.update_snapshot(snapshot_properties=properties).overwrite() as write:
            for task in group:
                write.delete_data_file(task.file)
            for data_file in added:
                write.append_data_file(data_file)
        transaction.commit_transaction()
    except (CommitFailedException, ValidationException):
        _discard(table, added)
        raise
    return {"files_rewritten": len(group), "files_added": len(added), "bytes_rewritten": disk_bytes}


# --------------------------------------------------------------------------- manifests


def rewrite_manifests(catalog: Catalog, identifier: str) -> OperationReport:
    """Pack the current snapshot's manifests into a few, in a ``replace`` snapshot that
    changes no data (a no-op when they are already packed)."""

    def rewrite() -> tuple[TableStats, dict[str, int | str]]:
        table = _single_attempt(catalog.load_table(identifier))
        before = table_stats(table)
        snapshot = table.current_snapshot()
        target = manifest_target_bytes(table.properties)
        manifests = list(snapshot.manifests(table.io)) if snapshot is not None else []
        if not plan_manifests(manifests, target).worthwhile:
            return before, {"manifests_replaced": 0, "manifests_created": 0}
        transaction = table.transaction()
        rewrite = ManifestRewrite(transaction, table.io, target, snapshot_properties(table, None))
        rewrite.commit()
        transaction.commit_transaction()
        # The plan of the head the commit was built on.
        return before, {
            "manifests_replaced": rewrite.plan.replaced,
            "manifests_created": rewrite.plan.created,
        }

    (before, details), attempts = with_commit_retries(rewrite)
    return _report(
        catalog, identifier, MaintenanceOperation.REWRITE_MANIFESTS, before, details, attempts
    )


# --------------------------------------------------------------------------- tombstones


def _purgeable(rows: pa.Table, history: LoadHistory, horizon: datetime) -> pa.Array:
    """Row-wise: a tombstone whose rank time (merge.py) is before ``horizon``."""
    before = history.positioned_before(
        rows[COMMIT_TS].combine_chunks(), rows[FILE_ORDER].combine_chunks(), horizon
    )
    return pc.fill_null(pc.and_(rows[IS_DELETED], before), False).combine_chunks()


def _holding_purgeable(
    table: Table, tasks: Iterable[FileScanTask], history: LoadHistory, horizon: datetime
) -> list[FileScanTask]:
    """The files holding a tombstone before ``horizon``, found by reading only the columns
    that rank it (every file with a tombstone would otherwise be read whole each run)."""
    projection = table.schema().select(IS_DELETED, COMMIT_TS, FILE_ORDER)
    scan = ArrowScan(table.metadata, table.io, projection, AlwaysTrue())
    return [
        task
        for task in tasks
        if pc.any(_purgeable(scan.to_table([task]), history, horizon)).as_py()
    ]


def purge_tombstones(
    catalog: Catalog,
    contract: TableContract,
    dms: DmsSettings,
    horizon: timedelta | None = DEFAULT_TOMBSTONE_HORIZON,
) -> OperationReport:
    """Remove the tombstones of ``silver.<table>`` positioned more than ``horizon`` before its
    newest applied commit (``None``: never), and raise ``lakehouse.tombstone-horizon`` to that
    time in the same commit. The horizon property is never lowered."""
    identifier = silver_identifier(contract.name)

    def purge() -> tuple[TableStats, dict[str, int | str]]:
        table = _single_attempt(catalog.load_table(identifier))
        before = table_stats(table)
        stored = tombstone_horizon(table)
        newest = max_commit_ts(table)
        if newest is not None:
            # One bad source clock must not raise the horizon (never lowered) into the future.
            newest = min(newest, datetime.now(UTC) + CLOCK_SKEW)
        if horizon is None or newest is None:
            return before, {
                "tombstones_purged": 0,
                "horizon": stored.isoformat() if stored else "never",
            }
        effective = max(newest - horizon, stored) if stored else newest - horizon
        history = LoadHistory.from_property(dms, table.properties.get(GENERATIONS_PROPERTY))
        # Boolean min/max statistics skip the files without any tombstone.
        candidates = table.scan(row_filter=EqualTo(IS_DELETED, True)).plan_files()
        holding = _holding_purgeable(table, candidates, history, effective)
        arrow_schema = table.schema().as_arrow()
        transaction = table.transaction()
        added: list[DataFile] = []
        purged = 0
        try:
            for _, rows in read_data_files(table, holding):
                doomed = _purgeable(rows, history, effective)
                purged += pc.sum(doomed).as_py() or 0
                kept = rows.filter(pc.invert(doomed))  # key order kept
                added += write_data_files(table, kept.cast(arrow_schema))
            if holding:
                properties = snapshot_properties(table, None)
                with transaction.update_snapshot(
                    snapshot_properties=properties
                ).overwrite() as write:
                    for task in holding:
                        write.delete_data_file(task.file)
                    for data_file in added:
                        write.append_data_file(data_file)
            raised = stored is None or effective > stored
            if raised:
                transaction.set_properties({TOMBSTONE_HORIZON_PROPERTY: effective.isoformat()})
            if holding or raised:
                transaction.commit_transaction()
        except (CommitFailedException, ValidationException):
            _discard(table, added)
            raise
        return before, {
            "tombstones_purged": purged,
            "files_rewritten": len(holding),
            "files_added": len(added),
            "horizon": effective.isoformat(),
        }

    (before, details), attempts = with_commit_retries(purge)
    return _report(
        catalog, identifier, MaintenanceOperation.PURGE_TOMBSTONES, before, details, attempts
    )


# --------------------------------------------------------------------------- every table


def maintained_tables(contract: TableContract) -> list[str]:
    """``silver.<table>`` and its side tables; the history table is never purged, and silver,
    rejects and history are compacted (the ledger writes one file per shard already)."""
    return [
        silver_identifier(contract.name),
        *(
            silver_identifier(contract.name, side)
            for side in (REJECTS, APPLIED, QUARANTINE, HISTORY)
        ),
    ]


def maintain_table(
    catalog: Catalog,
    store: LakeStore,
    contract: TableContract,
    dms: DmsSettings,
    now: datetime,
    policy: MaintenancePolicy = MaintenancePolicy(),
) -> list[OperationReport]:
    """Every operation of ``policy`` on every existing table of ``contract``, in order."""
    silver = silver_identifier(contract.name)
    sort_columns = {
        silver: contract.primary_key,
        silver_identifier(contract.name, REJECTS): (SOURCE_FILE, SOURCE_ROW),
        silver_identifier(contract.name, HISTORY): (*contract.primary_key, VALID_FROM),
    }
    reports = []
    for identifier in maintained_tables(contract):
        if not catalog.table_exists(identifier):
            continue
        for operation in ALL_OPERATIONS:
            if operation not in policy.operations:
                continue
            if operation is MaintenanceOperation.PURGE_TOMBSTONES and identifier == silver:
                reports.append(purge_tombstones(catalog, contract, dms, policy.tombstone_horizon))
            elif (
                operation is MaintenanceOperation.COMPACT_DATA_FILES and identifier in sort_columns
            ):
                reports.append(
                    compact_data_files(
                        catalog, identifier, sort_columns[identifier], policy.target_file_bytes
                    )
                )
            elif operation is MaintenanceOperation.REWRITE_MANIFESTS:
                reports.append(rewrite_manifests(catalog, identifier))
            elif operation is MaintenanceOperation.EXPIRE_SNAPSHOTS:
                reports.append(
                    expire_snapshots(
                        catalog,
                        identifier,
                        now,
                        policy.snapshot_retention,
                        policy.keep_last_snapshots,
                    )
                )
            elif operation is MaintenanceOperation.REMOVE_ORPHAN_FILES:
                reports.append(
                    remove_orphan_files(catalog, identifier, store, now, policy.orphan_min_age)
                )
    return reports
