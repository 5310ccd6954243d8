"""Silver at DMS cadence: does a day of one CDC file a minute keep each run as cheap as the first?

A soak of the real pipeline over a simulated day, compressed in time. Each source table
(--tables, of --rows rows) is full-loaded (LOAD files on the day before, completed by a CDC
file), then the day begins: every simulated minute (--files-per-day files a day) DMS writes one
CDC file per table (``dms.writer``; commit times inside that minute) holding about
--rows-per-file changes: updates of existing keys (mostly among the newest 20,000, 1%
anywhere), inserts of new keys and some deletes; every --redeliver-every-th file, the file
written 15 minutes before is delivered again under a later name, as after a task restart (its
rows reach silver in a later run than the first copy's unless one tick takes both). Every
--tick-minutes simulated minutes the real landing sensor ticks (``build_dms_landing_sensor``,
evaluated as the daemon evaluates it: ``sensors.in_process.evaluate_sensor_tick`` on a
``DagsterInstance``, its bronze materializations recorded, its cursor kept, each run key
launched once) and every run it requests is executed as the daemon would launch it:
``dg.materialize`` (in process) of the real silver asset (``build_silver_assets``) with the
request's tags and run config. A tick every simulated minute is the real cadence
(``--tick-minutes 1``); a longer tick compresses the day: each run then takes that many files
of each table.

The same day runs once per mode (--modes), each on a fresh lake, catalog and instance, from
the same seeded source:

- ``incremental``: the runs as the sensor requests them (the ledger: a run merges only the
  files it has not applied), no maintenance;
- ``maintained``: the same, and the real ``silver_maintenance`` job
  (``silver/maintenance_job.py``, ``execute_in_process``) every --maintenance-hours
  simulated hours and at the end of the day;
- ``reapply`` (not run by default: its ticks grow with the day): every run with
  ``reapply: true``, which re-reads and re-merges every file of the day so far, the
  behaviour before the ledger.

Maintenance config: snapshot retention 0 days with the default keep-last-10, since the
Iceberg snapshots carry wall-clock times and a compressed day is minutes long (a 7-day
retention would expire nothing); orphan files need the job's minimum safety age of 1 h of
wall clock, which a run of a few minutes never reaches, so the files that expiry and
compaction leave stay on disk: "files on disk" counts them.

Printed, per mode: progress lines; per simulated hour, the ticks' mean merge time (the
``dg.materialize`` of the tick's runs), silver step time, sensor time, files new and files
already applied (listed and skipped) per run, changes read and data files rewritten per
tick, and what ``silver.<table>`` holds at the hour's end (data files, manifests,
snapshots); the first and last hour compared (mean merge wall and CPU; target <= 1.3x for
the incremental modes) and the day's totals with the cost per CDC file; at the end,
``silver.<table>`` and its ledger ``silver.<table>__applied``: data files, files on disk,
snapshots, manifests, metadata.json size; last, whether every table's live rows equal the
source's (the oracle the simulator kept: every column of every live row). The script exits
1 if any mode does not equal the oracle.

    python benchmarks/soak.py             # 1M rows, 24 h, a tick every 30 min: 48 ticks a mode
    python benchmarks/soak.py --quick     # 100,000 rows, the same day
    python benchmarks/soak.py --tick-minutes 1 --hours 2    # the real cadence, two hours
    python benchmarks/soak.py --modes incremental,reapply --hours 6   # against the old way

The Dagster instance is in memory (``DagsterInstance.ephemeral``), so the runs' bookkeeping
stays small next to the merges measured.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.contracts import Contracts, TableContract
from lakehouse_assets.contracts.model import parse_contracts
from lakehouse_assets.definitions import lake_resources
from lakehouse_assets.dms import FileKind, parse_object_key
from lakehouse_assets.dms.writer import cdc_key, encode_dms_file, full_load_key
from lakehouse_assets.lake import LakeStore, open_lake
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for, warehouse_for_lake
from lakehouse_assets.names import silver_op_name
from lakehouse_assets.sensors.in_process import evaluate_sensor_tick
from lakehouse_assets.sensors.landing import LandingSettings, build_dms_landing_sensor
from lakehouse_assets.silver.assets import build_silver_assets
from lakehouse_assets.silver.ledger import ledger_identifier
from lakehouse_assets.silver.maintenance_job import build_maintenance_job
from lakehouse_assets.silver.tables import table_identifier

SIMULATED_DAY = date(2024, 3, 1)
DAY_START = datetime(2024, 3, 1, tzinfo=UTC)
FULL_LOAD_AT = datetime(2024, 2, 29, 23, 0, tzinfo=UTC)  # the load's first transfer
LOAD_FILE_ROWS = 500_000  # rows per LOAD file
HISTORY_START = np.datetime64("2023-01-01T00:00:00", "us")
HISTORY_STEP = np.timedelta64(30, "s")  # loaded row i was created at HISTORY_START + 30 s * i
# A file's changes: updates of existing keys, inserts, the rest deletes.
UPDATE_SHARE, INSERT_SHARE = 0.70, 0.25
RECENT_KEYS = 20_000  # updates and deletes mostly hit the newest keys (about a week of orders)
OLD_UPDATE_SHARE = 0.01  # the rest of the updates: any key (a late refund)
STATUSES = np.array(["pending", "paid", "shipped", "delivered", "cancelled"])
MODES = ("incremental", "maintained", "reapply")
DEFAULT_MODES = ("incremental", "maintained")
# A task restart sends again what it wrote this many files back (15 min at one file a minute).
REDELIVERY_LAG = 15
FLUSH_MARGIN = timedelta(milliseconds=500)  # a file is written this long before its period ends
# The maintenance job's run config (see the module docstring for why these two settings).
MAINTENANCE_CONFIG = {"snapshot_retention_days": 0, "orphan_min_age_hours": 1}
ORACLE_COLUMNS = ("id", "tenant_id", "status", "total", "created_at", "updated_at")


def soak_contracts(tables: int) -> Contracts:
    """``tables`` order tables, partitioned by the month they were created in."""
    columns = [
        {"name": "id", "type": "bigint", "nullable": False},
        {"name": "tenant_id", "type": "bigint"},
        {"name": "status", "type": "string"},
        {"name": "total", "type": "decimal(12,2)"},
        {"name": "created_at", "type": "timestamp"},
        {"name": "updated_at", "type": "timestamp"},
    ]
    table = {
        "schema": "public",
        "primary_key": ["id"],
        "partition_by": {"column": "created_at", "transform": "month"},
        "columns": columns,
    }
    names = ["soak_order"] if tables == 1 else [f"soak_order_{n}" for n in range(1, tables + 1)]
    document = {
        "dms": {"bucket_folder": "bronze/dms", "date_partition": {"enabled": True}},
        "tables": dict.fromkeys(names, table),
    }
    return parse_contracts(document, "benchmarks/soak.py")


# --------------------------------------------------------------------------- the source


@dataclass(frozen=True)
class Shape:
    rows: int
    files_per_day: int
    rows_per_file: int
    tables: int
    hours: float
    tick_minutes: float
    redeliver_every: int
    maintenance_hours: float
    seed: int

    @property
    def period(self) -> timedelta:
        """Between two CDC files of a table."""
        return timedelta(days=1) / self.files_per_day

    @property
    def files_per_tick(self) -> int:
        return max(1, round(timedelta(minutes=self.tick_minutes) / self.period))

    @property
    def tick(self) -> timedelta:
        return self.period * self.files_per_tick

    @property
    def ticks(self) -> int:
        return max(1, round(timedelta(hours=self.hours) / self.tick))

    @property
    def ticks_per_hour(self) -> int:
        return max(1, round(timedelta(hours=1) / self.tick))

    @property
    def maintenance_ticks(self) -> int:
        return max(1, round(timedelta(hours=self.maintenance_hours) / self.tick))


@dataclass
class ChangeFile:
    """One DMS file's rows: the contract's columns plus ``_op`` and ``_commit_ts``."""

    key: str
    written_at: datetime
    rows: pa.Table


class SourceTable:
    """What the simulated database holds of one table: every key ever created, live or
    deleted, with its current values. The changes it hands out are applied here in commit
    order, so at any moment it is the oracle silver must equal."""

    def __init__(
        self,
        contract: TableContract,
        rows: int,
        rows_per_file: int,
        redeliver_every: int,
        rng: np.random.Generator,
    ):
        self.contract = contract
        self.rows_per_file = rows_per_file
        self.redeliver_every = redeliver_every
        self.rng = rng
        self.created = HISTORY_START + np.arange(rows) * HISTORY_STEP
        self.updated = self.created.copy()
        self.status = rng.integers(0, len(STATUSES), rows).astype(np.int8)
        self.cents = rng.integers(100, 10_000_000, rows)
        self.live = np.ones(rows, dtype=bool)
        self.recent: deque[ChangeFile] = deque(maxlen=REDELIVERY_LAG)  # the newest files
        self.files = 0
        self.redelivered = 0

    @property
    def next_id(self) -> int:
        return len(self.live)

    def full_load_files(self, dms) -> Iterator[ChangeFile]:
        """The LOAD files: every row as it stands, one file every 10 s from FULL_LOAD_AT."""
        for number, start in enumerate(range(0, self.next_id, LOAD_FILE_ROWS), start=1):
            ids = np.arange(start, min(start + LOAD_FILE_ROWS, self.next_id))
            transfer = FULL_LOAD_AT + timedelta(seconds=10 * (number - 1))
            stamps = np.full(len(ids), np.datetime64(transfer.replace(tzinfo=None), "us"))
            rows = self._rows(ids, stamps, np.full(len(ids), "I"))
            key = full_load_key(dms, self.contract.schema, self.contract.name, number)
            yield ChangeFile(key, transfer, rows)

    def change_files(self, dms, period_start: datetime, period: timedelta) -> list[ChangeFile]:
        """The period's CDC file and, every ``redeliver_every`` files, the file written
        REDELIVERY_LAG files before again under a later name (what DMS sends again after a
        task restart)."""
        self.files += 1
        written_at = period_start + period - FLUSH_MARGIN
        rows = self._changes(period_start, period - 2 * FLUSH_MARGIN)
        name = self.contract.name
        files = [ChangeFile(cdc_key(dms, self.contract.schema, name, written_at), written_at, rows)]
        if (
            self.redeliver_every
            and len(self.recent) == REDELIVERY_LAG
            and self.files % self.redeliver_every == 0
        ):
            again = written_at + timedelta(milliseconds=1)
            key = cdc_key(dms, self.contract.schema, name, again)
            files.append(ChangeFile(key, again, self.recent[0].rows))
            self.redelivered += 1
        self.recent.append(files[0])
        return files

    def _changes(self, start: datetime, width: timedelta) -> pa.Table:
        """A file's changes, applied to the source as they are handed out: each key at most
        once per file, so the file's order among its own rows does not matter."""
        count = self.rng.multinomial(
            self.rng.poisson(self.rows_per_file),
            [UPDATE_SHARE, INSERT_SHARE, 1 - UPDATE_SHARE - INSERT_SHARE],
        )
        updates, inserts, deletes = (int(n) for n in count)
        touched = self._existing_keys(updates + deletes)
        updated, deleted = touched[:updates], touched[updates:]
        inserted = np.arange(self.next_id, self.next_id + inserts)
        ids = np.concatenate([updated, inserted, deleted])
        ops = np.array(["U"] * len(updated) + ["I"] * inserts + ["D"] * len(deleted))
        start_us = np.datetime64(start.replace(tzinfo=None), "us")
        offsets = np.sort(self.rng.integers(0, width // timedelta(microseconds=1), len(ids)))
        order = self.rng.permutation(len(ids))  # changes of every kind interleave in time
        ids, ops = ids[order], ops[order]
        inserting, deleting = ops == "I", ops == "D"
        ids[inserting] = inserted  # the sequence hands out ids in commit order
        stamps = start_us + offsets.astype("timedelta64[us]")
        self.created = np.concatenate([self.created, stamps[inserting]])
        self.updated = np.concatenate([self.updated, stamps[inserting]])
        self.status = np.concatenate([self.status, np.zeros(inserts, np.int8)])
        self.cents = np.concatenate([self.cents, np.zeros(inserts, np.int64)])
        self.live = np.concatenate([self.live, np.ones(inserts, dtype=bool)])
        writing = ~deleting  # inserts and updates carry new values; a delete the row it removes
        written = ids[writing]
        self.status[written] = self.rng.integers(0, len(STATUSES), len(written))
        self.cents[written] = self.rng.integers(100, 10_000_000, len(written))
        self.updated[written] = stamps[writing]
        rows = self._rows(ids, stamps, ops)
        self.live[ids[deleting]] = False
        return rows

    def _existing_keys(self, count: int) -> np.ndarray:
        """Distinct live keys: all but OLD_UPDATE_SHARE among the newest RECENT_KEYS."""
        old = self.rng.binomial(count, OLD_UPDATE_SHARE)
        recent_from = max(0, self.next_id - RECENT_KEYS)
        recent = np.flatnonzero(self.live[recent_from:]) + recent_from
        chosen = self.rng.choice(recent, min(count - old, len(recent)), replace=False)
        anywhere = self.rng.integers(0, max(recent_from, 1), old)
        anywhere = np.unique(anywhere[self.live[anywhere]])
        keys = np.concatenate([chosen, np.setdiff1d(anywhere, chosen)])
        return self.rng.permutation(keys)

    def _rows(self, ids: np.ndarray, stamps: np.ndarray, ops: np.ndarray) -> pa.Table:
        """Rows of ``ids`` as the source holds them now, in the contract's columns. A delete
        carries the whole row, as the demo's ``core_order`` (REPLICA IDENTITY FULL): its
        tombstone stays in its month."""
        return (
            self._table(ids)
            .append_column("_op", pa.array(ops, pa.string()))
            .append_column("_commit_ts", pa.array(stamps, pa.timestamp("us")))
        )

    def _table(self, ids: np.ndarray) -> pa.Table:
        cents = self.cents[ids]
        total = pc.binary_join_element_wise(
            pa.array(cents // 100).cast(pa.string()),
            pc.utf8_lpad(pa.array(cents % 100).cast(pa.string()), 2, "0"),
            ".",
        )
        return pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "tenant_id": pa.array(ids % 97, pa.int64()),
                "status": pa.array(STATUSES[self.status[ids]]),
                "total": total,
                "created_at": pa.array(self.created[ids], pa.timestamp("us")),
                "updated_at": pa.array(self.updated[ids], pa.timestamp("us")),
            }
        )

    def oracle(self) -> pa.Table:
        """Every live row as the source holds it now, by id."""
        return self._table(np.flatnonzero(self.live))


def write_file(store: LakeStore, contracts: Contracts, table: str, file: ChangeFile) -> None:
    contract = contracts.table(table)
    cdc = parse_object_key(file.key, contracts.dms).kind is FileKind.CDC
    data = encode_dms_file(
        file.rows.select(contract.column_names),
        file.key,
        contract,
        contracts.dms,
        ops=file.rows["_op"] if cdc else None,
        commit_ts=file.rows["_commit_ts"],
    )
    store.put(file.key, data, last_modified=file.written_at)


# --------------------------------------------------------------------------- the pipeline


@dataclass
class RunFigures:
    """What one silver run took and did, from its step event and its materialization."""

    step_s: float  # the silver step, as Dagster timed it
    changes: int  # rows read from bronze
    files_new: int  # bronze files never applied, merged now
    files_already_applied: int  # bronze files of the range the ledger holds: skipped
    files_rewritten: int  # data files of silver.<table> replaced
    redelivered: int  # changes found equal to the stored row's


@dataclass
class Tick:
    at: datetime
    sensor_s: float  # the sensor's evaluation and recording its bronze materializations
    merge_s: float  # the dg.materialize of the tick's runs
    merge_cpu_s: float  # this process's CPU time in them (less sensitive to a busy machine)
    runs: list[RunFigures]
    maintenance_s: float = 0.0  # the silver_maintenance job after this tick, if it ran

    def total(self, name: str) -> float:
        return sum(getattr(run, name) for run in self.runs)


@dataclass
class Pipeline:
    """One mode's lake, catalog, instance, sensor and silver assets, driven like the daemon."""

    root: Path
    contracts: Contracts
    reapply: bool
    now: datetime = FULL_LOAD_AT
    cursor: str | None = None
    run_keys: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.lake = str(self.root / "lake")
        self.store = open_lake(self.lake)
        self.catalog_uri = sqlite_uri_for(self.root / "catalog.db")
        # In memory: the runs' Dagster bookkeeping stays small next to the merge measured.
        self.instance = dg.DagsterInstance.ephemeral()
        daily = dg.DailyPartitionsDefinition(
            start_date=(SIMULATED_DAY - timedelta(days=1)).isoformat(), end_offset=1
        )
        self.sensor = build_dms_landing_sensor(
            self.contracts, daily, LandingSettings(), clock=lambda: self.now
        )
        self.assets = {a.key: a for a in build_silver_assets(self.contracts, daily)}
        self.maintenance_job = build_maintenance_job(self.contracts)
        self.resources = lake_resources(self.lake, self.catalog_uri)

    @property
    def catalog(self):
        return open_catalog(self.catalog_uri, warehouse_for_lake(self.lake))

    def tick(self, now: datetime) -> Tick:
        """A sensor tick at ``now`` and the runs it requests, each as the daemon runs it."""
        self.now = now
        started = time.perf_counter()
        result = evaluate_sensor_tick(self.sensor, self.instance, self.cursor, self.resources)
        self.cursor = result.cursor
        requests = [r for r in result.run_requests if r.run_key not in self.run_keys]
        self.run_keys.update(r.run_key for r in requests)
        sensor_s = time.perf_counter() - started
        started, cpu = time.perf_counter(), time.process_time()
        runs = [self._run(request) for request in requests]
        return Tick(now, sensor_s, time.perf_counter() - started, time.process_time() - cpu, runs)

    def _run(self, request: dg.RunRequest) -> RunFigures:
        """Run ``request`` in process, as the daemon would launch it."""
        [key] = request.asset_selection
        config = {"reapply": True} if self.reapply else {}
        result = dg.materialize(
            [self.assets[key]],
            instance=self.instance,
            resources=self.resources,
            tags=request.tags,
            run_config={
                **(request.run_config or {}),
                "ops": {silver_op_name(key.path[-1]): {"config": config}},
                "loggers": {"console": {"config": {"log_level": "ERROR"}}},
            },
        )
        if not result.success:
            raise RuntimeError(f"run {request.run_key} failed")
        [step] = result.get_step_success_events()
        metadata = result.get_asset_materialization_events()[0].materialization.metadata
        return RunFigures(
            step_s=step.event_specific_data.duration_ms / 1000,
            **{
                name: metadata[name].value
                for name in (
                    "changes",
                    "files_new",
                    "files_already_applied",
                    "files_rewritten",
                    "redelivered",
                )
            },
        )

    def maintain(self) -> float:
        """The real ``silver_maintenance`` job on every table; returns its seconds."""
        started = time.perf_counter()
        result = self.maintenance_job.execute_in_process(
            run_config=MAINTENANCE_CONFIG,
            instance=self.instance,
            resources=self.resources,
        )
        if not result.success:
            raise RuntimeError("the silver_maintenance run failed")
        return time.perf_counter() - started


# --------------------------------------------------------------------------- table state


@dataclass(frozen=True)
class TableState:
    data_files: int  # in the current snapshot
    files_on_disk: int  # data files under the table's data folder, referenced or not
    snapshots: int
    manifests: int  # of the current snapshot
    metadata_bytes: int


def table_state(catalog, identifier: str) -> TableState:
    table = catalog.load_table(identifier)
    snapshot = table.current_snapshot()
    data_folder = Path(urlparse(table.location()).path) / "data"
    return TableState(
        data_files=sum(1 for _ in table.scan().plan_files()),
        files_on_disk=sum(1 for p in data_folder.rglob("*.parquet")) if data_folder.exists() else 0,
        snapshots=len(table.snapshots()),
        manifests=len(snapshot.manifests(table.io)) if snapshot else 0,
        metadata_bytes=Path(urlparse(table.metadata_location).path).stat().st_size,
    )


def oracle_difference(catalog, contract: TableContract, source: SourceTable) -> str | None:
    """None if the live rows of ``silver.<table>`` equal the source's, every column; else
    what differs."""
    silver = (
        catalog.load_table(table_identifier(contract))
        .scan(row_filter="_is_deleted = false", selected_fields=ORACLE_COLUMNS)
        .to_arrow()
        .select(ORACLE_COLUMNS)
        .sort_by("id")
    )
    expected = source.oracle().cast(silver.schema)
    if silver.equals(expected):
        return None
    if silver.num_rows != expected.num_rows:
        return f"{silver.num_rows:,} live rows, the source has {expected.num_rows:,}"
    for name in ORACLE_COLUMNS:
        differing = pc.sum(pc.invert(pc.equal(silver[name], expected[name]))).as_py()
        if differing:
            return f"{differing:,} rows differ in {name}"
    return "the rows differ (nulls?)"


# --------------------------------------------------------------------------- a soak


@dataclass
class SoakResult:
    mode: str
    full_load_s: float
    ticks: list[Tick]
    hourly: list[TableState]  # silver.<first table> at the end of each simulated hour
    end: dict[str, TableState]  # identifier -> state at the end of the day
    files: int  # CDC files written in the day, redeliveries included, all tables
    redelivered_files: int
    oracle: dict[str, str | None]  # table -> None (equal) or what differs
    live_rows: dict[str, int]


def soak(shape: Shape, mode: str, root: Path, report: Callable[[str], None]) -> SoakResult:
    """One simulated span in ``mode``, from a full load, on a fresh lake under ``root``."""
    contracts = soak_contracts(shape.tables)
    pipeline = Pipeline(root, contracts, reapply=mode == "reapply")
    rng = np.random.default_rng(shape.seed)
    sources = {
        name: SourceTable(contract, shape.rows, shape.rows_per_file, shape.redeliver_every, rng)
        for name, contract in contracts.tables.items()
    }
    full_load_s = full_load(pipeline, sources, contracts, shape)
    report(
        f"{mode}: full load of {shape.tables} x {shape.rows:,} rows merged in {full_load_s:.1f} s"
    )
    first = table_identifier(next(iter(contracts.tables.values())))
    ticks, hourly, files = [], [], 0
    for number in range(1, shape.ticks + 1):
        tick_start = DAY_START + shape.tick * (number - 1)
        for name, source in sources.items():
            for n in range(shape.files_per_tick):
                period_start = tick_start + shape.period * n
                for file in source.change_files(contracts.dms, period_start, shape.period):
                    write_file(pipeline.store, contracts, name, file)
                    files += 1
        tick = pipeline.tick(tick_start + shape.tick)
        maintain = mode == "maintained" and (
            number % shape.maintenance_ticks == 0 or number == shape.ticks
        )
        if maintain:
            tick.maintenance_s = pipeline.maintain()
        ticks.append(tick)
        if number % shape.ticks_per_hour == 0 or number == shape.ticks:
            hourly.append(table_state(pipeline.catalog, first))
            report(progress_line(mode, ticks[-shape.ticks_per_hour :], hourly[-1]))
    identifiers = [
        identifier
        for contract in contracts.tables.values()
        for identifier in (table_identifier(contract), ledger_identifier(contract))
    ]
    catalog = pipeline.catalog
    return SoakResult(
        mode=mode,
        full_load_s=full_load_s,
        ticks=ticks,
        hourly=hourly,
        end={identifier: table_state(catalog, identifier) for identifier in identifiers},
        files=files,
        redelivered_files=sum(source.redelivered for source in sources.values()),
        oracle={
            name: oracle_difference(catalog, contracts.table(name), source)
            for name, source in sources.items()
        },
        live_rows={name: int(source.live.sum()) for name, source in sources.items()},
    )


def full_load(pipeline: Pipeline, sources, contracts: Contracts, shape: Shape) -> float:
    """The LOAD files and the first CDC file after them (which completes the load), merged by
    the runs the sensor requests; returns the runs' seconds."""
    before_the_day = DAY_START - shape.period
    for name, source in sources.items():
        for file in source.full_load_files(contracts.dms):
            write_file(pipeline.store, contracts, name, file)
        for file in source.change_files(contracts.dms, before_the_day, shape.period):
            write_file(pipeline.store, contracts, name, file)
        source.files = 0
    return pipeline.tick(DAY_START).merge_s


def progress_line(mode: str, ticks: list[Tick], state: TableState) -> str:
    """The last hour's means and what the table holds now."""
    merge = statistics.fmean(t.merge_s for t in ticks)
    changes = statistics.fmean(t.total("changes") for t in ticks)
    maintenance = sum(t.maintenance_s for t in ticks)
    line = (
        f"  {mode:<12}{ticks[-1].at:%H:%M}  merge {merge:5.2f} s a tick, {changes:6,.0f} changes"
        f"; {state.data_files:,} data files, {state.manifests:,} manifests, "
        f"{state.snapshots:,} snapshots"
    )
    return line + (f"; maintenance {maintenance:.1f} s" if maintenance else "")


# --------------------------------------------------------------------------- the report


def hours_of(shape: Shape, ticks: list[Tick]) -> list[list[Tick]]:
    """The ticks of each simulated hour, in order (the last may be short)."""
    per_hour = shape.ticks_per_hour
    return [ticks[start : start + per_hour] for start in range(0, len(ticks), per_hour)]


def mean(ticks: list[Tick], value: Callable[[Tick], float]) -> float:
    return statistics.fmean(value(t) for t in ticks)


def per_run(ticks: list[Tick], name: str) -> float:
    """Mean of a run figure over the runs of ``ticks``."""
    runs = [run for t in ticks for run in t.runs]
    return statistics.fmean(getattr(run, name) for run in runs) if runs else 0.0


def print_hourly(shape: Shape, result: SoakResult) -> None:
    print(
        f"\n{result.mode}: per simulated hour, means per tick ({shape.ticks_per_hour} ticks an "
        f"hour; merge = the dg.materialize of the tick's runs, wall and CPU; step = the silver\n"
        f"step inside it) and per run (files new, files already applied: listed, skipped); "
        f"silver.<table> at the hour's end; the maintenance job's seconds in the hour"
    )
    print(
        f"{'hour':>5}{'merge s':>9}{'cpu s':>7}{'step s':>8}{'sensor ms':>10}{'new':>6}"
        f"{'applied':>9}{'changes':>9}{'rewritten':>10}{'redeliv.':>9}{'data files':>11}"
        f"{'manifests':>10}{'snapshots':>10}{'maint s':>9}"
    )
    for hour, (ticks, state) in enumerate(zip(hours_of(shape, result.ticks), result.hourly)):
        print(
            f"{hour:>5}{mean(ticks, lambda t: t.merge_s):>9.2f}"
            f"{mean(ticks, lambda t: t.merge_cpu_s):>7.2f}"
            f"{mean(ticks, lambda t: t.total('step_s')):>8.2f}"
            f"{mean(ticks, lambda t: t.sensor_s) * 1000:>10.0f}"
            f"{per_run(ticks, 'files_new'):>6.1f}{per_run(ticks, 'files_already_applied'):>9.0f}"
            f"{mean(ticks, lambda t: t.total('changes')):>9,.0f}"
            f"{mean(ticks, lambda t: t.total('files_rewritten')):>10.1f}"
            f"{mean(ticks, lambda t: t.total('redelivered')):>9,.0f}"
            f"{state.data_files:>11,}{state.manifests:>10,}{state.snapshots:>10,}"
            f"{sum(t.maintenance_s for t in ticks):>9.1f}"
        )


def print_report(shape: Shape, results: dict[str, SoakResult]) -> bool:
    """The report; returns whether every mode's silver equals the source."""
    print(
        f"\nsoak: {shape.tables} table(s) of {shape.rows:,} rows; {shape.files_per_day} CDC "
        f"files per table and day ({shape.period.total_seconds():g} s apart), "
        f"{shape.rows_per_file} changes per file on average, every {shape.redeliver_every}th "
        f"file delivered again; {shape.hours:g} simulated h, a sensor tick every "
        f"{shape.tick.total_seconds() / 60:g} simulated min ({shape.files_per_tick} file(s) per "
        f"table a tick) = {shape.ticks} ticks; seed {shape.seed}"
    )
    for result in results.values():
        print_hourly(shape, result)

    hours = hours_of(shape, next(iter(results.values())).ticks)
    first, last = hours[0], hours[-1]
    half = len(next(iter(results.values())).ticks) // 2
    print(
        f"\nfirst hour ({len(first)} ticks) against last hour ({len(last)} ticks), mean merge a "
        f"tick; the day's total merge and its second half against its first (a total that grows "
        f"linearly\nwith the files gives 1.0); the maintenance job's total; seconds per CDC file "
        f"(merge + maintenance)"
    )
    print(
        f"{'mode':<12}{'full load s':>12}{'first s':>9}{'last s':>8}{'last/first':>11}"
        f"{'(cpu)':>7}{'total s':>9}{'2nd/1st half':>13}{'maint s':>9}{'ms/file':>9}"
        f"{'files':>7}{'redelivered':>12}"
    )
    totals = {}
    for mode, result in results.items():
        ticks = result.ticks
        first_s = mean(ticks[: len(first)], lambda t: t.merge_s)
        last_s = mean(ticks[-len(last) :], lambda t: t.merge_s)
        cpu_ratio = mean(ticks[-len(last) :], lambda t: t.merge_cpu_s) / mean(
            ticks[: len(first)], lambda t: t.merge_cpu_s
        )
        total = totals[mode] = sum(t.merge_s for t in ticks)
        halves = sum(t.merge_s for t in ticks[half:]) / sum(t.merge_s for t in ticks[:half])
        maintenance = sum(t.maintenance_s for t in ticks)
        verdict = ""
        if mode != "reapply":
            met = "met" if last_s / first_s <= 1.3 else "NOT met"
            verdict = f"  target last/first <= 1.3x: {met}"
        print(
            f"{mode:<12}{result.full_load_s:>12.1f}{first_s:>9.2f}{last_s:>8.2f}"
            f"{last_s / first_s:>10.2f}x{cpu_ratio:>6.2f}x{total:>9.1f}{halves:>12.2f}x"
            f"{maintenance:>9.1f}{(total + maintenance) / result.files * 1000:>9.1f}"
            f"{result.files:>7,}{result.redelivered_files:>12,}{verdict}"
        )
    if "incremental" in totals:
        for mode, total in totals.items():
            if mode != "incremental":
                print(f"total merge {mode} / incremental: {total / totals['incremental']:.2f}x")

    print(
        f"\nat the end of the day (data files: of the current snapshot; on disk: every data "
        f"file under the table's folder, orphans included)\n"
        f"{'mode':<12}{'table':<30}{'data files':>11}{'on disk':>9}{'snapshots':>10}"
        f"{'manifests':>10}{'metadata.json':>15}"
    )
    for mode, result in results.items():
        for identifier, state in result.end.items():
            print(
                f"{mode:<12}{identifier:<30}{state.data_files:>11,}{state.files_on_disk:>9,}"
                f"{state.snapshots:>10,}{state.manifests:>10,}"
                f"{state.metadata_bytes / 1024:>12,.0f} KB"
            )
    if {"incremental", "maintained"} <= set(results):
        on, off = results["maintained"].end, results["incremental"].end
        for identifier in on:
            a, b = on[identifier], off[identifier]
            print(
                f"maintained / incremental, {identifier}: data files "
                f"{a.data_files / b.data_files:.2f}x, snapshots {a.snapshots / b.snapshots:.2f}x, "
                f"manifests {a.manifests / max(b.manifests, 1):.2f}x, metadata.json "
                f"{a.metadata_bytes / b.metadata_bytes:.2f}x"
            )

    print()
    equal = True
    for mode, result in results.items():
        for table, difference in result.oracle.items():
            equal = equal and difference is None
            verdict = "equal to the source" if difference is None else f"DIFFERS: {difference}"
            print(
                f"{mode:<12}silver.{table} live rows ({result.live_rows[table]:,} in the "
                f"source) against the source's, every column: {verdict}"
            )
    return equal


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, help="rows of each full load (default 1,000,000)")
    parser.add_argument("--files-per-day", type=int, default=1440, help="CDC files per table")
    parser.add_argument("--rows-per-file", type=int, default=200, help="changes per file (mean)")
    parser.add_argument("--tables", type=int, default=1)
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    parser.add_argument(
        "--tick-minutes",
        type=float,
        default=30.0,
        help="simulated minutes between sensor ticks (default 30; 1 = the real cadence)",
    )
    parser.add_argument(
        "--redeliver-every", type=int, default=45, help="every Nth file is sent again (0: never)"
    )
    parser.add_argument(
        "--maintenance-hours",
        type=float,
        default=6.0,
        help="maintained mode: the silver_maintenance job every N simulated hours",
    )
    parser.add_argument(
        "--modes", default=",".join(DEFAULT_MODES), help=f"comma-separated, of {', '.join(MODES)}"
    )
    parser.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    modes = args.modes.split(",")
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown mode(s) {', '.join(sorted(unknown))}")
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    logging.disable(logging.INFO)  # the sensor's tick log, a line a tick
    warnings.filterwarnings("ignore", category=dg.BetaWarning)  # backfill_policy is beta
    shape = Shape(
        rows=rows,
        files_per_day=args.files_per_day,
        rows_per_file=args.rows_per_file,
        tables=args.tables,
        hours=args.hours,
        tick_minutes=args.tick_minutes,
        redeliver_every=args.redeliver_every,
        maintenance_hours=args.maintenance_hours,
        seed=args.seed,
    )
    results = {}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        for mode in modes:
            results[mode] = soak(
                shape, mode, Path(scratch) / mode, lambda line: print(line, flush=True)
            )
    equal = print_report(shape, results)
    print(f"\nbenchmark wall time {time.perf_counter() - began:.0f} s")
    sys.exit(0 if equal else 1)


if __name__ == "__main__":
    main()
