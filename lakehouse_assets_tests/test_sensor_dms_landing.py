"""The DMS landing sensor, driven with ``build_sensor_context`` against a real instance.

Tests taking ``lake_uri`` run on a local folder and on moto's S3 server. A small
harness plays the sensor daemon's part: it keeps the cursor between ticks,
writes the runless bronze materializations into the instance and refuses a run
key it has seen before (the daemon would skip such a run). The file sets are
checked exactly: every DMS file is counted once over all ticks.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import dagster as dg
import pytest

from lakehouse_assets.bronze.files import BronzeFile
from lakehouse_assets.contracts import load_contracts, parse_contracts
from lakehouse_assets.contracts.model import DatePartitioning
from lakehouse_assets.demo.simulator import generate
from lakehouse_assets.dms import date_folder, parse_object_key, table_prefix
from lakehouse_assets.lake import LakeStore, open_lake
from lakehouse_assets.lake.catalog import sqlite_uri_for
from lakehouse_assets.names import (
    NEW_FILES_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    bronze_asset_key,
    silver_asset_key,
)
from lakehouse_assets.resources import IcebergCatalogResource, LakeResource
from lakehouse_assets.sensors.landing import (
    LandingCursor,
    LandingSettings,
    build_dms_landing_sensor,
    check_layout,
    day_ranges,
    scan_landing,
)
from lakehouse_assets.silver.quarantine import quarantined, read_quarantine, update_quarantine

CONTRACTS = load_contracts()
DMS = CONTRACTS.dms
DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)
# A catalog without tables (a fresh in-memory SQLite per tick): no table quarantined anything.
IN_MEMORY_CATALOG = "sqlite:///:memory:"


# --------------------------------------------------------------------------- helpers


def cdc_key(table: str, at: datetime, dms=DMS) -> str:
    folder = ""
    if dms.date_partition.enabled:
        folder = date_folder(dms.date_partition, at.date(), at.hour)
    name = f"{at:%Y%m%d-%H%M%S}{at.microsecond // 1000:03d}.csv"
    return table_prefix(dms, "public", table) + folder + name


def load_key(table: str, counter: int, segment: int | None = None) -> str:
    name = f"LOAD{counter:08X}.csv"
    if segment is not None:
        name = f"SEGMENT{segment}_{name}"
    return table_prefix(DMS, "public", table) + name


def write_files(
    store: LakeStore, keys: Iterable[str], s3_client: Any = None, data: bytes = b"I,x\n"
) -> None:
    keys = list(keys)
    if s3_client is None or not store.uri.startswith("s3://"):
        for key in keys:
            store.put(key, data, last_modified=datetime(2024, 1, 1, 23, 30, tzinfo=UTC))
        return
    bucket = urlparse(store.uri).netloc

    def put(key: str) -> None:
        s3_client.put_object(Bucket=bucket, Key=key, Body=data)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put, keys))


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclasses.dataclass
class Tick:
    result: dg.SensorResult
    files: dict[tuple[str, str], int]  # (table, day) -> files recorded
    bytes: dict[tuple[str, str], int]
    ranges: dict[str, list[tuple[str, str]]]  # table -> requested silver ranges

    @property
    def total_files(self) -> int:
        return sum(self.files.values())


class Harness:
    """The sensor daemon's part: cursor, runless events into the instance, run keys."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        lake_uri: str,
        settings: LandingSettings,
        clock: Clock,
        contracts=CONTRACTS,
        catalog_uri: str = IN_MEMORY_CATALOG,
    ):
        self.instance = instance
        self.lake_uri = lake_uri
        self.catalog_uri = catalog_uri
        self.settings = settings
        self.clock = clock
        self.contracts = contracts
        self.sensor = build_dms_landing_sensor(contracts, DAILY, settings, clock=clock)
        self.cursor: str | None = None
        self.run_keys: set[str] = set()
        self.recorded: Counter = Counter()  # (table, day) -> files over all ticks

    def evaluate(self, cursor: str | None) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=cursor,
            resources={
                "lake": LakeResource(uri=self.lake_uri),
                "iceberg": IcebergCatalogResource(uri=self.catalog_uri, lake_uri=self.lake_uri),
            },
        )
        return self.sensor(context)

    def tick(self) -> Tick:
        result = self.evaluate(self.cursor)
        files, sizes, ranges = {}, {}, defaultdict(list)
        for event in result.asset_events:
            assert isinstance(event, dg.AssetMaterialization)
            table = event.asset_key.path[-1]
            assert event.asset_key == bronze_asset_key(table)
            files[(table, event.partition)] = event.metadata["files"].value
            sizes[(table, event.partition)] = event.metadata["bytes"].value
            self.instance.report_runless_asset_event(event)
        for request in result.run_requests:
            assert request.run_key not in self.run_keys, (
                f"run key requested twice: {request.run_key}"
            )
            self.run_keys.add(request.run_key)
            [asset] = request.asset_selection
            table = asset.path[-1]
            assert asset == silver_asset_key(table)
            ranges[table].append((request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]))
        self.recorded.update(files)
        self.cursor = result.cursor
        return Tick(result, files, sizes, dict(ranges))

    def drain(self, max_ticks: int = 50) -> list[Tick]:
        ticks = []
        for _ in range(max_ticks):
            tick = self.tick()
            if not tick.result.asset_events and not tick.result.run_requests:
                return ticks
            ticks.append(tick)
        raise AssertionError(f"still finding files after {max_ticks} ticks")


