"""Silver at DMS cadence: does a day of one CDC file a minute keep each merge as cheap as the first?

A soak of the real pipeline over simulated time. Each source table (--tables, of --rows rows)
is full-loaded (LOAD files on the day before), then the simulated day begins: every simulated
minute (--files-per-day files a day) DMS writes one CDC file per table (``dms.writer``, commit
times inside that minute) holding about --rows-per-file changes: updates of existing keys
(mostly among the newest 20,000, 1% anywhere), inserts of new keys and some deletes; every 45th
file is delivered again under a later name (a task restart). After each minute the real
landing sensor ticks (``build_dms_landing_sensor`` through ``dg.build_sensor_context`` on a
``DagsterInstance``; its bronze materializations recorded as the daemon records them, run keys
launched once), and every run it requests is executed as the daemon would launch it:
``dg.materialize`` (in process) of the real silver asset (``build_silver_assets``) with the
request's partition-range tags and config.

The same span runs twice, each on a fresh lake, catalog and instance, from the same seeded
source:

- ``incremental``: the runs as the sensor requests them (the ledger: a run merges only the
  files it has not applied);
- ``reapply``: the behaviour before the ledger, every run with ``reapply: true`` (run config),
  so each tick re-reads and re-merges every file of the day so far: the baseline.

Printed: progress every simulated half hour; per mode, mean and p90 per tick of the first and
of the last simulated hour (of a shorter span: its first and last half) of the merge time (the
``dg.materialize`` of the tick's runs, wall and this process's CPU, which a busy machine
disturbs less), of the silver step inside it and of the sensor tick, with the changes read and
the data files rewritten per tick; the full load, the totals, the ratio last / first (target
<= 1.3x for incremental) and total reapply / total incremental; then what ``silver.<table>``
and its ledger ``silver.<table>__applied`` hold after the first window and at the end: data
files, snapshots, manifests, metadata.json size. Nothing here compacts files or expires
snapshots (maintenance does): they are reported as they grow. Both modes must end with the
same live rows (a digest of every live row); the benchmark prints both.

The Dagster instance is in memory (``DagsterInstance.ephemeral``), so the runs' bookkeeping
stays small next to the merges measured. The default, one simulated hour of 1M-row tables,
takes about 12-15 minutes on the 2-core reference machine, two thirds of it in the reapply
baseline, whose ticks grow with the day:

    python benchmarks/soak.py                                  # 1 h, both modes
    python benchmarks/soak.py --hours 24 --modes incremental   # the full day, incremental only
    python benchmarks/soak.py --hours 24                       # the full day, with the baseline
    python benchmarks/soak.py --hours 0.5 --rows 100000        # a quick look

The full day is 1,440 ticks per mode; its reapply baseline re-reads up to 1,440 files a tick
and takes hours here.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import statistics
import tempfile
import time
import warnings
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
from lakehouse_assets.sensors.landing import LandingSettings, build_dms_landing_sensor
from lakehouse_assets.silver.assets import build_silver_assets
from lakehouse_assets.silver.ledger import ledger_identifier
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
REDELIVERY_EVERY = 45  # every 45th file is sent again under a later name
STATUSES = np.array(["pending", "paid", "shipped", "delivered", "cancelled"])
MODES = ("incremental", "reapply")
FLUSH_MARGIN = timedelta(milliseconds=500)  # a file is written this long before its period ends


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
    seed: int

    @property
    def period(self) -> timedelta:
        return timedelta(days=1) / self.files_per_day

    @property
    def ticks(self) -> int:
        return round(self.hours * self.files_per_day / 24)

    @property
    def ticks_per_hour(self) -> int:
        return max(1, round(self.files_per_day / 24))

    @property
    def window_ticks(self) -> int:
        """The ticks of the first (and of the last) window: an hour, or half a shorter span."""
        return max(1, min(self.ticks_per_hour, self.ticks // 2))

    @property
    def window_label(self) -> str:
        if self.window_ticks == self.ticks_per_hour:
            return "1 h"
        return f"{self.window_ticks * self.period.total_seconds() / 60:g} min"

    @property
    def progress_ticks(self) -> int:
        """A progress line every half simulated hour."""
        return max(1, self.ticks_per_hour // 2)


@dataclass
class ChangeFile:
    """One DMS file's rows: the contract's columns plus ``_op`` and ``_commit_ts``."""

    key: str
    written_at: datetime
    rows: pa.Table


class SourceTable:
    """What the simulated database holds of one table: its keys, live or deleted, and when
    each row was created (the partition column, which an update never changes)."""

    def __init__(
        self, contract: TableContract, rows: int, rows_per_file: int, rng: np.random.Generator
    ):
        self.contract = contract
        self.rows_per_file = rows_per_file
        self.rng = rng
        self.created = HISTORY_START + np.arange(rows) * HISTORY_STEP
        self.live = np.ones(rows, dtype=bool)
        self.previous: ChangeFile | None = None
        self.files = 0

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

    def change_file(self, dms, period_start: datetime, period: timedelta) -> list[ChangeFile]:
        """The period's CDC file (and, every REDELIVERY_EVERY files, the previous file again
        under a later name)."""
        self.files += 1
        written_at = period_start + period - FLUSH_MARGIN
        rows = self._changes(period_start, period - 2 * FLUSH_MARGIN)
        name = self.contract.name
        files = [ChangeFile(cdc_key(dms, self.contract.schema, name, written_at), written_at, rows)]
        if self.previous is not None and self.files % REDELIVERY_EVERY == 0:
            again = written_at + timedelta(milliseconds=1)
            key = cdc_key(dms, self.contract.schema, name, again)
            files.append(ChangeFile(key, again, self.previous.rows))
        self.previous = files[0]
        return files

    def _changes(self, start: datetime, width: timedelta) -> pa.Table:
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
        inserting = ops == "I"
        ids[inserting] = inserted  # the sequence hands out ids in commit order
        stamps = start_us + offsets.astype("timedelta64[us]")
        self.created = np.concatenate([self.created, stamps[inserting]])
        self.live = np.concatenate([self.live, np.ones(inserts, dtype=bool)])
        self.live[ids[ops == "D"]] = False
        return self._rows(ids, stamps, ops)

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
        """Rows in the contract's columns. A delete carries the whole row, as the demo's
        ``core_order`` (REPLICA IDENTITY FULL): its tombstone stays in its month."""
        cents = self.rng.integers(100, 10_000_000, len(ids))
        total = pc.binary_join_element_wise(
            pa.array(cents // 100).cast(pa.string()),
            pc.utf8_lpad(pa.array(cents % 100).cast(pa.string()), 2, "0"),
            ".",
        )
        return pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "tenant_id": pa.array(ids % 97, pa.int64()),
                "status": pa.array(STATUSES[self.rng.integers(0, len(STATUSES), len(ids))]),
                "total": total,
                "created_at": pa.array(self.created[ids], pa.timestamp("us")),
                "updated_at": pa.array(stamps, pa.timestamp("us")),
                "_op": pa.array(ops, pa.string()),
                "_commit_ts": pa.array(stamps, pa.timestamp("us")),
            }
        )


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
    """What one silver run took and did."""

    step_s: float  # the silver step, as Dagster timed it
    changes: int  # rows read from bronze
    files_rewritten: int  # data files of silver.<table> replaced


@dataclass
class Tick:
    at: datetime
    sensor_s: float  # the sensor's evaluation and recording its bronze materializations
    merge_s: float  # the dg.materialize of the tick's runs
    merge_cpu_s: float  # this process's CPU time in them (less sensitive to a busy machine)
    runs: list[RunFigures]

    @property
    def step_s(self) -> float:
        return sum(run.step_s for run in self.runs)

    @property
    def changes(self) -> int:
        return sum(run.changes for run in self.runs)

    @property
    def files_rewritten(self) -> int:
        return sum(run.files_rewritten for run in self.runs)


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
        self.resources = lake_resources(self.lake, self.catalog_uri)

    @property
    def catalog(self):
        return open_catalog(self.catalog_uri, warehouse_for_lake(self.lake))

    def tick(self, now: datetime) -> Tick:
        """A sensor tick at ``now`` and the runs it requests, each as the daemon runs it."""
        self.now = now
        started = time.perf_counter()
        requests = self._evaluate_sensor()
        sensor_s = time.perf_counter() - started
        started, cpu = time.perf_counter(), time.process_time()
        runs = [self._run(request) for request in requests]
        return Tick(now, sensor_s, time.perf_counter() - started, time.process_time() - cpu, runs)

    def _evaluate_sensor(self) -> list[dg.RunRequest]:
        with dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources=self.resources,  # the definitions' resources, as the daemon gives them
        ) as context:
            result = self.sensor(context)
        for event in result.asset_events:
            self.instance.report_runless_asset_event(event)
        self.cursor = result.cursor
        fresh = [r for r in result.run_requests if r.run_key not in self.run_keys]
        self.run_keys.update(r.run_key for r in fresh)
        return fresh

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
            changes=metadata["changes"].value,
            files_rewritten=metadata["files_rewritten"].value,
        )


# --------------------------------------------------------------------------- table state


@dataclass(frozen=True)
class TableState:
    data_files: int
    snapshots: int
    manifests: int
    metadata_bytes: int


def table_state(catalog, identifier: str) -> TableState:
    table = catalog.load_table(identifier)
    snapshot = table.current_snapshot()
    return TableState(
        data_files=sum(1 for _ in table.scan().plan_files()),
        snapshots=len(table.snapshots()),
        manifests=len(snapshot.manifests(table.io)) if snapshot else 0,
        metadata_bytes=Path(urlparse(table.metadata_location).path).stat().st_size,
    )


def live_digest(catalog, contract: TableContract) -> str:
    """A digest of the live rows (id, status, total): both modes must agree."""
    rows = (
        catalog.load_table(table_identifier(contract))
        .scan(row_filter="_is_deleted = false", selected_fields=("id", "status", "total"))
        .to_arrow()
        .sort_by("id")
    )
    text = pc.binary_join_element_wise(
        *(rows[name].cast(pa.string()) for name in ("id", "status", "total")), "|"
    ).combine_chunks()
    end = int(np.frombuffer(text.buffers()[1], np.int32)[len(text)]) if len(text) else 0
    digest = hashlib.sha256(memoryview(text.buffers()[2] or b"")[:end])
    return f"{rows.num_rows} rows, sha256 {digest.hexdigest()[:12]}"


# --------------------------------------------------------------------------- a soak


@dataclass
class SoakResult:
    mode: str
    full_load_s: float
    ticks: list[Tick]
    states: dict[str, dict[str, TableState]]  # moment -> identifier -> state
    live: dict[str, str]  # table -> digest of its live rows


def soak(shape: Shape, mode: str, root: Path, report: Callable[[str], None]) -> SoakResult:
    """One simulated span in ``mode``, from a full load, on a fresh lake under ``root``."""
    contracts = soak_contracts(shape.tables)
    pipeline = Pipeline(root, contracts, reapply=mode == "reapply")
    rng = np.random.default_rng(shape.seed)
    sources = {
        name: SourceTable(contract, shape.rows, shape.rows_per_file, rng)
        for name, contract in contracts.tables.items()
    }
    full_load_s = full_load(pipeline, sources, contracts, shape)
    report(
        f"{mode}: full load of {shape.tables} x {shape.rows:,} rows merged in {full_load_s:.1f} s"
    )
    identifiers = [
        identifier
        for contract in contracts.tables.values()
        for identifier in (table_identifier(contract), ledger_identifier(contract))
    ]
    ticks, states = [], {}
    window = shape.window_ticks
    for number in range(1, shape.ticks + 1):
        period_start = DAY_START + shape.period * (number - 1)
        for name, source in sources.items():
            for file in source.change_file(contracts.dms, period_start, shape.period):
                write_file(pipeline.store, contracts, name, file)
        ticks.append(pipeline.tick(period_start + shape.period))
        if number == window:
            states[f"after {shape.window_label}"] = {
                i: table_state(pipeline.catalog, i) for i in identifiers
            }
        if number % shape.progress_ticks == 0:
            report(progress_line(mode, ticks[-shape.progress_ticks :], pipeline, identifiers[0]))
    states[f"after {shape.hours:g} h"] = {i: table_state(pipeline.catalog, i) for i in identifiers}
    live = {name: live_digest(pipeline.catalog, c) for name, c in contracts.tables.items()}
    return SoakResult(mode, full_load_s, ticks, states, live)


def full_load(pipeline: Pipeline, sources, contracts: Contracts, shape: Shape) -> float:
    """The LOAD files and the first CDC file after them (which completes the load), merged by
    the runs the sensor requests; returns the runs' seconds."""
    before_the_day = DAY_START - shape.period
    for name, source in sources.items():
        for file in source.full_load_files(contracts.dms):
            write_file(pipeline.store, contracts, name, file)
        for file in source.change_file(contracts.dms, before_the_day, shape.period):
            write_file(pipeline.store, contracts, name, file)
        source.files = 0
    return pipeline.tick(DAY_START).merge_s


