"""Activity of subscriptions: sign-ups, trials converting, upgrades, renewals."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lakehouse_assets.demo.activity.invoices import bill_subscriptions
from lakehouse_assets.demo.clock import DAY
from lakehouse_assets.demo.period import Period
from lakehouse_assets.demo.pools import CustomerPool
from lakehouse_assets.demo.rows.subscriptions import Plans, plan_price, subscription_rows
from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.values import dates, int_values, money, replaced, text_values, timestamps
from lakehouse_assets.demo.vocabulary import PERIOD_DAYS, PLANS


def advance_subscriptions(sim: Simulation, period: Period) -> None:
    """Trials convert or lapse, active plans get upgraded or canceled."""
    rng, log = sim.rng, sim.logs["core_subscription"]
    live = log.untouched(log.live_ids(), period.number)
    rows = log.current(live)
    status = text_values(rows, "status")
    roll = rng.random(len(live))
    convert, lapse, cancel, upgrade, give_up = (
        period.scaled(p) for p in (0.1, 0.13, 0.002, 0.006, 0.1)
    )
    converting = live[(status == "trialing") & (roll < convert)]
    canceling = live[
        ((status == "trialing") & (roll >= convert) & (roll < lapse))
        | ((status == "active") & (roll < cancel))
        | ((status == "past_due") & (roll < give_up))
    ]
    upgrading = live[
        (status == "active")
        & (roll >= cancel)
        & (roll < upgrade)
        & (text_values(rows, "plan") != PLANS[-1])
    ]
    start_paying(sim, period, converting)
    at = sim.commit_times(len(canceling), period)
    log.write(
        "U",
        replaced(
            log.current(canceling),
            status=pa.repeat("canceled", len(canceling)),
            canceled_at=timestamps(at),
            updated_at=timestamps(at),
        ),
        at,
        period.number,
    )
    upgraded = log.current(upgrading)
    plan = np.array([PLANS.index(p) for p in text_values(upgraded, "plan")], np.int64) + 1
    yearly = text_values(upgraded, "billing_interval") == "year"
    at = sim.commit_times(len(upgrading), period)
    log.write(
        "U",
        replaced(
            upgraded,
            plan=pa.array(np.array(PLANS)[plan]),
            price=money(plan_price(plan, yearly)),
            updated_at=timestamps(at),
        ),
        at,
        period.number,
    )


def start_paying(sim: Simulation, period: Period, ids: np.ndarray) -> None:
    """Trials that convert: the subscription turns active and its first invoice is paid
    in the same transaction."""
    log = sim.logs["core_subscription"]
    rows = log.current(ids)
    at = sim.commit_times(len(ids), period)
    days = period_days(rows)
    log.write(
        "U",
        replaced(
            rows,
            status=pa.repeat("active", len(ids)),
            started_at=timestamps(at),
            current_period_end=dates(at // DAY + days),
            updated_at=timestamps(at),
        ),
        at,
        period.number,
    )
    bill_subscriptions(sim, period, rows, at, paid=True)


def renew_subscriptions(sim: Simulation, period: Period) -> None:
    """Active subscriptions whose period has ended renew: a new period and an open
    invoice, in one transaction. The new period is the one holding today, so a source
    that resumes long after its history renews once, not once per missed period."""
    log = sim.logs["core_subscription"]
    live = log.untouched(log.live_ids(), period.number)
    live_rows = log.current(live)
    due = live[
        (text_values(live_rows, "status") == "active")
        & (int_values(live_rows, "current_period_end") <= period.today)
    ]
    rows = log.current(due)
    at = sim.commit_times(len(due), period)
    days = period_days(rows)
    ended = int_values(rows, "current_period_end")
    renewed_end = ended + ((period.today - ended) // days + 1) * days
    log.write(
        "U",
        replaced(rows, current_period_end=dates(renewed_end), updated_at=timestamps(at)),
        at,
        period.number,
    )
    bill_subscriptions(sim, period, rows, at, paid=False)


def period_days(rows: pa.Table) -> np.ndarray:
    """The length of each subscription's billing period, in days."""
    return np.where(
        text_values(rows, "billing_interval") == "year", PERIOD_DAYS["year"], PERIOD_DAYS["month"]
    )


def add_subscriptions(sim: Simulation, period: Period, customers: CustomerPool) -> None:
    """Sign-ups: trials, or paid plans with their first invoice in the same transaction."""
    rng, log = sim.rng, sim.logs["core_subscription"]
    n = sim.new_rows("core_subscription", period) if len(customers.ids) else 0
    at = sim.commit_times(n, period)
    customer, tenant = customers.pick(rng, at, anonymous_share=0.0)
    status = np.where(rng.random(n) < 0.4, "trialing", "active").astype(object)
    ids = log.allocate(n)
    log.write(
        "I",
        subscription_rows(ids, customer, tenant, Plans.draw(rng, n), status, at),
        at,
        period.number,
    )
    paying = status == "active"
    bill_subscriptions(sim, period, log.current(ids[paying]), at[paying], paid=True)