def expected_partitions(store: LakeStore, tables: Iterable[str]) -> Counter:
    """(table, day) -> number of DMS data files, from a full listing (the test oracle)."""
    counts: Counter = Counter()
    for table in tables:
        for info in store.list_objects(table_prefix(DMS, "public", table)):
            try:
                parsed = parse_object_key(info.key, DMS)
            except ValueError:
                continue
            counts[(table, parsed.partition_date(info.last_modified).isoformat())] += 1
    return counts


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC).replace(microsecond=0))


# --------------------------------------------------------------------------- the demo landing


def test_first_tick_over_a_demo_landing(lake_uri, instance, clock):
    store = open_lake(lake_uri)
    generate(store, CONTRACTS, scale=0.02, days=3, seed=42)
    expected = expected_partitions(store, CONTRACTS.tables)
    assert sum(expected.values()) > 50

    harness = Harness(instance, lake_uri, LandingSettings(), clock)
    first = harness.tick()

    # Every DMS file of every table, in one tick, counted once, with its bytes.
    assert Counter(first.files) == expected
    assert sum(first.bytes.values()) == sum(
        info.size
        for table in CONTRACTS.tables
        for info in store.list_objects(table_prefix(DMS, "public", table))
    )
    # One silver run per table and range; the three demo days are one range
    # (on S3 the full-load files carry the upload day, a separate range).
    for table in CONTRACTS.tables:
        days = sorted(date.fromisoformat(day) for (t, day) in expected if t == table)
        assert first.ranges[table] == [
            (a.isoformat(), b.isoformat()) for a, b in day_ranges(days, 7)
        ]
        if not lake_uri.startswith("s3://"):
            assert len(first.ranges[table]) == 1 and first.ranges[table][0][0] == "2024-01-01"
    for request in first.result.run_requests:
        assert int(request.tags[NEW_FILES_TAG]) > 0

    # The instance now knows the bronze partitions, recorded without a run.
    for table in CONTRACTS.tables:
        materialized = instance.get_materialized_partitions(bronze_asset_key(table))
        assert materialized == {day for (t, day) in expected if t == table}

    # Nothing new: the next tick requests nothing and records nothing.
    second = harness.tick()
    assert second.result.run_requests == [] and second.result.asset_events == []


# --------------------------------------------------------------------------- incremental ticks


def test_incremental_ticks_take_only_new_files_in_both_key_streams(
    lake_uri, instance, clock, s3_client
):
    store = open_lake(lake_uri)
    day1 = datetime(2024, 3, 1, tzinfo=UTC)
    harness = Harness(instance, lake_uri, LandingSettings(), clock)

    write_files(
        store, [cdc_key("core_order", day1 + timedelta(hours=h)) for h in (1, 2, 3)], s3_client
    )
    tick = harness.tick()
    assert tick.files == {("core_order", "2024-03-01"): 3}
    assert tick.ranges == {"core_order": [("2024-03-01", "2024-03-01")]}

    # More files the same day and the next; another table.
    write_files(
        store,
        [cdc_key("core_order", day1 + timedelta(hours=h)) for h in (4, 5, 26)]
        + [cdc_key("core_tenant", day1 + timedelta(hours=7))],
        s3_client,
    )
    tick = harness.tick()
    assert tick.files == {
        ("core_order", "2024-03-01"): 2,
        ("core_order", "2024-03-02"): 1,
        ("core_tenant", "2024-03-01"): 1,
    }
    assert tick.ranges == {
        "core_order": [("2024-03-01", "2024-03-02")],  # two days, one range run
        "core_tenant": [("2024-03-01", "2024-03-01")],
    }

    # A full load lands: LOAD keys sort after every 2024/... key ...
    write_files(store, [load_key("core_order", n) for n in (1, 2, 0xA)], s3_client)
    tick = harness.tick()
    assert tick.total_files == 3
    assert list(tick.files) == [("core_order", tick.result.asset_events[0].partition)]

    # ... and CDC keys landing after it sort before it: a single StartAfter
    # cursor per table would skip them.
    write_files(store, [cdc_key("core_order", day1 + timedelta(hours=30))], s3_client)
    write_files(store, [load_key("core_order", 0xB)], s3_client)
    tick = harness.tick()
    assert tick.total_files == 2
    assert ("core_order", "2024-03-02") in tick.files

    # Not DMS data files: skipped once, never requested.
    write_files(
        store,
        [
            table_prefix(DMS, "public", "core_order") + "2024/03/02/notes.txt",
            table_prefix(DMS, "public", "core_order") + "manifest.json",
        ],
        s3_client,
    )
    tick = harness.tick()
    assert tick.result.run_requests == [] and tick.result.asset_events == []
    assert harness.tick().result.run_requests == []

    assert Counter(harness.recorded) == expected_partitions(store, ["core_order", "core_tenant"])


