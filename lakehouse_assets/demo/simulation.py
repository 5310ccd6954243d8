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
    CUT_MARGIN,
    DAY,
    FLUSH_HOURS,
    FLUSH_JITTER,
    HOUR,
    LAST_FLUSH,
    NIGHTLY_JOBS,
    RESTART_BEFORE_FIRST_FLUSH,
    RESTART_DAY,
    US,
    epoch_us,
)
from lakehouse_assets.demo.period import Period
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
    """The source database and the day it is at, driven by one seeded Generator.

    ``cutoff_us`` is the moment of the run when the last day is today: nothing is
    committed after it (None: the days run to their end).
    """

    def __init__(
        self,
        contracts: Contracts,
        scale: float,
        seed: int,
        start: date,
        cutoff_us: int | None = None,
    ):
        self.rng = np.random.default_rng(seed)
        self.scale = scale
        self.start = start
        self.start_us = epoch_us(datetime(start.year, start.month, start.day, tzinfo=UTC))
        self.cutoff_us = cutoff_us
        self.counts = scaled_counts(scale)
        self.tenants = self.counts["core_tenant"]
        self.logs = {name: TableLog(contracts.table(name)) for name in DEMO_TABLES}
        self.schedules: dict[int, FlushSchedule] = {}
        self.edge_cases: dict[str, Any] = {}

    def day_start(self, day: int) -> int:
        return self.start_us + (day - 1) * DAY

    def day_date(self, day: int) -> date:
        return self.start + timedelta(days=day - 1)

    def is_cut(self, day: int) -> bool:
        """Whether ``day`` is not over at the cutoff (its activity stops there)."""
        return self.cutoff_us is not None and self.day_start(day) + DAY > self.cutoff_us

    def day_period(self, day: int) -> Period:
        """A CDC day as a period of activity: all of it, or up to the cutoff."""
        start = self.day_start(day)
        lo, hi = (start + offset for offset in ACTIVITY_WINDOW)
        jobs_lo, jobs_hi = (start + offset for offset in NIGHTLY_JOBS)
        share = 1.0
        if self.is_cut(day):
            assert self.cutoff_us is not None
            end = min(hi, self.cutoff_us - CUT_MARGIN)
            if end <= lo:
                raise ValueError(f"{self.day_date(day)} has no activity yet (it begins at 00:01)")
            share, hi, jobs_hi = (end - lo) / (hi - lo), end, min(jobs_hi, end)
        return Period(day, (lo, hi), share, start // DAY, (jobs_lo, jobs_hi))

    def begin_day(self, day: int) -> None:
        start = self.day_start(day)
        jitter = self.rng.integers(-FLUSH_JITTER, FLUSH_JITTER, len(FLUSH_HOURS))
        flushes = np.append(
            start + np.array(FLUSH_HOURS, np.int64) * HOUR + jitter, self.last_flush(day)
        )
        if self.is_cut(day):
            end = self.day_period(day).window_us[1]
            flushes = np.append(flushes[flushes < end], end)
        restart = (
            int(flushes[0]) - RESTART_BEFORE_FIRST_FLUSH
            if day == RESTART_DAY and len(flushes) > 1
            else None
        )
        self.schedules[day] = FlushSchedule(flushes, restart)

    def last_flush(self, day: int) -> int:
        """The day's last flush, just before midnight."""
        return self.day_start(day) + LAST_FLUSH + int(self.rng.integers(0, 50 * US))

    def coarsen(self, times_us: np.ndarray, not_before: int) -> np.ndarray:
        """Most commits keep microseconds; some land on whole milliseconds or seconds,
        so DMS timestamps show 6, fewer or no fraction digits. None moves before
        ``not_before``, its period's start (a stream's interval begins at any moment,
        after the previous interval's commits)."""
        precision = self.rng.choice(
            np.array([1, 1_000, US]), size=len(times_us), p=[0.85, 0.1, 0.05]
        )
        return np.maximum(times_us - times_us % precision, not_before)

    def commit_times(self, n: int, period: Period) -> np.ndarray:
        """Sorted commit times of ``n`` transactions spread over ``period``."""
        lo, hi = period.window_us
        return np.sort(self.coarsen(self.rng.integers(lo, hi, n), lo))

    def sample(self, ids: np.ndarray, share: float) -> np.ndarray:
        """Each id with probability ``share``."""
        return ids[self.rng.random(len(ids)) < share]

    def new_rows(self, table: str, period: Period) -> int:
        """How many rows ``table`` gains in ``period``."""
        return int(self.rng.poisson(period.scaled(NEW_SHARE[table] * self.counts[table])))

    def customer_pool(self, period: int | None) -> CustomerPool:
        """Live customers, without those changed in ``period`` so far: keys the period's
        edge cases and deletes touch stay out of new references."""
        log = self.logs["core_customer"]
        ids = log.live_ids() if period is None else log.untouched(log.live_ids(), period)
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