def progress_line(mode: str, ticks: list[Tick], pipeline: Pipeline, identifier: str) -> str:
    """The last ticks' means and what the table holds now."""
    state = table_state(pipeline.catalog, identifier)
    merge = statistics.fmean(t.merge_s for t in ticks)
    step = statistics.fmean(t.step_s for t in ticks)
    changes = statistics.fmean(t.changes for t in ticks)
    rewritten = statistics.fmean(t.files_rewritten for t in ticks)
    return (
        f"{mode:<12}{ticks[-1].at:%H:%M}  merge {merge:5.2f} s (step {step:5.2f} s), "
        f"{changes:7,.0f} changes read, {rewritten:5.1f} data files rewritten a tick; "
        f"{identifier}: {state.data_files:,} data files, {state.snapshots:,} snapshots, "
        f"{state.manifests:,} manifests"
    )


# --------------------------------------------------------------------------- the report


def mean_p90(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), float(np.percentile(values, 90))


@dataclass(frozen=True)
class WindowFigures:
    """Mean and p90 of one window's ticks, and what their merges did on average."""

    merge: tuple[float, float]
    cpu: tuple[float, float]
    step: tuple[float, float]
    sensor: tuple[float, float]
    changes: float
    files_rewritten: float

    @classmethod
    def of(cls, ticks: list[Tick]) -> WindowFigures:
        return cls(
            merge=mean_p90([t.merge_s for t in ticks]),
            cpu=mean_p90([t.merge_cpu_s for t in ticks]),
            step=mean_p90([t.step_s for t in ticks]),
            sensor=mean_p90([t.sensor_s for t in ticks]),
            changes=statistics.fmean(t.changes for t in ticks),
            files_rewritten=statistics.fmean(t.files_rewritten for t in ticks),
        )