@pytest.mark.parametrize("lookback_hours", [1, 24])
def test_late_file_in_yesterdays_folder(lake_uri, instance, clock, s3_client, lookback_hours):
    store = open_lake(lake_uri)
    day2 = datetime(2024, 3, 2, tzinfo=UTC)
    settings = LandingSettings(lookback=timedelta(hours=lookback_hours))
    harness = Harness(instance, lake_uri, settings, clock)
    write_files(
        store, [cdc_key("core_order", day2 + timedelta(hours=h)) for h in (20, 23.5)], s3_client
    )
    assert harness.tick().total_files == 2
    write_files(store, [cdc_key("core_order", day2 + timedelta(hours=24, minutes=10))], s3_client)
    tick = harness.tick()
    assert tick.files == {("core_order", "2024-03-03"): 1}

    # Late: 23:55 of yesterday lands after 00:10 of today was taken (within the lookback).
    late = cdc_key("core_order", day2 + timedelta(hours=23, minutes=55))
    assert late.rsplit("/", 1)[0].endswith("2024/03/02")
    write_files(store, [late], s3_client)
    tick = harness.tick()
    assert tick.files == {("core_order", "2024-03-02"): 1}
    assert tick.ranges == {"core_order": [("2024-03-02", "2024-03-02")]}
    assert harness.tick().total_files == 0

    # 21:00 of yesterday, more than an hour before the newest file: only a
    # lookback that long finds it (else: backfill the day).
    write_files(store, [cdc_key("core_order", day2 + timedelta(hours=21))], s3_client)
    tick = harness.tick()
    if lookback_hours == 1:
        assert tick.total_files == 0
    else:
        assert tick.files == {("core_order", "2024-03-02"): 1}
    assert harness.tick().total_files == 0


def test_parallel_full_load_segments_landing_out_of_key_order(lake_uri, instance, clock, s3_client):
    store = open_lake(lake_uri)
    harness = Harness(instance, lake_uri, LandingSettings(lookback=timedelta(minutes=30)), clock)
    write_files(
        store,
        [load_key("core_event", 1, segment=1), load_key("core_event", 1, segment=2)],
        s3_client,
    )
    assert harness.tick().total_files == 2
    # Segment 1's second file finishes after segment 2's first: it sorts before the last key.
    clock.now += timedelta(minutes=5)
    write_files(store, [load_key("core_event", 2, segment=1)], s3_client)
    assert harness.tick().total_files == 1
    # Long after the load: the stream is listed whole every tick, so a segment file that
    # sorts before the newest key is still found, and the cursor knows each key's version.
    clock.now += timedelta(minutes=31)
    assert harness.tick().total_files == 0
    write_files(store, [load_key("core_event", 3, segment=1)], s3_client)
    tick = harness.tick()
    assert tick.total_files == 1
    assert tick.result.asset_events[0].metadata["last_file"].value == load_key(
        "core_event", 3, segment=1
    )
    state = LandingCursor.decode(harness.cursor).table("core_event").load
    assert sorted(state.versions) == [
        "SEGMENT1_LOAD00000001.csv",
        "SEGMENT1_LOAD00000002.csv",
        "SEGMENT1_LOAD00000003.csv",
        "SEGMENT2_LOAD00000001.csv",
    ]
    assert harness.tick().total_files == 0


