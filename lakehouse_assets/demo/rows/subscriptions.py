"""Rows of new subscriptions: plans, billing intervals, seats and prices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lakehouse_assets.demo.clock import DAY
from lakehouse_assets.demo.values import Columns, dates, ints, money, timestamps
from lakehouse_assets.demo.vocabulary import (
    PERIOD_DAYS,
    PLAN_MONTHLY_CENTS,
    PLAN_WEIGHTS,
    PLANS,
    TRIAL_DAYS,
)


@dataclass(frozen=True)
class Plans:
    """The plan, billing interval, seats and price of new subscriptions."""

    plan: np.ndarray
    yearly: np.ndarray
    quantity: np.ndarray

    @staticmethod
    def draw(rng: np.random.Generator, n: int) -> Plans:
        plan = rng.choice(len(PLANS), size=n, p=PLAN_WEIGHTS)
        seats = np.where(plan >= PLANS.index("team"), rng.integers(2, 26, n), 1)
        return Plans(plan, rng.random(n) < 0.25, seats)

    @property
    def price_cents(self) -> np.ndarray:
        return plan_price(self.plan, self.yearly)

    @property
    def period_days(self) -> np.ndarray:
        return np.where(self.yearly, PERIOD_DAYS["year"], PERIOD_DAYS["month"])


def plan_price(plan: np.ndarray, yearly: np.ndarray) -> np.ndarray:
    """Price per seat and period: a year costs ten months."""
    return PLAN_MONTHLY_CENTS[plan] * np.where(yearly, 10, 1)


def subscription_rows(
    ids: np.ndarray,
    customer: np.ndarray,
    tenant: np.ndarray,
    plans: Plans,
    status: np.ndarray,
    created_us: np.ndarray,
) -> Columns:
    """New subscriptions: trials start later and end after the trial days."""
    trialing = status == "trialing"
    created_day = created_us // DAY
    return {
        "id": ints(ids),
        "tenant_id": ints(tenant),
        "customer_id": ints(customer),
        "plan": pa.array(np.array(PLANS)[plans.plan]),
        "status": pa.array(status, pa.string()),
        "price": money(plans.price_cents),
        "billing_interval": pa.array(np.where(plans.yearly, "year", "month")),
        "quantity": ints(plans.quantity),
        "started_at": timestamps(np.where(trialing, -1, created_us)),
        "current_period_end": dates(
            created_day + np.where(trialing, TRIAL_DAYS, plans.period_days)
        ),
        "canceled_at": timestamps(np.full(len(ids), -1)),
        "created_at": timestamps(created_us),
        "updated_at": timestamps(created_us),
    }
