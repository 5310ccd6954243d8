"""Demo DMS source: a seeded Django SaaS database, replicated the way AWS DMS does it.

``generate`` simulates the source database (tenants, customers, products,
orders, order items, events, subscriptions, invoices) and writes what an AWS
DMS S3 target with the contract's ``dms:`` settings writes for it: a full load
on the start day, then CDC files day by day. The files carry the quirks the
pipeline must survive: one key going I -> U -> D -> I inside one file and
across days, rows redelivered after a task restart, a full load overlapping
CDC, and values with delimiters, quotes, newlines, unicode and NULLs. On
request, the full load runs while the source keeps committing (``live_load``)
and a table is reloaded on one day (``reload_day``).

Next to the files it writes the oracle: the final state of every source table
(``demo/expected/<table>.parquet``), which replaying the files must reproduce,
and ``demo/manifest.json`` with the arguments, counts and edge cases.

Model: every table is a change log (each insert, update and delete with its
commit time); the database state is, per id, a pointer to the id's live
version in that log. Everything random comes from one numpy Generator drawn in
a fixed order, so the same arguments give byte-identical files.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from lakehouse_assets.contracts import Contracts
from lakehouse_assets.demo.activity import simulate_day
from lakehouse_assets.demo.clock import HISTORY_END, RESTART_DAY, epoch_us, isoformat_us
from lakehouse_assets.demo.dms_target import DmsTarget
from lakehouse_assets.demo.history import build_history
from lakehouse_assets.demo.live_load import write_live_full_load
from lakehouse_assets.demo.load_overlap import preload_changes
from lakehouse_assets.demo.oracle import write_expected_state, write_manifest
from lakehouse_assets.demo.reload import reload_over_us, reload_table
from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.summary import Summary
from lakehouse_assets.lake.store import LakeStore


def generate(
    store: LakeStore,
    contracts: Contracts,
    scale: float = 1.0,
    days: int = 7,
    seed: int = 42,
    start: date = date(2024, 1, 1),
    gzip: bool = False,
    *,
    live_load: bool = False,
    reload_day: int | None = None,
    now: datetime | None = None,
) -> Summary:
    """Simulate ``days`` days of the demo database and write DMS files, oracle and manifest.

    ``live_load``: the full load runs while the source commits (see ``live_load``).
    ``reload_day``: on that day (2 to ``days``) the task reloads a table (see ``reload``).
    ``now``: the moment of the run; nothing is committed after it, so a last day that is
    today ends there (None: every day runs to its end).
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if reload_day is not None and not 2 <= reload_day <= days:
        raise ValueError(f"reload_day must be a CDC day, 2 to {days}, got {reload_day}")
    cutoff_us = None if now is None else epoch_us(now)
    sim = Simulation(contracts, scale, seed, start, cutoff_us)
    if cutoff_us is not None:
        if sim.day_start(2) > cutoff_us:
            raise ValueError(f"the full-load day {start} is not over yet: start a day earlier")
        if sim.day_start(days) > cutoff_us:
            raise ValueError(f"the last day {sim.day_date(days)} is after today")
        if reload_day is not None and reload_over_us(sim, reload_day) > cutoff_us:
            raise ValueError(
                f"the reload on {sim.day_date(reload_day)} (10:00 UTC) is not over yet: "
                "choose an earlier day"
            )
    target = DmsTarget(store, contracts, gzip, sim.rng)
    build_history(sim, sim.start_us + HISTORY_END)
    preload_changes(sim)
    first_transfer, last_transfer = (
        write_live_full_load(sim, target) if live_load else target.write_full_load(sim)
    )
    sim.edge_cases["load_overlap"].update(
        load_transfer_first=isoformat_us(first_transfer),
        load_transfer_last=isoformat_us(last_transfer),
    )
    for day in range(2, days + 1):
        simulate_day(sim, day)
        if day == reload_day:
            reload_table(sim, target, day)
        target.write_cdc_day(sim, day)
    if target.redelivered:
        sim.edge_cases["redelivered"] = {
            "day": sim.day_date(RESTART_DAY).isoformat(),
            "files": target.redelivered,
        }
    write_expected_state(store, sim, target.tables)
    arguments: dict[str, Any] = {
        "scale": scale,
        "days": days,
        "seed": seed,
        "start": start.isoformat(),
        "gzip": gzip,
    }
    if live_load:
        arguments["live_load"] = True
    if reload_day is not None:
        arguments["reload_day"] = reload_day
    if cutoff_us is not None and sim.is_cut(days):
        arguments["cutoff"] = isoformat_us(cutoff_us)
    summary = Summary(arguments, target.tables, sim.edge_cases)
    write_manifest(store, summary)
    return summary