def test_a_file_of_a_day_without_partition_waits(tmp_path, instance):
    lake_uri = str(tmp_path / "lake")
    store = open_lake(lake_uri)
    clock = Clock(datetime(2024, 3, 2, 23, 50, tzinfo=UTC))
    harness = Harness(instance, lake_uri, LandingSettings(), clock)
    today = cdc_key("core_order", datetime(2024, 3, 2, 23, 40, tzinfo=UTC))
    tomorrow = cdc_key(
        "core_order", datetime(2024, 3, 3, 0, 5, tzinfo=UTC)
    )  # a fast clock upstream
    before_start = cdc_key("core_order", datetime(2023, 12, 31, 12, tzinfo=UTC))
    write_files(store, [today, tomorrow, before_start])
    tick = harness.tick()
    assert tick.files == {("core_order", "2024-03-02"): 1}
    assert harness.tick().total_files == 0
    clock.now = datetime(2024, 3, 3, 0, 1, tzinfo=UTC)
    tick = harness.tick()
    assert tick.files == {("core_order", "2024-03-03"): 1}


# --------------------------------------------------------------------------- backlog


@pytest.fixture(params=["local", "s3"])
def backlog_lake_uri(request, tmp_path, monkeypatch) -> str:
    """Like ``lake_uri``, but the S3 bucket is left to die with the moto server:
    emptying its keys through the API would cost more than the test."""
    if request.param == "local":
        return str(tmp_path / "lake")
    endpoint = request.getfixturevalue("s3_server")
    bucket = f"backlog-{uuid.uuid4().hex[:12]}"
    request.getfixturevalue("s3_client").create_bucket(Bucket=bucket)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    return f"s3://{bucket}/"


