"""Daily activity of events: new tracking events, purged bot traffic."""

from __future__ import annotations

from lakehouse_assets.demo.clock import ACTIVITY_WINDOW, HOUR
from lakehouse_assets.demo.pools import CustomerPool, ProductPool
from lakehouse_assets.demo.rows.events import event_rows
from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.volumes import EVENTS_PER_DAY


def purge_bot_events(sim: Simulation, day: int) -> None:
    """A nightly job deletes events flagged as bot traffic, in one transaction."""
    log = sim.logs["core_event"]
    purged = sim.sample(log.untouched(log.live_ids(), day), 0.005)
    at = sim.day_start(day) + 3 * HOUR + int(sim.rng.integers(0, HOUR))
    log.delete(purged, at, day)


def add_events(sim: Simulation, day: int, customers: CustomerPool, products: ProductPool) -> None:
    """Tracking events, each committed a moment after it occurred."""
    log = sim.logs["core_event"]
    n = int(sim.rng.poisson(EVENTS_PER_DAY * sim.scale))
    window = tuple(sim.day_start(day) + offset for offset in ACTIVITY_WINDOW)
    columns, occurred = event_rows(sim, log.allocate(n), window, customers, products)
    at = sim.coarsen(occurred + sim.rng.integers(200, 50_000, n))
    log.write("I", columns, at, day)
