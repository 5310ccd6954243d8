"""Activity of events: new tracking events, purged bot traffic."""

from __future__ import annotations

from lakehouse_assets.demo.clock import EVENT_COMMIT_DELAY
from lakehouse_assets.demo.period import Period
from lakehouse_assets.demo.pools import CustomerPool, ProductPool
from lakehouse_assets.demo.rows.events import event_rows
from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.volumes import EVENTS_PER_DAY


def purge_bot_events(sim: Simulation, period: Period) -> None:
    """A clean-up job deletes events flagged as bot traffic, in one transaction (nightly
    in the batch demo; a day cut before the job's hour has not run it yet)."""
    lo, hi = period.maintenance_us
    if hi <= lo:
        return
    log = sim.logs["core_event"]
    purged = sim.sample(log.untouched(log.live_ids(), period.number), period.scaled(0.005))
    at = lo + int(sim.rng.integers(0, hi - lo))
    log.delete(purged, at, period.number)


def add_events(
    sim: Simulation, period: Period, customers: CustomerPool, products: ProductPool
) -> None:
    """Tracking events, each committed a moment after it occurred."""
    log = sim.logs["core_event"]
    n = int(sim.rng.poisson(period.scaled(EVENTS_PER_DAY * sim.scale)))
    columns, occurred = event_rows(sim, log.allocate(n), period.window_us, customers, products)
    at = sim.coarsen(occurred + sim.rng.integers(*EVENT_COMMIT_DELAY, n), period.window_us[0])
    log.write("I", columns, at, period.number)
