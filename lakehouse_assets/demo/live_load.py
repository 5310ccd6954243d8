"""A live full load (generate --live-load): the source keeps committing while DMS loads it.

Each table is read in one snapshot when its load starts (as PostgreSQL does), while its
LOAD files are transferred over the following minutes: every file's timestamp column is
its transfer time, later than the snapshot. Meanwhile the source commits as usual
(updates and deletes of loaded keys, inserts), and DMS writes those commits into a CDC
file after the load. Some were committed before rows of the load were transferred, so
only the load's start orders them (DESIGN.md: a full load's rows rank before every CDC
change committed after that load began).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lakehouse_assets.demo.activity import simulate_activity
from lakehouse_assets.demo.clock import DAY, LIVE_LOAD_SHARE, LOAD_WINDOW, SNAPSHOT_LEAD
from lakehouse_assets.demo.clock import isoformat_us as iso
from lakehouse_assets.demo.dms_target import DmsTarget
from lakehouse_assets.demo.period import Period
from lakehouse_assets.demo.simulation import FlushSchedule, Simulation
from lakehouse_assets.demo.volumes import load_file_rows

START_DAY = 1


def write_live_full_load(sim: Simulation, target: DmsTarget) -> tuple[int, int]:
    """The load window's activity, the LOAD files read from per-table snapshots, and the
    start day's CDC file after them. Returns the first and last transfer time; the edge
    case ``live_load`` says per table when its snapshot was read, when its first and last
    file were transferred and how many changes DMS captured meanwhile."""
    lo, hi = (sim.start_us + offset for offset in LOAD_WINDOW)
    simulate_activity(sim, Period(START_DAY, (lo, hi), LIVE_LOAD_SHARE, lo // DAY, (lo, hi)))
    per_file = load_file_rows(sim.scale)
    # Tables load one after another, their files spread evenly over the window.
    expected_files = sum(-(-log.as_of(lo).num_rows // per_file) for log in sim.logs.values())
    step = (hi - lo) // max(expected_files, 1)
    transfers: list[int] = []  # of every file, in order

    def next_transfer() -> int:
        return lo + len(transfers) * step + int(sim.rng.integers(0, step // 2 + 1))

    loads: dict[str, dict[str, Any]] = {}
    for name, log in sim.logs.items():
        first = next_transfer()
        snapshot = first - int(sim.rng.integers(*SNAPSHOT_LEAD))
        rows = log.as_of(snapshot)
        for counter, start in enumerate(range(0, rows.num_rows, per_file), start=1):
            transfers.append(first if counter == 1 else next_transfer())
            target.write_load_file(name, counter, rows.slice(start, per_file), transfers[-1])
        captured = log.changes((START_DAY,))
        commit = captured["_commit_us"].to_numpy() if captured is not None else np.zeros(0)
        loads[name] = {
            "snapshot": iso(snapshot),
            "transfer_first": iso(first),
            "transfer_last": iso(transfers[-1]),
            "changes_during_load": int(((commit >= snapshot) & (commit < transfers[-1])).sum()),
        }
    sim.edge_cases["live_load"] = loads
    # DMS applies the changes it captured during the load after it: the day's last flush.
    sim.schedules[START_DAY] = FlushSchedule(np.array([sim.last_flush(START_DAY)]), None)
    target.write_cdc_day(sim, START_DAY)
    return transfers[0], transfers[-1]