def test_twenty_thousand_file_backlog_drains_in_bounded_ticks(
    backlog_lake_uri, instance, clock, s3_client
):
    lake_uri = backlog_lake_uri
    store = open_lake(lake_uri)
    # The whole 20,000 on the local lake; on moto, whose PUTs and listings cost milliseconds
    # each, a fortieth of it with the budget scaled alike drains in the same ticks through the
    # S3 listing path.
    files = 20_000 if not lake_uri.startswith("s3://") else 500
    start = datetime(2024, 2, 1, tzinfo=UTC)
    step = timedelta(days=5) / files
    backlog = [cdc_key("core_event", start + step * i) for i in range(files)]  # 5 days
    others = [
        cdc_key("core_tenant", start + timedelta(hours=h)) for h in range(0, 120, 6)
    ]  # 20 files
    write_files(store, backlog + others, s3_client)
    expected = Counter(
        (key.split("/")[3], "-".join(key.split("/")[4:7])) for key in backlog + others
    )

    budget = files * 9 // 40  # 4,500 of 20,000
    settings = LandingSettings(max_files_per_tick=budget)
    harness = Harness(instance, lake_uri, settings, clock)
    ticks = harness.drain()

    assert len(ticks) == -(-(len(backlog) + len(others)) // budget)  # ceil: 5 ticks
    assert [tick.total_files for tick in ticks[:-1]] == [budget] * (len(ticks) - 1)
    # The small table is not starved behind the big one.
    assert sum(
        n for tick in ticks[:2] for (table, _), n in tick.files.items() if table == "core_tenant"
    ) == len(others)
    # Each tick requests one contiguous range run per table, and together they cover the backlog.
    for tick in ticks:
        assert all(len(ranges) == 1 for ranges in tick.ranges.values())
    assert ticks[0].ranges["core_event"][0][0] == "2024-02-01"
    assert ticks[-1].ranges["core_event"][-1][1] == "2024-02-05"
    # Every file recorded exactly once.
    assert Counter(harness.recorded) == expected
    # The cursor stays small: only the lookback window's keys are kept.
    cursor = LandingCursor.decode(harness.cursor)
    kept = sum(len(state.cdc.seen) + len(state.load.versions) for state in cursor.tables.values())
    assert kept < files / 10


def test_listing_work_per_tick_is_bounded(tmp_path):
    lake_uri = str(tmp_path / "lake")
    store = open_lake(lake_uri)
    start = datetime(2024, 2, 1, tzinfo=UTC)
    write_files(
        store, [cdc_key("core_event", start + timedelta(seconds=60 * i)) for i in range(3_000)]
    )
    settings = LandingSettings(max_files_per_tick=1_000, lookback=timedelta(minutes=30))
    cursor = LandingCursor()
    now = datetime.now(UTC)
    listed = []
    while True:
        scan = scan_landing(
            store,
            CONTRACTS,
            cursor,
            settings,
            first_day=date(2024, 1, 1),
            last_day=now.date(),
        )
        cursor = scan.cursor
        listed.append(scan.listed)
        if not scan.files:
            break
    # Each tick reads at most its budget plus the lookback window (30 one-minute files),
    # never the 3,000 files already taken.
    assert len(listed) == 4
    assert max(listed) <= 1_000 + 31 + 1
    assert listed[-1] <= 31


# --------------------------------------------------------------------------- restarts


def test_restart_from_the_saved_cursor_requests_nothing_twice(lake_uri, instance, clock, s3_client):
    store = open_lake(lake_uri)
    day = datetime(2024, 4, 1, tzinfo=UTC)
    write_files(
        store,
        [cdc_key("core_order", day + timedelta(minutes=m)) for m in range(0, 600, 7)],
        s3_client,
    )
    write_files(store, [load_key("core_order", n) for n in range(1, 4)], s3_client)
    harness = Harness(instance, lake_uri, LandingSettings(max_files_per_tick=40), clock)

    saved = harness.cursor
    first = harness.evaluate(saved)
    # The daemon died before it stored the tick: the same evaluation again asks for
    # the same runs under the same run keys (the daemon skips runs whose key exists).
    again = harness.evaluate(saved)
    assert [r.run_key for r in again.run_requests] == [r.run_key for r in first.run_requests]
    assert again.cursor == first.cursor

    ticks = harness.drain()
    assert sum(t.total_files for t in ticks) == 86 + 3

    # A new daemon process: the definitions are built again and resume from the saved cursor.
    restarted = Harness(instance, lake_uri, LandingSettings(max_files_per_tick=40), clock)
    restarted.cursor = harness.cursor
    restarted.run_keys = harness.run_keys
    tick = restarted.tick()
    assert tick.result.run_requests == [] and tick.result.asset_events == []

    write_files(store, [cdc_key("core_order", day + timedelta(hours=11))], s3_client)
    tick = restarted.tick()
    assert tick.files == {("core_order", "2024-04-01"): 1}
    assert Counter(harness.recorded) + Counter(restarted.recorded) == expected_partitions(
        store, ["core_order"]
    )


# --------------------------------------------------------------------------- rewritten files


def test_a_reload_under_the_first_loads_names_is_requested(lake_uri, instance, clock, s3_client):
    store = open_lake(lake_uri)
    harness = Harness(instance, lake_uri, LandingSettings(), clock)
    first_load = [load_key("core_order", n) for n in (1, 2, 3)]
    write_files(
        store, [*first_load, cdc_key("core_order", datetime(2024, 3, 1, 1, tzinfo=UTC))], s3_client
    )
    first = harness.tick()
    assert first.total_files == 4
    first_run_keys = {request.run_key for request in first.result.run_requests}
    clock.now += timedelta(hours=2)  # long after the load landed
    assert harness.tick().total_files == 0

    # "Reload table": DMS writes LOAD files again under the first load's names (new ETags).
    write_files(store, first_load[:2], s3_client, data=b"reloaded,row\n")
    reload = harness.tick()
    [event] = reload.result.asset_events
    assert event.metadata["files"].value == 2 and event.metadata["rewritten"].value == 2
    assert event.metadata["first_file"].value == first_load[0]
    assert event.metadata["last_file"].value == first_load[1]
    [request] = reload.result.run_requests
    assert request.run_key not in first_run_keys
    assert harness.tick().result.run_requests == []  # requested once

    # The reload restarted: the same names once more, the same day, new versions: a new run
    # key (the harness refuses a run key requested before, as the daemon would skip the run).
    write_files(store, first_load[:2], s3_client, data=b"reloaded once more\n")
    [again] = harness.tick().result.run_requests
    assert again.tags == request.tags and again.run_key != request.run_key

    # A reload that empties the folder first: the keys that are gone drop out of the cursor,
    # and the files written next are new ones.
    for key in first_load:
        store.delete(key)
    assert harness.tick().total_files == 0
    assert LandingCursor.decode(harness.cursor).table("core_order").load.versions == {}
    write_files(store, first_load[:1], s3_client, data=b"reloaded again\n")
    [event] = harness.tick().result.asset_events
    assert event.metadata["files"].value == 1 and event.metadata["rewritten"].value == 0
    assert harness.tick().result.run_requests == []


def test_a_cdc_file_rewritten_inside_the_lookback_is_requested_again(
    lake_uri, instance, clock, s3_client
):
    store = open_lake(lake_uri)
    harness = Harness(instance, lake_uri, LandingSettings(), clock)
    at = datetime(2024, 3, 1, 1, tzinfo=UTC)
    keys = [cdc_key("core_order", at), cdc_key("core_order", at + timedelta(minutes=1))]
    write_files(store, keys, s3_client)
    first = harness.tick()
    assert first.total_files == 2
    assert harness.tick().total_files == 0

    write_files(store, keys[:1], s3_client, data=b"I,2024-03-01 01:00:00,fixed\n")  # new ETag
    rewrite = harness.tick()
    [event] = rewrite.result.asset_events
    assert event.metadata["files"].value == 1 and event.metadata["rewritten"].value == 1
    [request] = rewrite.result.run_requests
    assert request.run_key not in {r.run_key for r in first.result.run_requests}
    assert harness.tick().result.run_requests == []  # requested once


def test_a_cursor_without_cdc_versions_takes_nothing_again():
    """Cursors saved before CDC versions were kept list their keys as taken."""
    text = LandingCursor().encode().replace('"t":{}', '"t":{"orders":{"cdc":{"s":["a.csv"]}}}')
    state = LandingCursor.decode(text).table("orders").cdc
    assert state.seen == {"a.csv": ""} and state.known("a.csv", "AAAAAAAA")


def test_an_unreachable_catalog_does_not_stop_the_landing(tmp_path, instance, clock):
    """The quarantine lookups need the catalog; new files do not."""
    lake_uri = str(tmp_path / "lake")
    store = open_lake(lake_uri)
    unreachable = "postgresql+psycopg2://nobody:nothing@127.0.0.1:1/catalog"
    harness = Harness(instance, lake_uri, LandingSettings(), clock, catalog_uri=unreachable)
    write_files(store, [cdc_key("core_order", datetime(2024, 3, 1, 1, tzinfo=UTC))])
    tick = harness.tick()
    assert tick.total_files == 1 and len(tick.result.run_requests) == 1


def quarantine_files(catalog, store: LakeStore, keys: Iterable[str]) -> None:
    """Record ``keys`` in silver.core_order__quarantine as a silver run does (size, ETag)."""
    contract = CONTRACTS.table("core_order")
    bad = []
    for key in keys:
        [info] = list(store.list_objects(key))
        file = BronzeFile(info=info, key=parse_object_key(key, DMS))
        bad.append(quarantined(file, f"{key}, line 1: expected 13 fields", datetime.now(UTC)))
    update_quarantine(catalog, contract, read_quarantine(catalog, contract), bad, [])


def landed_keys(tick: Tick) -> list[str]:
    """The files of a tick whose bronze partitions hold one file each."""
    events = tick.result.asset_events
    assert all(event.metadata["files"].value == 1 for event in events)
    return sorted(event.metadata["first_file"].value for event in events)


def test_a_fixed_quarantined_file_far_outside_the_lookback_is_requested_once(
    lake_uri, instance, clock, s3_client, tmp_path
):
    store = open_lake(lake_uri)
    catalog_uri = sqlite_uri_for(tmp_path / "catalog.db")
    settings = LandingSettings(lookback=timedelta(hours=1))
    harness = Harness(instance, lake_uri, settings, clock, catalog_uri=catalog_uri)
    fixed = cdc_key("core_order", datetime(2024, 1, 2, 9, tzinfo=UTC))
    still_bad = cdc_key("core_order", datetime(2024, 1, 2, 10, tzinfo=UTC))
    bad_load = load_key("core_order", 1)
    recent = [cdc_key("core_order", datetime(2024, 3, 1, hour, tzinfo=UTC)) for hour in (1, 2)]
    write_files(store, [fixed, still_bad, bad_load, *recent], s3_client, data=b"broken\n")
    assert harness.tick().total_files == 5

    # A silver run quarantined three of them; unchanged, they are not requested again.
    catalog = IcebergCatalogResource(uri=catalog_uri, lake_uri=lake_uri).catalog()
    quarantine_files(catalog, store, [fixed, still_bad, bad_load])
    assert harness.tick().result.run_requests == []

    # Fixed in bronze under their keys: the CDC file two months before the newest one (far
    # outside the lookback) and the LOAD file, each requested once.
    write_files(store, [fixed, bad_load], s3_client, data=b"I,2024-01-02 09:00:00,fixed\n")
    tick = harness.tick()
    assert landed_keys(tick) == sorted([fixed, bad_load])
    assert all(event.metadata["rewritten"].value == 1 for event in tick.result.asset_events)
    assert ("core_order", "2024-01-02") in tick.files
    assert any(first <= "2024-01-02" <= last for first, last in tick.ranges["core_order"])
    # Its run has not applied them yet (the quarantine holds the bad versions): nothing more.
    assert harness.tick().result.run_requests == []
    assert set(LandingCursor.decode(harness.cursor).table("core_order").quarantine) == {fixed}

    # The run applied them and cleared their rows: still nothing, and the cursor forgets them.
    contract = CONTRACTS.table("core_order")
    update_quarantine(catalog, contract, read_quarantine(catalog, contract), [], [fixed, bad_load])
    assert harness.tick().result.run_requests == []
    assert LandingCursor.decode(harness.cursor).table("core_order").quarantine == {}


# Saved by the previous release (cursor format version 1) after it took V1_LANDING: the full
# load of core_tenant over (its load stream listed after LOAD00000002.csv), the one of
# core_order still landing (its keys kept in ``s``, listed from the stream start).
V1_CURSOR = (
    '{"n":3,"t":{"core_customer":{"cdc":{},"load":{}},"core_event":{"cdc":{},"load":{}},'
    '"core_invoice":{"cdc":{},"load":{}},"core_order":{"cdc":{"a":"2024/03/01/20240301-020000",'
    '"h":"20240301030000","p":"2024/03/01/20240301-030000000.csv","s":["2024/03/01/20240301-'
    '020000000.csv","2024/03/01/20240301-030000000.csv"]},"load":{"p":"LOAD00000002.csv","s":'
    '["LOAD00000001.csv","LOAD00000002.csv"],"u":1709395200.0}},"core_orderitem":{"cdc":{},'
    '"load":{}},"core_product":{"cdc":{},"load":{}},"core_subscription":{"cdc":{},"load":{}},'
    '"core_tenant":{"cdc":{"a":"2024/03/01/20240301-010000","h":"20240301020000","p":"2024/03/'
    '01/20240301-020000000.csv","s":["2024/03/01/20240301-010000000.csv","2024/03/01/20240301-'
    '020000000.csv"]},"load":{"a":"LOAD00000002.csv","p":"LOAD00000002.csv"}}},"v":1}'
)
V1_DAY = datetime(2024, 3, 1, tzinfo=UTC)
V1_LANDING = [
    *(cdc_key("core_tenant", V1_DAY + timedelta(hours=hour)) for hour in (1, 2)),
    *(load_key("core_tenant", n) for n in (1, 2)),
    *(cdc_key("core_order", V1_DAY + timedelta(hours=hour)) for hour in (1, 2, 3)),
    *(load_key("core_order", n) for n in (1, 2)),
]


def test_a_version_1_cursor_is_upgraded_without_requesting_again(
    lake_uri, instance, clock, s3_client
):
    store = open_lake(lake_uri)
    new = [cdc_key("core_tenant", V1_DAY + timedelta(hours=3)), load_key("core_order", 3)]
    write_files(store, V1_LANDING + new, s3_client)
    harness = Harness(instance, lake_uri, LandingSettings(), clock)
    harness.cursor = V1_CURSOR

    # Only what the old cursor had not taken is requested ...
    tick = harness.tick()
    assert landed_keys(tick) == sorted(new)
    # ... and the cursor saved is version 2, knowing every full-load file by its version.
    assert json.loads(harness.cursor)["v"] == 2
    cursor = LandingCursor.decode(harness.cursor)
    assert sorted(cursor.table("core_order").load.versions) == [
        f"LOAD0000000{n}.csv" for n in (1, 2, 3)
    ]
    assert sorted(cursor.table("core_tenant").load.versions) == [
        "LOAD00000001.csv",
        "LOAD00000002.csv",
    ]
    assert cursor.table("core_order").load.v1_seen == set()
    assert harness.tick().result.run_requests == []

    # From now on a reload under a known name is seen.
    write_files(store, [load_key("core_tenant", 1)], s3_client, data=b"reloaded\n")
    [event] = harness.tick().result.asset_events
    assert event.metadata["rewritten"].value == 1
    assert event.metadata["first_file"].value == load_key("core_tenant", 1)


# --------------------------------------------------------------------------- layouts and units


@pytest.mark.parametrize(
    "partitioning",
    [
        DatePartitioning(enabled=True, sequence="YYYYMMDDHH", delimiter="SLASH"),
        DatePartitioning(enabled=True, sequence="YYYYMMDD", delimiter="NONE"),
        DatePartitioning(enabled=True, sequence="YYYYMM", delimiter="DASH"),
        DatePartitioning(enabled=False, sequence="YYYYMMDD", delimiter="SLASH"),
    ],
    ids=lambda p: f"{p.sequence}-{p.delimiter}" if p.enabled else "no-date-folders",
)
def test_late_files_in_every_time_ordered_layout(tmp_path, partitioning):
    dms = dataclasses.replace(DMS, date_partition=partitioning)
    contracts = dataclasses.replace(CONTRACTS, dms=dms)
    store = open_lake(str(tmp_path / "lake"))
    t0 = datetime(2024, 5, 31, 22, 0, tzinfo=UTC)
    settings = LandingSettings(lookback=timedelta(hours=2))

    def scan(cursor):
        return scan_landing(
            store,
            contracts,
            cursor,
            settings,
            first_day=date(2024, 1, 1),
            last_day=date(2024, 12, 31),
        )

    write_files(
        store, [cdc_key("core_order", t0 + timedelta(minutes=m), dms) for m in (0, 30, 90, 130)]
    )
    first = scan(LandingCursor())
    assert len(first.files) == 4
    late = cdc_key(
        "core_order", t0 + timedelta(minutes=45), dms
    )  # 22:45 May 31, after 00:10 June 1
    write_files(store, [late, load_key("core_order", 1)])
    second = scan(first.cursor)
    assert sorted(f.key for f in second.files) == sorted([late, load_key("core_order", 1)])
    assert scan(second.cursor).files == []


def test_an_upper_case_source_table_is_listed_under_its_dms_folder(tmp_path):
    """Contracts lower-case the lake's names; DMS writes the source's spelling."""
    body = {"schema": "public", "primary_key": ["ID"], "columns": [{"name": "ID", "type": "int"}]}
    contracts = parse_contracts(
        {"dms": {"date_partition": {"enabled": True}}, "tables": {"ORDERS": body}}, "test"
    )
    store = open_lake(str(tmp_path / "lake"))
    at = datetime(2024, 5, 31, 22, 0, tzinfo=UTC)
    key = f"bronze/dms/public/ORDERS/2024/05/31/{at:%Y%m%d-%H%M%S}000.csv"
    write_files(store, [key])
    scan = scan_landing(
        store,
        contracts,
        LandingCursor(),
        LandingSettings(),
        first_day=date(2024, 1, 1),
        last_day=date(2024, 12, 31),
    )
    assert [(f.table, f.key) for f in scan.files] == [("orders", key)]


def test_layouts_whose_folders_do_not_sort_by_time_are_refused():
    dms = dataclasses.replace(DMS, date_partition=DatePartitioning(True, "DDMMYYYY", "SLASH"))
    with pytest.raises(ValueError, match="DDMMYYYY"):
        check_layout(dms)
    # The definitions still load (backfills work); every tick fails saying why.
    sensor = build_dms_landing_sensor(dataclasses.replace(CONTRACTS, dms=dms), DAILY)
    context = dg.build_sensor_context(
        resources={
            "lake": LakeResource(uri="/nonexistent"),
            "iceberg": IcebergCatalogResource(uri=IN_MEMORY_CATALOG, lake_uri="/nonexistent"),
        }
    )
    with pytest.raises(Exception, match="sort in time order"):
        sensor(context)


def test_cursor_round_trip_and_compression():
    cursor = LandingCursor(next_table=3)
    state = cursor.table("core_order")
    state.cdc.after, state.cdc.pos, state.cdc.hwm = "2024/01/01/x", "2024/01/02/y", "20240102000000"
    state.cdc.seen = {f"2024/01/02/20240102-{i:09d}.csv": f"{i:08d}" for i in range(2_000)}
    state.load.versions = {f"LOAD{n:08X}.csv": f"{n:08d}" for n in range(1, 301)}
    state.quarantine = {"bronze/dms/public/core_order/2024/01/01/x.csv": "AAAAAAAA"}
    text = cursor.encode()
    assert text.startswith("z1:") and len(text) < 30_000
    assert LandingCursor.decode(text) == cursor
    small = LandingCursor()
    small.table("core_tenant").load.versions = {"LOAD00000001.csv": "AAAAAAAA"}
    document = json.loads(small.encode())
    assert document["v"] == 2
    assert document["t"]["core_tenant"] == {"load": {"k": {"LOAD00000001.csv": "AAAAAAAA"}}}
    assert LandingCursor.decode(None) == LandingCursor()
    with pytest.raises(ValueError, match="cursor version 3"):
        LandingCursor.decode('{"v":3}')


def test_day_ranges():
    d = date(2024, 1, 1)
    days = [d, d + timedelta(1), d + timedelta(5), d + timedelta(30)]
    assert day_ranges(days, 7) == [(d, d + timedelta(5)), (d + timedelta(30), d + timedelta(30))]
    assert day_ranges(days, 0) == [
        (d, d + timedelta(1)),
        (d + timedelta(5), d + timedelta(5)),
        (d + timedelta(30), d + timedelta(30)),
    ]


def test_settings_from_environment():
    settings = LandingSettings.from_env(
        {
            "LAKEHOUSE_SENSOR_LOOKBACK_MINUTES": "90",
            "LAKEHOUSE_SENSOR_MAX_FILES_PER_TICK": "123",
            "LAKEHOUSE_SENSOR_INTERVAL_SECONDS": "5",
        }
    )
    assert settings == LandingSettings(
        lookback=timedelta(minutes=90), max_files_per_tick=123, interval_seconds=5
    )
    assert LandingSettings.from_env({}) == LandingSettings()
    with pytest.raises(ValueError, match="LAKEHOUSE_SENSOR_MAX_FILES_PER_TICK"):
        LandingSettings.from_env({"LAKEHOUSE_SENSOR_MAX_FILES_PER_TICK": "many"})
