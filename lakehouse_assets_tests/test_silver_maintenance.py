"""Iceberg maintenance of silver tables (maintenance.py, maintenance_job.py) on real tables.

Tables are built as the merge builds them: small DMS CSV texts (``encode_csv_rows``) read with
``read_dms_file`` and merged with ``merge_changes`` into a SQLite catalog and a local lake
under tmp_path. Ages are set with ``os.utime`` (orphan files) or by moving ``now`` forward
(snapshot expiry), so nothing waits.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.conversions import from_bytes
from pyiceberg.table import Table

from lakehouse_assets.bronze.files import BronzeFile
from lakehouse_assets.contracts import (
    Contracts,
    TableContract,
)
from lakehouse_assets.dms import encode_csv_rows, parse_object_key, read_dms_file
from lakehouse_assets.lake import ObjectInfo, open_lake
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for, warehouse_for_lake
from lakehouse_assets.names import (
    APPLIED,
    HISTORY,
    MAINTENANCE_JOB,
    MAX_COMMIT_TS_PROPERTY,
    QUARANTINE,
    TOMBSTONE_HORIZON_PROPERTY,
    silver_identifier,
    silver_pool,
)
from lakehouse_assets.resources import IcebergCatalogResource, LakeResource
from lakehouse_assets.silver import apply as apply_module
from lakehouse_assets.silver import maintenance, writer
from lakehouse_assets.silver.apply import merge_changes
from lakehouse_assets.silver.history import VALID_FROM
from lakehouse_assets.silver.ledger import entry_for, record_applied
from lakehouse_assets.silver.maintenance import (
    MaintenanceOperation,
    MaintenancePolicy,
    OrphanFilesError,
    SnapshotNotKeptError,
    compact_data_files,
    expire_snapshots,
    maintain_table,
    plan_compaction,
    purge_tombstones,
    referenced_paths,
    remove_orphan_files,
    rewrite_manifests,
    scan_snapshot,
)
from lakehouse_assets.silver.maintenance_job import (
    MAINTENANCE_SCHEDULE,
    build_maintenance_job,
    build_maintenance_schedule,
    maintenance_op_name,
)
from lakehouse_assets.silver.quarantine import quarantined, update_quarantine
from lakehouse_assets.silver.result import HorizonMovedError, MergeResult, snapshot_property
from lakehouse_assets_tests.test_silver_iceberg import CONTRACT, DMS, INGESTED

SILVER = silver_identifier(CONTRACT.name)
REJECTS = silver_identifier(CONTRACT.name, "rejects")
DAY = 86_400


# ------------------------------------------------------------------ helpers


class Lakehouse:
    """A catalog and a lake under one folder."""

    def __init__(self, root: Path):
        self.root = root
        self.lake = root / "lake"
        self.catalog_uri = sqlite_uri_for(root / "catalog.db")
        self.warehouse = warehouse_for_lake(str(self.lake))
        self.catalog = self.open()
        self.store = open_lake(str(self.lake))

    def open(self) -> Catalog:
        return open_catalog(self.catalog_uri, self.warehouse)

    def table(self, identifier: str = SILVER) -> Table:
        return self.catalog.load_table(identifier)


@pytest.fixture
def house(tmp_path: Path) -> Lakehouse:
    return Lakehouse(tmp_path)


def cdc_key(day: date, clock: str = "100000000", table: str = CONTRACT.name) -> str:
    return f"bronze/dms/public/{table}/{day:%Y/%m/%d}/{day:%Y%m%d}-{clock}.csv"


def row(op: str, ts: str, key: int, name: str | None = None, created: str = "2024-01-15") -> list:
    if op == "D":
        return ["D", ts, str(key), None, None, None]
    return [op, ts, str(key), name or f"n{key}", "1.00", f"{created} 08:00:00"]


def changes(key: str, rows: list[list]) -> pa.Table:
    return read_dms_file(encode_csv_rows(rows, DMS), key, CONTRACT, DMS)


def merge(catalog: Catalog, key: str, rows: list[list]) -> MergeResult:
    return merge_changes(catalog, CONTRACT, DMS, changes(key, rows), ingested_at=INGESTED)


def load_batches(catalog: Catalog, batches: int = 10, per_batch: int = 50) -> None:
    """``batches`` merges of new keys, one day each: a file per merge in January, key ranges
    adjacent (1-50, 51-100, ...), plus a few February rows per merge (a second partition)."""
    for batch in range(batches):
        day = date(2024, 1, 1) + timedelta(days=batch)
        first = batch * per_batch + 1
        rows = [row("I", f"{day} 10:00:00", key) for key in range(first, first + per_batch)]
        rows += [row("I", f"{day} 10:00:00", 10_000 + batch, created="2024-02-10")]
        merge(catalog, cdc_key(day), rows)


def stored(table: Table, snapshot_id: int | None = None) -> list[dict]:
    """Every stored row (tombstones included), by key."""
    scan = table.scan(snapshot_id=snapshot_id) if snapshot_id else table.scan()
    return sorted(scan.to_arrow().to_pylist(), key=lambda r: r["id"])


def live_files(table: Table) -> list:
    return [task.file for task in table.scan().plan_files()]


def key_ranges(table: Table) -> dict[str, list[tuple[int, int]]]:
    """Per partition, each data file's (min, max) key, in key order."""
    field = table.schema().find_field("id")
    ranges = defaultdict(list)
    for data_file in live_files(table):
        low = from_bytes(field.field_type, data_file.lower_bounds[field.field_id])
        high = from_bytes(field.field_type, data_file.upper_bounds[field.field_id])
        ranges[str(data_file.partition)].append((low, high))
    return {partition: sorted(found) for partition, found in ranges.items()}