def print_report(shape: Shape, results: dict[str, SoakResult]) -> None:
    window = shape.window_ticks
    print(
        f"\nsoak: {shape.tables} table(s) of {shape.rows:,} rows; {shape.files_per_day} CDC "
        f"files per table and day ({shape.period.total_seconds():g} s apart), "
        f"{shape.rows_per_file} changes per file on average; {shape.hours:g} simulated h = "
        f"{shape.ticks} ticks; seed {shape.seed}"
    )
    print(
        f"\nper tick, mean and p90 ({shape.window_label} = {window} ticks); merge = the "
        f"dg.materialize of the tick's runs (wall, and this process's CPU), step = the silver\n"
        f"step inside it; changes read and data files rewritten per tick:\n"
        f"{'mode':<12}{'window':<7}{'merge s':>8}{'p90':>6}{'cpu s':>7}{'p90':>6}{'step s':>8}"
        f"{'p90':>6}{'sensor ms':>10}{'p90':>6}{'changes':>9}{'rewritten':>10}"
    )
    figures = {}
    for mode, result in results.items():
        figures[mode] = {
            "first": WindowFigures.of(result.ticks[:window]),
            "last": WindowFigures.of(result.ticks[-window:]),
        }
        for label, f in figures[mode].items():
            print(
                f"{mode:<12}{label:<7}{f.merge[0]:>8.2f}{f.merge[1]:>6.2f}{f.cpu[0]:>7.2f}"
                f"{f.cpu[1]:>6.2f}{f.step[0]:>8.2f}{f.step[1]:>6.2f}{f.sensor[0] * 1000:>10.1f}"
                f"{f.sensor[1] * 1000:>6.1f}{f.changes:>9,.0f}{f.files_rewritten:>10.1f}"
            )
    print(
        f"\n{'mode':<12}{'full load s':>12}{'total merge s':>15}{'total sensor s':>16}"
        f"{'last / first (wall)':>21}{'(cpu)':>8}"
    )
    totals = {}
    for mode, result in results.items():
        totals[mode] = sum(t.merge_s for t in result.ticks)
        first, last = figures[mode]["first"], figures[mode]["last"]
        growth = last.merge[0] / first.merge[0]
        verdict = ""
        if mode == "incremental":
            verdict = f"  target <= 1.3x: {'met' if growth <= 1.3 else 'NOT met'}"
        print(
            f"{mode:<12}{result.full_load_s:>12.1f}{totals[mode]:>15.1f}"
            f"{sum(t.sensor_s for t in result.ticks):>16.2f}{growth:>20.2f}x"
            f"{last.cpu[0] / first.cpu[0]:>7.2f}x{verdict}"
        )
    if set(totals) == set(MODES):
        print(
            f"total reapply / total incremental: {totals['reapply'] / totals['incremental']:.1f}x "
            f"over {shape.hours:g} simulated h"
        )
    print(
        f"\n{'mode':<12}{'table':<30}{'when':<13}{'data files':>11}{'snapshots':>10}"
        f"{'manifests':>10}{'metadata.json':>15}"
    )
    for mode, result in results.items():
        for moment, states in result.states.items():
            for identifier, state in states.items():
                print(
                    f"{mode:<12}{identifier:<30}{moment:<13}{state.data_files:>11,}"
                    f"{state.snapshots:>10,}{state.manifests:>10,}"
                    f"{state.metadata_bytes / 1024:>12,.0f} KB"
                )
    print()
    for mode, result in results.items():
        for table, digest in result.live.items():
            print(f"{mode:<12}live rows of silver.{table} at the end: {digest}")
    if len(results) > 1:
        same = len({tuple(sorted(result.live.items())) for result in results.values()}) == 1
        print(f"both modes give the same live rows: {'yes' if same else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of each full load")
    parser.add_argument("--files-per-day", type=int, default=1440, help="CDC files per table")
    parser.add_argument("--rows-per-file", type=int, default=200, help="changes per file (mean)")
    parser.add_argument("--tables", type=int, default=1)
    parser.add_argument("--hours", type=float, default=1.0, help="simulated hours (24: a day)")
    parser.add_argument("--modes", default=",".join(MODES), help="incremental,reapply")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    logging.disable(logging.INFO)  # the sensor's tick log, a line a tick
    warnings.filterwarnings("ignore", category=dg.BetaWarning)  # backfill_policy is beta
    shape = Shape(
        args.rows, args.files_per_day, args.rows_per_file, args.tables, args.hours, args.seed
    )
    results = {}
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        for mode in args.modes.split(","):
            results[mode] = soak(
                shape, mode, Path(scratch) / mode, lambda line: print(line, flush=True)
            )
    print_report(shape, results)


if __name__ == "__main__":
    main()
