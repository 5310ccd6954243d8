"""Daily activity of subscriptions: sign-ups, trials converting, upgrades, renewals."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lakehouse_assets.demo.activity.invoices import bill_subscriptions
from lakehouse_assets.demo.clock import DAY
from lakehouse_assets.demo.pools import CustomerPool
from lakehouse_assets.demo.rows.subscriptions import Plans, plan_price, subscription_rows
from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.values import dates, int_values, money, replaced, text_values, timestamps
from lakehouse_assets.demo.vocabulary import PERIOD_DAYS, PLANS


def advance_subscriptions(sim: Simulation, day: int) -> None:
    """Trials convert or lapse, active plans get upgraded or canceled."""
    rng, log = sim.rng, sim.logs["core_subscription"]
    live = log.untouched(log.live_ids(), day)
    rows = log.current(live)
    status = text_values(rows, "status")
    roll = rng.random(len(live))
    converting = live[(status == "trialing") & (roll < 0.1)]
    canceling = live[
        ((status == "trialing") & (roll >= 0.1) & (roll < 0.13))
        | ((status == "active") & (roll < 0.002))
        | ((status == "past_due") & (roll < 0.1))
    ]
    upgrading = live[
        (status == "active")
        & (roll >= 0.002)
        & (roll < 0.006)
        & (text_values(rows, "plan") != PLANS[-1])
    ]
    start_paying(sim, day, converting)
    at = sim.commit_times(len(canceling), day)
    log.write(
        "U",
        replaced(
            log.current(canceling),
            status=pa.repeat("canceled", len(canceling)),
            canceled_at=timestamps(at),
            updated_at=timestamps(at),
        ),
        at,
        day,
    )
    upgraded = log.current(upgrading)
    plan = np.array([PLANS.index(p) for p in text_values(upgraded, "plan")], np.int64) + 1
    yearly = text_values(upgraded, "billing_interval") == "year"
    at = sim.commit_times(len(upgrading), day)
    log.write(
        "U",
        replaced(
            upgraded,
            plan=pa.array(np.array(PLANS)[plan]),
            price=money(plan_price(plan, yearly)),
            updated_at=timestamps(at),
        ),
        at,
        day,
    )


def start_paying(sim: Simulation, day: int, ids: np.ndarray) -> None:
    """Trials that convert: the subscription turns active and its first invoice is paid
    in the same transaction."""
    log = sim.logs["core_subscription"]
    rows = log.current(ids)
    at = sim.commit_times(len(ids), day)
    period = np.where(
        text_values(rows, "billing_interval") == "year", PERIOD_DAYS["year"], PERIOD_DAYS["month"]
    )
    log.write(
        "U",
        replaced(
            rows,
            status=pa.repeat("active", len(ids)),
            started_at=timestamps(at),
            current_period_end=dates(at // DAY + period),
            updated_at=timestamps(at),
        ),
        at,
        day,
    )
    bill_subscriptions(sim, day, rows, at, paid=True)


def renew_subscriptions(sim: Simulation, day: int) -> None:
    """Active subscriptions whose period ends today renew: a new period and an open
    invoice, in one transaction."""
    log = sim.logs["core_subscription"]
    live = log.untouched(log.live_ids(), day)
    live_rows = log.current(live)
    today = sim.day_start(day) // DAY
    due = live[
        (text_values(live_rows, "status") == "active")
        & (int_values(live_rows, "current_period_end") <= today)
    ]
    rows = log.current(due)
    at = sim.commit_times(len(due), day)
    period = np.where(
        text_values(rows, "billing_interval") == "year", PERIOD_DAYS["year"], PERIOD_DAYS["month"]
    )
    log.write(
        "U",
        replaced(
            rows,
            current_period_end=dates(int_values(rows, "current_period_end") + period),
            updated_at=timestamps(at),
        ),
        at,
        day,
    )
    bill_subscriptions(sim, day, rows, at, paid=False)


def add_subscriptions(sim: Simulation, day: int, customers: CustomerPool) -> None:
    """Sign-ups: trials, or paid plans with their first invoice in the same transaction."""
    rng, log = sim.rng, sim.logs["core_subscription"]
    n = sim.daily_new("core_subscription") if len(customers.ids) else 0
    at = sim.commit_times(n, day)
    customer, tenant = customers.pick(rng, at, anonymous_share=0.0)
    status = np.where(rng.random(n) < 0.4, "trialing", "active").astype(object)
    ids = log.allocate(n)
    log.write(
        "I", subscription_rows(ids, customer, tenant, Plans.draw(rng, n), status, at), at, day
    )
    paying = status == "active"
    bill_subscriptions(sim, day, log.current(ids[paying]), at[paying], paid=True)