def local_path(uri: str) -> Path:
    return Path(urlparse(uri).path)


def age_everything(folder: Path, seconds: float) -> None:
    """Every file under ``folder`` last modified ``seconds`` ago."""
    stamp = time.time() - seconds
    for path in folder.rglob("*"):
        if path.is_file():
            os.utime(path, (stamp, stamp))


def later(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


# ------------------------------------------------------------------ expire snapshots


def test_expiry_keeps_the_window_and_the_last_n_and_fails_clearly_beyond(house):
    load_batches(house.catalog, batches=6)
    snapshots = [s.snapshot_id for s in house.table().snapshots()]
    assert len(snapshots) == 6
    rows_at = {sid: len(stored(house.table(), sid)) for sid in snapshots}
    tagged = snapshots[1]
    house.table().manage_snapshots().create_tag(tagged, "audit").commit()

    # Inside the retention window nothing expires, however few are to be kept.
    inside = expire_snapshots(house.catalog, SILVER, datetime.now(UTC), keep_last=1)
    assert inside.details == {"snapshots_expired": 0}
    assert inside.after.snapshots == 6

    # Eight days later all are older than seven days: the last three and the tag stay.
    report = expire_snapshots(house.catalog, SILVER, later(8), keep_last=3)
    assert report.details == {"snapshots_expired": 2}
    assert (report.before.snapshots, report.after.snapshots) == (6, 4)
    table = house.table()
    assert {s.snapshot_id for s in table.snapshots()} == {tagged, *snapshots[-3:]}
    for kept in (tagged, *snapshots[-3:]):  # time travel inside the window
        assert len(stored(table, kept)) == rows_at[kept]
        assert scan_snapshot(table, kept).to_arrow().num_rows == rows_at[kept]
    assert table.current_snapshot().snapshot_id == snapshots[-1]
    assert stored(table) == stored(table, snapshots[-1])

    for expired in (snapshots[0], snapshots[2]):
        with pytest.raises(SnapshotNotKeptError) as failure:
            scan_snapshot(table, expired)
        message = str(failure.value)
        assert f"snapshot {expired} is not kept" in message
        assert f"reaches back to snapshot {tagged}" in message  # the oldest one kept

    # Running again changes nothing.
    again = expire_snapshots(house.catalog, SILVER, later(8), keep_last=3)
    assert again.details == {"snapshots_expired": 0} and again.after.snapshots == 4


def test_expiry_keeps_at_least_one_snapshot(house):
    with pytest.raises(ValueError, match="at least 1"):
        MaintenancePolicy(keep_last_snapshots=0)


# ------------------------------------------------------------------ orphan files


def test_orphan_removal_deletes_only_old_unreferenced_files(house):
    load_batches(house.catalog, batches=4)
    # A reject gives silver.orders__rejects, whose location starts like silver.orders'.
    merge(
        house.catalog,
        cdc_key(date(2024, 1, 20)),
        [["I", "2024-01-20 10:00:00", "9", "x", "bad", None]],
    )
    expire_snapshots(house.catalog, SILVER, later(8), keep_last=2)
    table = house.table()
    kept_snapshot = table.snapshots()[0].snapshot_id
    before_rows, kept_rows = stored(table), stored(table, kept_snapshot)
    rejects_before = house.table(REJECTS).scan().to_arrow()
    age_everything(house.lake, 3 * DAY)

    data_folder = local_path(table.location()) / "data" / "created_at_month=2024-01"
    crashed = data_folder / "00000-0-crashed-run.parquet"  # a merge that died before its commit
    crashed.write_bytes(b"PAR1 half a file")
    os.utime(crashed, (time.time() - 2 * DAY, time.time() - 2 * DAY))
    in_flight = data_folder / "00000-0-merge-in-flight.parquet"  # written a minute ago
    in_flight.write_bytes(b"PAR1 not committed yet")
    os.utime(in_flight, (time.time() - 60, time.time() - 60))
    referenced = {local_path(path) for path in referenced_paths(table)}
    unreferenced_before = {
        path
        for path in local_path(table.location()).rglob("*")
        if path.is_file() and path not in referenced
    }
    assert {crashed, in_flight} < unreferenced_before  # expiry left old snapshots' files too

    report = remove_orphan_files(house.catalog, SILVER, house.store, datetime.now(UTC))

    assert not crashed.exists() and in_flight.exists()
    assert all(path.exists() for path in referenced), "a referenced file was deleted"
    remaining = {path for path in local_path(table.location()).rglob("*") if path.is_file()}
    assert remaining == referenced | {in_flight}
    assert report.details["orphan_files_removed"] == len(unreferenced_before) - 1
    assert report.details["orphans_too_young"] == 1
    assert report.details["orphan_bytes_removed"] > 0
    assert report.before == report.after  # the table itself is unchanged
    table = house.table()
    assert stored(table) == before_rows and stored(table, kept_snapshot) == kept_rows
    assert house.table(REJECTS).scan().to_arrow() == rejects_before  # the sibling untouched

    # A second run finds only the young file.
    again = remove_orphan_files(house.catalog, SILVER, house.store, datetime.now(UTC))
    assert again.details["orphan_files_removed"] == 0 and again.details["orphans_found"] == 1


def test_orphan_removal_refuses_when_a_referenced_file_is_missing(house):
    load_batches(house.catalog, batches=2)
    table = house.table()
    age_everything(house.lake, 3 * DAY)
    orphan = local_path(table.location()) / "data" / "stray.parquet"
    orphan.write_bytes(b"x")
    os.utime(orphan, (time.time() - 3 * DAY, time.time() - 3 * DAY))
    local_path(live_files(table)[0].file_path).unlink()  # removed by hand
    with pytest.raises(OrphanFilesError, match="not in the lake listing"):
        remove_orphan_files(house.catalog, SILVER, house.store, datetime.now(UTC))
    assert orphan.exists()


def test_orphan_safety_age_has_a_floor(house):
    load_batches(house.catalog, batches=1)
    with pytest.raises(ValueError, match="merge"):
        remove_orphan_files(
            house.catalog, SILVER, house.store, datetime.now(UTC), timedelta(minutes=5)
        )
    with pytest.raises(ValueError, match="in flight"):
        MaintenancePolicy(orphan_min_age=timedelta(0))


# ------------------------------------------------------------------ compaction


def test_compaction_keeps_the_data_packs_files_by_key_and_merges_still_prune(house):
    load_batches(house.catalog, batches=10)
    table = house.table()
    before_rows, before_files = stored(table), live_files(table)
    newest = snapshot_property(table, MAX_COMMIT_TS_PROPERTY)
    assert len(before_files) == 20  # 10 January files, 10 one-row February files
    january = [f for f in before_files if "2024-01" in f.file_path]
    target = int(sum(f.file_size_in_bytes for f in january) / len(january) * 3.5)

    report = compact_data_files(house.catalog, SILVER, CONTRACT.primary_key, target)

    table = house.table()
    assert stored(table) == before_rows
    files = live_files(table)
    assert report.after.data_files == len(files) < len(before_files)
    assert report.details["files_rewritten"] > report.details["files_added"]
    for data_file in files:
        assert data_file.file_size_in_bytes <= target
        ids = pq.read_table(local_path(data_file.file_path), columns=["id"])["id"].to_pylist()
        assert ids == sorted(ids)  # key-sorted inside the file
    for partition, ranges in key_ranges(table).items():
        for (_, high), (low, _) in zip(ranges, ranges[1:]):
            assert high < low, f"{partition}: key ranges overlap: {ranges}"
    assert snapshot_property(table, MAX_COMMIT_TS_PROPERTY) == newest

    one = merge(
        house.catalog, cdc_key(date(2024, 3, 1)), [row("U", "2024-03-01 10:00:00", 123, "x")]
    )
    assert (one.files_scanned, one.files_rewritten, one.updated) == (1, 1, 1)
    assert {r["id"]: r["name"] for r in stored(house.table())}[123] == "x"

    # At the default target (128 MB) every partition is one file; running again is a no-op.
    full = compact_data_files(house.catalog, SILVER, CONTRACT.primary_key)
    assert full.after.data_files == 2
    again = compact_data_files(house.catalog, SILVER, CONTRACT.primary_key)
    assert again.details["files_rewritten"] == 0 and again.after.snapshots == full.after.snapshots


def test_compaction_never_packs_small_files_across_a_full_files_key_range(house):
    house.catalog.create_namespace_if_not_exists("scratch")
    ids = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    table = house.catalog.create_table("scratch.ranges", schema=ids)
    for keys in (range(1, 20_001), [5, 6], [900, 901], [30_000, 30_001], [30_002]):
        table.append(pa.table({"id": pa.array(list(keys), pa.int64())}, schema=ids))
    sizes = sorted(task.file.file_size_in_bytes for task in table.scan().plan_files())
    groups = plan_compaction(house.catalog.load_table("scratch.ranges"), ["id"], sizes[-1])
    packed = [sorted(task.file.record_count for task in group) for group in groups]
    # 5-6 and 900-901 both lie inside 1-20000: apart. 30000-30002 lie beyond it: packed.
    assert packed == [[1, 2]]


def test_compaction_of_the_rejects_table(house):
    for day in range(1, 6):
        bad = [["I", f"2024-01-0{day} 10:00:00", str(day), "x", "not-a-number", None]]
        merge(house.catalog, cdc_key(date(2024, 1, day)), bad)
    rejects = house.table(REJECTS)
    before = sorted(rejects.scan().to_arrow().to_pylist(), key=lambda r: r["_source_file"])
    report = compact_data_files(house.catalog, REJECTS, ("_source_file", "_source_row"))
    assert (report.before.data_files, report.after.data_files) == (5, 1)
    after = house.table(REJECTS).scan().to_arrow().to_pylist()
    assert after == before  # sorted by source file, as the rewrite wrote them


def test_maintenance_compacts_the_history_table_by_key_and_validity(house):
    contract = dataclasses.replace(CONTRACT, history=True)
    for day in range(1, 6):  # each run: new keys' versions in a small file of their own
        rows = [row("I", f"2024-01-0{day} 10:00:00", day), row("U", f"2024-01-0{day} 11:00:00", 1)]
        raw = changes(cdc_key(date(2024, 1, day)), rows)
        merge_changes(house.catalog, contract, DMS, raw, ingested_at=INGESTED)
    history = silver_identifier(contract.name, HISTORY)
    versions = sorted(map(str, house.table(history).scan().to_arrow().to_pylist()))
    reports = maintain_table(
        house.catalog,
        house.store,
        contract,
        DMS,
        datetime.now(UTC),
        MaintenancePolicy(operations=(MaintenanceOperation.COMPACT_DATA_FILES,)),
    )
    compacted = next(r for r in reports if r.table == history)
    assert compacted.before.data_files > compacted.after.data_files == 1
    rows = house.table(history).scan().to_arrow()
    assert sorted(map(str, rows.to_pylist())) == versions
    order = list(zip(rows["id"].to_pylist(), rows[VALID_FROM].to_pylist(), strict=True))
    assert order == sorted(order)  # by key, then validity


# ------------------------------------------------------------------ manifests


def test_rewrite_manifests_reduces_them_and_keeps_the_data(house):
    load_batches(house.catalog, batches=8)
    merge(house.catalog, cdc_key(date(2024, 2, 1)), [row("D", "2024-02-01 10:00:00", 7)])
    table = house.table()
    before_rows, newest = stored(table), snapshot_property(table, MAX_COMMIT_TS_PROPERTY)
    before_files = {f.file_path for f in live_files(table)}

    report = rewrite_manifests(house.catalog, SILVER)

    assert report.before.manifests > 8 and report.after.manifests == 1
    assert report.details == {
        "manifests_replaced": report.before.manifests,
        "manifests_created": 1,
    }
    table = house.table()
    assert stored(table) == before_rows
    assert {f.file_path for f in live_files(table)} == before_files
    snapshot = table.current_snapshot()
    assert snapshot.summary.operation.value == "replace"
    summary = snapshot.summary.additional_properties
    assert summary[MAX_COMMIT_TS_PROPERTY] == newest
    assert summary["total-data-files"] == str(len(before_files))
    assert (report.before.data_files, report.before.records) == (
        report.after.data_files,
        report.after.records,
    )
    # Already packed: nothing to commit.
    again = rewrite_manifests(house.catalog, SILVER)
    assert (
        again.details["manifests_created"] == 0 and again.after.snapshots == report.after.snapshots
    )
    # Merges go on from the rewritten manifests.
    later_merge = merge(
        house.catalog, cdc_key(date(2024, 2, 2)), [row("U", "2024-02-02 10:00:00", 9, "y")]
    )
    assert (later_merge.updated, later_merge.files_scanned) == (1, 1)


# ------------------------------------------------------------------ tombstones


def tombstoned_table(catalog: Catalog) -> None:
    merge(
        catalog,
        cdc_key(date(2024, 1, 1)),
        [row("I", "2024-01-01 10:00:00", k) for k in range(1, 6)],
    )
    merge(catalog, cdc_key(date(2024, 1, 5)), [row("D", "2024-01-05 10:00:00", 1)])
    merge(catalog, cdc_key(date(2024, 5, 20)), [row("D", "2024-05-20 10:00:00", 2)])
    merge(catalog, cdc_key(date(2024, 6, 1)), [row("U", "2024-06-01 10:00:00", 3, "newest")])


def test_purge_removes_tombstones_before_the_horizon_and_records_it(house):
    tombstoned_table(house.catalog)
    live_before = [r for r in stored(house.table()) if not r["_is_deleted"]]
    newest = snapshot_property(house.table(), MAX_COMMIT_TS_PROPERTY)

    # 30 days before the newest commit (2024-06-01 10:00): 2024-05-02 10:00.
    report = purge_tombstones(house.catalog, CONTRACT, DMS, timedelta(days=30))

    assert report.details["tombstones_purged"] == 1
    assert report.details["horizon"] == "2024-05-02T10:00:00+00:00"
    table = house.table()
    rows = {r["id"]: r for r in stored(table)}
    assert 1 not in rows  # deleted on 2024-01-05: purged
    assert rows[2]["_is_deleted"]  # deleted on 2024-05-20: kept
    assert [r for r in rows.values() if not r["_is_deleted"]] == live_before
    assert table.properties[TOMBSTONE_HORIZON_PROPERTY] == "2024-05-02T10:00:00+00:00"
    assert snapshot_property(table, MAX_COMMIT_TS_PROPERTY) == newest
    assert report.after.records == report.before.records - 1

    # A longer horizon never lowers the recorded one; nothing older is left to purge.
    longer = purge_tombstones(house.catalog, CONTRACT, DMS, timedelta(days=60))
    assert longer.details["tombstones_purged"] == 0
    assert house.table().properties[TOMBSTONE_HORIZON_PROPERTY] == "2024-05-02T10:00:00+00:00"
    assert longer.after.snapshots == longer.before.snapshots  # no commit

    # A shorter one raises it and purges the newer tombstone too.
    shorter = purge_tombstones(house.catalog, CONTRACT, DMS, timedelta(days=5))
    assert shorter.details["tombstones_purged"] == 1
    assert house.table().properties[TOMBSTONE_HORIZON_PROPERTY] == "2024-05-27T10:00:00+00:00"
    assert 2 not in {r["id"] for r in stored(house.table())}


def test_purge_never_purges_nothing(house):
    tombstoned_table(house.catalog)
    before = stored(house.table())
    report = purge_tombstones(house.catalog, CONTRACT, DMS, None)
    assert report.details == {"tombstones_purged": 0, "horizon": "never"}
    assert stored(house.table()) == before
    assert TOMBSTONE_HORIZON_PROPERTY not in house.table().properties
    assert report.after.snapshots == report.before.snapshots


def test_purge_positions_a_tombstone_by_its_rank_time_not_its_commit_timestamp(house):
    """A reload's sweep tombstones a key the reload no longer holds; the tombstone ranks at
    the reload's start (its first transfer less the 60 s margin), before its ``_commit_ts``."""
    load = "bronze/dms/public/orders/LOAD00000001.csv"

    def full_load(transferred: str, keys: tuple[int, ...]) -> None:
        rows = [[transferred, str(k), f"n{k}", "1.00", "2024-01-15 08:00:00"] for k in keys]
        raw = read_dms_file(encode_csv_rows(rows, DMS), load, CONTRACT, DMS)
        merge_changes(house.catalog, CONTRACT, DMS, raw, ingested_at=INGESTED)

    full_load("2024-01-01 10:00:00", (1, 2))
    merge(house.catalog, cdc_key(date(2024, 1, 2)), [row("U", "2024-01-02 10:00:00", 2, "b")])
    full_load("2024-03-01 10:00:00", (2,))  # the reload: key 1 is gone at the source
    swept = merge(house.catalog, cdc_key(date(2024, 3, 2)), [row("U", "2024-03-02 10:00:00", 2)])
    assert swept.swept == 1
    tombstone = stored(house.table())[0]
    assert tombstone["id"] == 1 and tombstone["_is_deleted"]
    assert tombstone["_commit_ts"] == datetime(2024, 3, 1, 10, tzinfo=UTC)  # ranks 09:59:00

    # Horizon 2024-03-01 09:58:30: the tombstone (rank 09:59:00) is after it.
    kept = purge_tombstones(house.catalog, CONTRACT, DMS, timedelta(days=1, seconds=90))
    assert kept.details["tombstones_purged"] == 0
    # Horizon 09:59:30: before its commit timestamp, after its rank: purged.
    purged = purge_tombstones(house.catalog, CONTRACT, DMS, timedelta(days=1, seconds=30))
    assert purged.details["tombstones_purged"] == 1
    assert purged.details["horizon"] == "2024-03-01T09:59:30+00:00"
    assert [r["id"] for r in stored(house.table())] == [2]


# ------------------------------------------------------------------ concurrency


def test_a_purge_committed_while_a_merge_plans_does_not_let_it_bring_a_key_back(house, monkeypatch):
    """The merge split its batch at the old horizon (none); the purge then removes key 1's
    tombstone and raises the horizon past the merge's stale insert of key 1."""
    tombstoned_table(house.catalog)
    real_load = apply_module.load_or_create_silver_table
    calls = []

    def purge_after_the_split(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the merge's commit attempt: after the batch was split
            purge_tombstones(house.catalog, CONTRACT, DMS, timedelta(days=30))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(apply_module, "load_or_create_silver_table", purge_after_the_split)
    stale = [row("I", "2024-01-03 10:00:00", 1, "stale")]  # before key 1's delete (01-05)
    with pytest.raises(HorizonMovedError, match="tombstone horizon"):
        merge(house.catalog, cdc_key(date(2024, 1, 3), "110000000"), stale)
    assert 1 not in {r["id"] for r in stored(house.table())}
    monkeypatch.setattr(apply_module, "load_or_create_silver_table", real_load)
    # The next run splits at the new horizon: the change goes to the rejects.
    again = merge(house.catalog, cdc_key(date(2024, 1, 3), "110000000"), stale)
    assert (again.rejected, again.inserted) == (1, 0)
    assert 1 not in {r["id"] for r in stored(house.table())}


@pytest.mark.parametrize("operation", ["compact", "purge"])
def test_maintenance_and_a_merge_of_the_same_table_both_land(tmp_path, monkeypatch, operation):
    house = Lakehouse(tmp_path)
    load_batches(house.catalog, batches=6)
    # A delete that carries the row's values: its tombstone stays in the file of keys 1-50,
    # which the merge below rewrites too, so the two conflict in either order.
    deleted = ["D", "2024-01-20 10:00:00", "3", "n3", "1.00", "2024-01-15 08:00:00"]
    merge(house.catalog, cdc_key(date(2024, 1, 20)), [deleted])
    merge(house.catalog, cdc_key(date(2024, 9, 1)), [row("I", "2024-09-01 10:00:00", 900)])

    # Both plan on the same snapshot: each waits for the other before writing its first file.
    barrier = threading.Barrier(2, timeout=30)
    waited = threading.local()

    def in_step(real):
        def write(*args, **kwargs):
            if not getattr(waited, "done", False):
                waited.done = True
                barrier.wait()
            return real(*args, **kwargs)

        return write

    monkeypatch.setattr(writer, "write_data_files", in_step(writer.write_data_files))
    monkeypatch.setattr(maintenance, "write_data_files", in_step(maintenance.write_data_files))
    results: dict[str, object] = {}
    errors: list[BaseException] = []

    def run_maintenance() -> None:
        try:
            catalog = house.open()
            if operation == "compact":
                results["maintenance"] = compact_data_files(catalog, SILVER, CONTRACT.primary_key)
            else:
                results["maintenance"] = purge_tombstones(
                    catalog, CONTRACT, DMS, timedelta(days=30)
                )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def run_merge() -> None:
        try:
            update = [row("U", "2024-09-02 10:00:00", key, "concurrent") for key in (10, 120, 250)]
            results["merge"] = merge(house.open(), cdc_key(date(2024, 9, 2)), update)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run_maintenance), threading.Thread(target=run_merge)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    done, merged = results["maintenance"], results["merge"]
    assert sorted([done.attempts, merged.attempts]) == [1, 2]  # the loser planned again
    assert merged.updated == 3

    rows = {r["id"]: r for r in stored(house.table())}
    assert all(rows[key]["name"] == "concurrent" for key in (10, 120, 250))
    assert len([r for r in rows.values() if not r["_is_deleted"]]) == 6 * 51 - 1 + 1
    if operation == "compact":
        assert done.details["files_rewritten"] > 0
        assert 3 in rows and rows[3]["_is_deleted"]
    else:
        assert done.details["tombstones_purged"] == 1 and 3 not in rows
    table = house.table()
    assert snapshot_property(table, MAX_COMMIT_TS_PROPERTY) == "2024-09-02T10:00:00+00:00"


# ------------------------------------------------------------------ every table


def side_tables(house: Lakehouse) -> None:
    """The ledger and the quarantine, as a run of apply.py writes them."""
    key = cdc_key(date(2024, 1, 1))
    info = ObjectInfo(key, 10, datetime(2024, 1, 1, tzinfo=UTC), "etag")
    bronze = BronzeFile(info, parse_object_key(key, DMS))
    for _ in range(3):
        record_applied(house.catalog, CONTRACT, [entry_for(bronze, 5, (None, None), INGESTED)])
    bad = quarantined(bronze, "line 1: bad", INGESTED)
    update_quarantine(house.catalog, CONTRACT, {}, [bad], [])
    update_quarantine(house.catalog, CONTRACT, {key: bad}, [bad], [])


def test_maintain_table_runs_every_operation_on_every_table(house):
    load_batches(house.catalog, batches=5)
    merge(
        house.catalog,
        cdc_key(date(2024, 1, 6)),
        [["I", "2024-01-06 10:00:00", "9", "x", "bad", None]],
    )
    merge(house.catalog, cdc_key(date(2024, 6, 1)), [row("D", "2024-06-01 10:00:00", 3)])
    side_tables(house)
    identifiers = [
        SILVER,
        REJECTS,
        silver_identifier("orders", APPLIED),
        silver_identifier("orders", QUARANTINE),
    ]
    before = {identifier: house.table(identifier).scan().to_arrow() for identifier in identifiers}
    age_everything(house.lake, 3 * DAY)

    reports = maintain_table(
        house.catalog,
        house.store,
        CONTRACT,
        DMS,
        later(8),
        MaintenancePolicy(keep_last_snapshots=1, orphan_min_age=timedelta(hours=1)),
    )

    done = [(r.table, r.operation.value) for r in reports]
    assert done == [
        (SILVER, "purge_tombstones"),
        (SILVER, "compact_data_files"),
        (SILVER, "rewrite_manifests"),
        (SILVER, "expire_snapshots"),
        (SILVER, "remove_orphan_files"),
        (REJECTS, "compact_data_files"),
        (REJECTS, "rewrite_manifests"),
        (REJECTS, "expire_snapshots"),
        (REJECTS, "remove_orphan_files"),
        *[
            (identifier, operation)
            for identifier in identifiers[2:]
            for operation in ("rewrite_manifests", "expire_snapshots", "remove_orphan_files")
        ],
    ]
    for identifier in identifiers:
        table = house.table(identifier)
        assert len(table.snapshots()) == 1, identifier
        assert table.scan().to_arrow().sort_by([(table.schema().fields[0].name, "ascending")]) == (
            before[identifier].sort_by([(table.schema().fields[0].name, "ascending")])
        ), identifier
    assert any(r.details.get("orphan_files_removed", 0) > 0 for r in reports)


# ------------------------------------------------------------------ the job


def test_the_job_maintains_the_selected_table(house):
    load_batches(house.catalog, batches=4)
    other = TableContract(
        name="customers", schema="public", primary_key=("id",), columns=CONTRACT.columns
    )
    contracts = Contracts("contracts.yaml", DMS, {"orders": CONTRACT, "customers": other})
    merge_changes(
        house.catalog,
        other,
        DMS,
        read_dms_file(
            encode_csv_rows([row("I", "2024-01-01 10:00:00", k) for k in (1, 2)], DMS),
            cdc_key(date(2024, 1, 1), table="customers"),
            other,
            DMS,
        ),
        ingested_at=INGESTED,
    )
    merge(house.catalog, cdc_key(date(2024, 1, 9)), [row("I", "2024-01-09 10:00:00", 999)])
    customers_snapshots = len(house.table("silver.customers").snapshots())
    job = build_maintenance_job(contracts)
    resources = {
        "lake": LakeResource(uri=str(house.lake)),
        "iceberg": IcebergCatalogResource(uri=house.catalog_uri, lake_uri=str(house.lake)),
    }

    result = job.execute_in_process(
        run_config={
            "tables": ["orders"],
            "snapshot_retention_days": 3,
            "tombstone_horizon_days": "never",
        },
        resources=resources,
    )

    assert result.success
    outputs = {
        event.step_key: event.event_specific_data.metadata
        for event in result.all_events
        if event.event_type_value == "STEP_OUTPUT"
    }
    orders = outputs[maintenance_op_name("orders")]
    assert f"{SILVER}: compact_data_files" in orders and "summary" in orders
    compacted = orders[f"{SILVER}: compact_data_files"].value
    assert compacted["before"]["data_files"] > compacted["after"]["data_files"]
    assert orders[f"{SILVER}: purge_tombstones"].value["horizon"] == "never"
    assert "| silver.orders | compact_data_files |" in orders["summary"].value
    assert outputs[maintenance_op_name("customers")] == {}  # not selected
    assert len(house.table("silver.customers").snapshots()) == customers_snapshots

    with pytest.raises(dg.DagsterConfigMappingFunctionError) as failure:
        job.execute_in_process(run_config={"tables": ["nope"]}, resources=resources)
    assert "unknown table(s) nope" in str(failure.value.__cause__)
    with pytest.raises(dg.DagsterConfigMappingFunctionError) as failure:
        job.execute_in_process(run_config={"tombstone_horizon_days": "soon"}, resources=resources)
    assert "a number of days or 'never'" in str(failure.value.__cause__)


def test_the_job_runs_each_table_in_its_pool_daily():
    contracts = Contracts("contracts.yaml", DMS, {"orders": CONTRACT})
    job = build_maintenance_job(contracts)
    assert job.name == MAINTENANCE_JOB
    assert job.graph.node_named(maintenance_op_name("orders")).definition.pool == silver_pool(
        "orders"
    )
    schedule = build_maintenance_schedule(job)
    assert schedule.name == MAINTENANCE_SCHEDULE
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == MAINTENANCE_JOB


CONTRACTS_YAML = """\
dms:
  bucket_folder: bronze/dms
tables:
  orders:
    schema: public
    primary_key: [id]
    partition_by: {column: created_at, transform: month}
    columns:
      - {name: id, type: bigint, nullable: false}
      - {name: name, type: string}
      - {name: amount, type: "decimal(10,2)"}
      - {name: created_at, type: timestamp}
"""


@pytest.mark.cli
def test_the_cli_runs_the_job(house, tmp_path):
    load_batches(house.catalog, batches=4)
    files_before = len(live_files(house.table()))
    (tmp_path / "contracts.yaml").write_text(CONTRACTS_YAML)
    (tmp_path / "run.yaml").write_text("tables: [orders]\nsnapshot_retention_days: 3\n")
    env = {
        **os.environ,
        "LAKEHOUSE_LAKE_URI": str(house.lake),
        "LAKEHOUSE_CATALOG_URI": house.catalog_uri,
        "LAKEHOUSE_CONTRACTS": str(tmp_path / "contracts.yaml"),
    }
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("dagster")),
            "job",
            "execute",
            "-m",
            "lakehouse_assets.definitions",
            "-j",
            MAINTENANCE_JOB,
            "-c",
            str(tmp_path / "run.yaml"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "RUN_SUCCESS" in result.stdout + result.stderr
    table = house.open().load_table(SILVER)
    assert len(live_files(table)) == 2 < files_before  # one file per partition
    assert table.current_snapshot().summary.operation.value == "replace"  # manifests rewritten


# ------------------------------------------------------------------ Spark reads and merges


@pytest.mark.spark
def test_every_operation_leaves_the_table_readable_and_mergeable_by_spark(house):
    from lakehouse_assets.silver.spark.engine import spark_merge_changes
    from lakehouse_assets.silver.spark.reader import BronzeFileRef, spark_uri
    from lakehouse_assets.silver.spark.session import lakehouse_spark_session

    load_batches(house.catalog, batches=6)
    merge(house.catalog, cdc_key(date(2024, 1, 10)), [row("D", "2024-01-10 10:00:00", 5)])
    merge(house.catalog, cdc_key(date(2024, 6, 1)), [row("D", "2024-06-01 10:00:00", 6)])
    age_everything(house.lake, 3 * DAY)
    reports = maintain_table(
        house.catalog,
        house.store,
        CONTRACT,
        DMS,
        later(8),
        MaintenancePolicy(keep_last_snapshots=2, tombstone_horizon=timedelta(days=30)),
    )
    done = {r.operation: r for r in reports if r.table == SILVER}
    assert done[MaintenanceOperation.PURGE_TOMBSTONES].details["tombstones_purged"] == 1
    # One file per partition: January, February and the key-only tombstone's (null).
    assert done[MaintenanceOperation.COMPACT_DATA_FILES].after.data_files == 3
    assert done[MaintenanceOperation.REMOVE_ORPHAN_FILES].details["orphan_files_removed"] > 0
    expected = stored(house.table())

    spark = lakehouse_spark_session(house.catalog_uri, house.warehouse)
    try:
        name = f"lakehouse.{SILVER}"
        seen = [r.asDict() for r in spark.table(name).orderBy("id").collect()]
        assert len(seen) == len(expected) == 6 * 51 - 1
        assert [r["id"] for r in seen] == [r["id"] for r in expected]
        assert [(r["name"], bool(r["_is_deleted"])) for r in seen] == [
            (r["name"], r["_is_deleted"]) for r in expected
        ]
        assert spark.sql(f"SELECT count(*) FROM {name} WHERE NOT _is_deleted").first()[0] == (
            6 * 51 - 2
        )

        key = cdc_key(date(2024, 6, 2))
        path = house.lake / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(
            encode_csv_rows(
                [
                    row("U", "2024-06-02 10:00:00", 7, "spark"),
                    row("I", "2024-06-02 10:00:00", 5000),
                ],
                DMS,
            )
        )
        merged = spark_merge_changes(
            spark,
            house.open(),
            CONTRACT,
            DMS,
            [BronzeFileRef(key, spark_uri(str(house.lake), key))],
            INGESTED,
        )
        assert (merged.updated, merged.inserted) == (1, 1)
        rows = {r["id"]: r for r in stored(house.open().load_table(SILVER))}
        assert rows[7]["name"] == "spark" and 5000 in rows and 5 not in rows
        assert spark.sql(f"SELECT name FROM {name} WHERE id = 7").first()[0] == "spark"

        # Maintenance again, over the files and metadata Spark wrote (its own path style).
        age_everything(house.lake, 3 * DAY)
        again = maintain_table(
            house.open(),
            house.store,
            CONTRACT,
            DMS,
            later(8),
            MaintenancePolicy(keep_last_snapshots=1),
        )
        assert all(r.after.snapshots <= r.before.snapshots + 1 for r in again)
        table = house.open().load_table(SILVER)
        assert all(local_path(p).exists() for p in referenced_paths(table))
        assert {r["id"]: r for r in stored(table)} == rows
        assert spark.sql(f"SELECT count(*) FROM {name}").first()[0] == len(rows)
    finally:
        spark.stop()
