"""A table reload (generate --reload-day N): DMS stops, keys vanish unseen, the table loads anew.

On day N the task is stopped for an hour. Meanwhile the source commits its usual changes
and a clean-up deletes some customers; DMS captures none of the table's commits of that
hour. The task then reloads the table (DROP_AND_CREATE): one snapshot when the reload
starts, written over the table's LOAD files under the same names. The reload is a new
generation of the table: it ranks after every CDC change before it, and the keys it lacks
are gone (DESIGN.md).
"""

from __future__ import annotations

import numpy as np

from lakehouse_assets.demo.activity.accounts import unreferenced_customers
from lakehouse_assets.demo.clock import MINUTE, RELOAD_FILE_STEP, RELOAD_STOP, SNAPSHOT_LEAD
from lakehouse_assets.demo.clock import isoformat_us as iso
from lakehouse_assets.demo.dms_target import DmsTarget
from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.table_log import STATE_PERIOD

RELOADED_TABLE = "core_customer"
DELETED_WHILE_STOPPED = 0.05  # of the customers nothing references
# The reload's files are all transferred by then (a few per table, under a minute apart).
RELOAD_OVER = RELOAD_STOP[1] + 30 * MINUTE


def reload_over_us(sim: Simulation, day: int) -> int:
    """When a reload on ``day`` is over."""
    return sim.day_start(day) + RELOAD_OVER


def reload_table(sim: Simulation, target: DmsTarget, day: int) -> None:
    """Stop, delete unseen, reload: after the day's activity, before its CDC files."""
    log = sim.logs[RELOADED_TABLE]
    stopped, reloaded = (sim.day_start(day) + offset for offset in RELOAD_STOP)
    deleted = deleted_while_stopped(sim, day)
    times = np.sort(sim.coarsen(sim.rng.integers(stopped, reloaded, len(deleted)), stopped))
    log.delete(deleted, times, day)
    target.uncaptured.setdefault(RELOADED_TABLE, []).append((stopped, reloaded))
    commit = log.changes((day,))["_commit_us"].to_numpy()
    steps = [int(sim.rng.integers(*SNAPSHOT_LEAD))] + [
        int(sim.rng.integers(*RELOAD_FILE_STEP))
        for _ in range(target.load_files[RELOADED_TABLE] - 1)
    ]
    transfers = (reloaded + np.cumsum(steps)).tolist()
    target.rewrite_full_load(RELOADED_TABLE, log.as_of(reloaded), transfers)
    sim.edge_cases["reload"] = {
        "table": RELOADED_TABLE,
        "day": sim.day_date(day).isoformat(),
        "stopped": iso(stopped),
        "snapshot": iso(reloaded),
        "transfer_first": iso(transfers[0]),
        "transfer_last": iso(transfers[-1]),
        "deleted_while_stopped": deleted.tolist(),
        "uncaptured_changes": int(((commit >= stopped) & (commit < reloaded)).sum()),
    }


def deleted_while_stopped(sim: Simulation, day: int) -> np.ndarray:
    """Customers a clean-up deletes while the task is stopped: unreferenced ones no other
    change hits that day, and among them at least one that an earlier CDC file shows, so
    that only the reload tells it is gone."""
    log = sim.logs[RELOADED_TABLE]
    candidates = unreferenced_customers(sim, log.untouched(log.live_ids(), day))
    deleted = sim.sample(candidates, DELETED_WHILE_STOPPED)
    in_cdc = candidates[log.last_changed(candidates) > STATE_PERIOD]
    if len(in_cdc) and not np.isin(in_cdc, deleted).any():
        deleted = np.union1d(deleted, in_cdc[-1:])
    return deleted
