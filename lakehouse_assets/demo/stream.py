"""``lakehouse-demo stream``: the demo source live, one CDC file per table and interval.

The stream continues the landing in the lake (see ``landing``), or starts one: a new
history and its full load. Then the source commits in real time: at the end of every
interval, that interval's changes (commit times of now, UTC) land as one CDC file per
table that has any, in the lake's usual layout. Once stopped (``clock.stop``, from a
signal, or after its intervals) it writes the oracle of everything it wrote and
updates the manifest.

The changes follow from the seed alone; only their times, and what the date decides
(renewals, overdue invoices), follow the wall clock.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from lakehouse_assets.contracts import Contracts
from lakehouse_assets.demo.activity import simulate_activity
from lakehouse_assets.demo.clock import DAY, EVENT_COMMIT_DELAY, US, moment
from lakehouse_assets.demo.clock import isoformat_us as iso
from lakehouse_assets.demo.dms_target import DmsTarget
from lakehouse_assets.demo.history import build_history
from lakehouse_assets.demo.landing import last_commit_us, restore_landing
from lakehouse_assets.demo.oracle import read_manifest, write_expected_state, write_manifest
from lakehouse_assets.demo.period import Period
from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.summary import Summary
from lakehouse_assets.demo.volumes import load_file_rows
from lakehouse_assets.dms import table_prefix
from lakehouse_assets.lake.store import LakeStore

# Events commit up to EVENT_COMMIT_DELAY after they occur, and a file's name only shows
# milliseconds: an interval's commits end this long before its flush.
COMMIT_MARGIN = EVENT_COMMIT_DELAY[1] + 1_000


class Clock(Protocol):
    def now_us(self) -> int: ...

    def wait_until(self, at_us: int) -> bool:
        """Wait until ``at_us``: True when it came, False when stopped first."""
        ...


class WallClock:
    """The real time in epoch microseconds; a wait ends early once ``stop`` was called."""

    def __init__(self) -> None:
        self._stopped = threading.Event()

    def now_us(self) -> int:
        return time.time_ns() // 1_000

    def wait_until(self, at_us: int) -> bool:
        return not self._stopped.wait(max(0.0, (at_us - self.now_us()) / US))

    def stop(self) -> None:
        self._stopped.set()


@dataclass(frozen=True)
class StreamSettings:
    interval_s: float
    rate: float  # the source's activity as a multiple of the batch demo's daily pace
    intervals: int | None = None  # None: until stopped
    seed: int = 42
    # A new landing's (default 1 and plain CSV); a continued landing keeps its own.
    scale: float | None = None
    gzip: bool | None = None

    def __post_init__(self) -> None:
        if self.interval_s * US <= 2 * COMMIT_MARGIN:
            raise ValueError(f"the interval must be over {2 * COMMIT_MARGIN / US} s")
        if self.intervals is not None and self.intervals < 1:
            raise ValueError("the duration must hold at least one interval")
        if not 0 < self.rate * self.interval_s * US <= DAY:
            raise ValueError("rate x interval must be positive and at most a day (86400 s)")


def stream(
    store: LakeStore,
    contracts: Contracts,
    settings: StreamSettings,
    clock: Clock,
    report: Callable[[str], None] = print,
) -> Summary:
    """Stream the demo source into ``store`` until stopped; returns the updated manifest."""
    previous = read_manifest(store)
    sim, target = open_source(store, contracts, settings, previous, clock, report)
    began = clock.now_us()
    intervals = stream_intervals(sim, target, settings, clock, report)
    stopped = clock.now_us()
    write_expected_state(store, sim, target.tables)
    run = {
        "seed": settings.seed,
        "interval": settings.interval_s,
        "rate": settings.rate,
        "started": iso(began),
        "stopped": iso(stopped),
        "intervals": intervals,
        "full_load": previous is None,
        "files": sum(t.files for t in target.tables.values()),
        "rows": sum(t.rows_written for t in target.tables.values()),
    }
    sequences = {name: log.next_id for name, log in sim.logs.items()}
    if previous is None:
        arguments = {
            "scale": sim.scale,
            "seed": settings.seed,
            "start": sim.start.isoformat(),
            "gzip": target.compress,
        }
        summary = Summary(arguments, target.tables, {}, [run], sequences)
    else:
        tables = {name: t.add(target.tables[name]) for name, t in previous.tables.items()}
        streams = [*previous.streams, run]
        summary = Summary(previous.arguments, tables, previous.edge_cases, streams, sequences)
    write_manifest(store, summary)
    return summary


def open_source(
    store: LakeStore,
    contracts: Contracts,
    settings: StreamSettings,
    previous: Summary | None,
    clock: Clock,
    report: Callable[[str], None],
) -> tuple[Simulation, DmsTarget]:
    """The source as the landing left it, or a new one with its history and full load."""
    now = clock.now_us()
    if previous is None:
        if any(
            next(store.list_objects(table_prefix(contracts.dms, c.schema, c.dms_name)), None)
            for c in contracts.tables.values()
        ):
            raise ValueError(f"{store.uri}: DMS files but no demo manifest: not a demo landing")
        scale = 1.0 if settings.scale is None else settings.scale
        gzip = bool(settings.gzip)
    else:
        if last_commit_us(previous) > now:
            raise ValueError(
                f"{store.uri}: the landing has commits until {iso(last_commit_us(previous))}, "
                "later than now (generate it with --end today)"
            )
        scale, gzip = previous.arguments["scale"], previous.arguments["gzip"]
        if settings.scale not in (None, scale) or settings.gzip not in (None, gzip):
            raise ValueError(
                f"{store.uri}: the landing has scale {scale} and gzip {gzip}; "
                "scale and gzip choose a new landing's"
            )
    sim = Simulation(contracts, scale, settings.seed, moment(now).date())
    target = DmsTarget(store, contracts, gzip, sim.rng)
    if previous is None:
        build_history(sim, now)
        write_full_load_now(sim, target, clock)
        files = sum(t.files for t in target.tables.values())
        rows = sum(t.load_rows for t in target.tables.values())
        report(f"full load: {files} files, {rows} rows")
    else:
        restore_landing(store, contracts, previous, sim)
    return sim, target


def write_full_load_now(sim: Simulation, target: DmsTarget, clock: Clock) -> None:
    """A new landing's full load: every table as it stands (nothing commits meanwhile),
    each file transferred when it is written."""
    per_file = load_file_rows(sim.scale)
    for name, log in sim.logs.items():
        rows = log.current(log.live_ids())
        for counter, start in enumerate(range(0, rows.num_rows, per_file), start=1):
            target.write_load_file(name, counter, rows.slice(start, per_file), clock.now_us())


def stream_intervals(
    sim: Simulation,
    target: DmsTarget,
    settings: StreamSettings,
    clock: Clock,
    report: Callable[[str], None],
) -> int:
    """Commit and flush interval after interval until stopped; returns how many ran.

    Every interval has the same length and activity share, so the random draws do not
    depend on the clock; one starts when the previous flush is written."""
    width = round(settings.interval_s * US)
    share = settings.rate * settings.interval_s * US / DAY
    number, lo = 0, clock.now_us()
    while settings.intervals is None or number < settings.intervals:
        hi = lo + width
        if not clock.wait_until(hi):
            break
        number += 1
        window = (lo, hi - COMMIT_MARGIN)
        simulate_activity(sim, Period(number, window, share, lo // DAY, window))
        flushed = clock.now_us()
        files, ops = flush(sim, target, number, flushed)
        report(
            f"{moment(flushed):%Y-%m-%d %H:%M:%S} UTC interval {number}: {files} files, "
            f"{ops.total()} rows ({ops['I']} inserts, {ops['U']} updates, {ops['D']} deletes)"
        )
        lo = clock.now_us()
    return number


def flush(sim: Simulation, target: DmsTarget, number: int, flushed_us: int) -> tuple[int, Counter]:
    """Interval ``number``'s changes as one CDC file per table that has any; then the logs
    forget them. Returns the files written and the rows per Op."""
    files, ops = 0, Counter()
    for name, log in sim.logs.items():
        changes = log.changes((number,))
        if changes is None or not changes.num_rows:
            continue
        target.write_cdc_file(name, target.cdc_rows(name, changes), flushed_us)
        files += 1
        ops.update(changes["_op"].to_pylist())
    for log in sim.logs.values():
        log.compact()
    return files, ops
