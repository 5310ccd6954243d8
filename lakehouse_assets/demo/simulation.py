"""The simulated source database: its tables, the day it is at and its one random Generator.

Everything random comes from that numpy Generator, drawn in a fixed order, so the
same arguments give byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from lakehouse_assets.contracts import Contracts
from lakehouse_assets.demo.clock import (
    ACTIVITY_WINDOW,
    DAY,
    EPOCH,
    FLUSH_HOURS,
    FLUSH_JITTER,
    HOUR,
    LAST_FLUSH,
    RESTART_BEFORE_FIRST_FLUSH,
    RESTART_DAY,
    US,
)
from lakehouse_assets.demo.pools import CustomerPool, ProductPool
from lakehouse_assets.demo.table_log import TableLog
from lakehouse_assets.demo.values import cent_values, int_values
from lakehouse_assets.demo.volumes import DEMO_TABLES, NEW_SHARE, scaled_counts


@dataclass(frozen=True)
class FlushSchedule:
    """When DMS wrote the CDC files of one day: a file holds the commits after the
    previous flush up to its own. After a task restart, DMS writes the commits
    after ``restart_us`` once more, at the head of the next file."""

    flushes_us: np.ndarray
    restart_us: int | None


class Simulation:
    """The source database and the day it is at, driven by one seeded Generator."""

    def __init__(self, contracts: Contracts, scale: float, seed: int, start: date):
        self.rng = np.random.default_rng(seed)
        self.scale = scale
        self.start = start
        midnight = datetime(start.year, start.month, start.day, tzinfo=UTC)
        self.start_us = (midnight - EPOCH) // timedelta(microseconds=1)
        self.counts = scaled_counts(scale)
        self.tenants = self.counts["core_tenant"]
        self.logs = {name: TableLog(contracts.table(name)) for name in DEMO_TABLES}
        self.schedules: dict[int, FlushSchedule] = {}
        self.edge_cases: dict[str, Any] = {}

    def day_start(self, day: int) -> int:
        return self.start_us + (day - 1) * DAY

    def day_date(self, day: int) -> date:
        return self.start + timedelta(days=day - 1)

    def begin_day(self, day: int) -> None:
        start = self.day_start(day)
        jitter = self.rng.integers(-FLUSH_JITTER, FLUSH_JITTER, len(FLUSH_HOURS))
        flushes = np.append(
            start + np.array(FLUSH_HOURS, np.int64) * HOUR + jitter,
            start + LAST_FLUSH + self.rng.integers(0, 50 * US),
        )
        restart = int(flushes[0]) - RESTART_BEFORE_FIRST_FLUSH if day == RESTART_DAY else None
        self.schedules[day] = FlushSchedule(flushes, restart)

    def coarsen(self, times_us: np.ndarray) -> np.ndarray:
        """Most commits keep microseconds; some land on whole milliseconds or seconds,
        so DMS timestamps show 6, fewer or no fraction digits."""
        precision = self.rng.choice(
            np.array([1, 1_000, US]), size=len(times_us), p=[0.85, 0.1, 0.05]
        )
        return times_us - times_us % precision

    def commit_times(self, n: int, day: int) -> np.ndarray:
        """Sorted commit times of ``n`` transactions spread over a CDC day."""
        lo, hi = (self.day_start(day) + offset for offset in ACTIVITY_WINDOW)
        return np.sort(self.coarsen(self.rng.integers(lo, hi, n)))

    def sample(self, ids: np.ndarray, share: float) -> np.ndarray:
        """Each id with probability ``share``."""
        return ids[self.rng.random(len(ids)) < share]

    def daily_new(self, table: str) -> int:
        return int(self.rng.poisson(NEW_SHARE[table] * self.counts[table]))

    def customer_pool(self, day: int | None) -> CustomerPool:
        """Live customers, without those changed on ``day`` so far: keys the day's edge
        cases and deletes touch stay out of new references."""
        log = self.logs["core_customer"]
        ids = log.live_ids() if day is None else log.untouched(log.live_ids(), day)
        rows = log.current(ids)
        created = int_values(rows, "created_at")
        order = np.argsort(created, kind="stable")
        return CustomerPool(
            ids[order], int_values(rows, "tenant_id")[order], created[order], self.tenants
        )

    def product_pool(self) -> ProductPool:
        log = self.logs["core_product"]
        ids = log.live_ids()
        rows = log.current(ids)
        tenant = int_values(rows, "tenant_id")
        order = np.argsort(tenant, kind="stable")
        starts = np.searchsorted(tenant[order], np.arange(self.tenants + 2))
        return ProductPool(ids[order], cent_values(rows, "price")[order], starts)
