"""History: the database as the full load sees it, built before DMS starts."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lakehouse_assets.demo.clock import DAY, HOUR
from lakehouse_assets.demo.load_overlap import overlap_orders
from lakehouse_assets.demo.pools import CustomerPool, ProductPool
from lakehouse_assets.demo.rows.accounts import customer_rows, tenant_rows
from lakehouse_assets.demo.rows.events import event_rows
from lakehouse_assets.demo.rows.invoices import InvoiceDraft, invoice_rows
from lakehouse_assets.demo.rows.orders import order_rows
from lakehouse_assets.demo.rows.products import product_rows
from lakehouse_assets.demo.rows.subscriptions import Plans, subscription_rows
from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.table_log import STATE_PERIOD
from lakehouse_assets.demo.values import (
    Columns,
    categorical,
    cent_values,
    dates,
    int_values,
    timestamps,
)
from lakehouse_assets.demo.vocabulary import ORDER_AGE_BANDS_DAYS, ORDER_STATUS_BY_AGE, TRIAL_DAYS
from lakehouse_assets.demo.volumes import EVENT_HISTORY_DAYS, ORDER_HISTORY_DAYS


def build_history(sim: Simulation, end: int) -> None:
    """The database as it stands when DMS is set up, at ``end`` on the start day (logged
    as ``STATE_PERIOD``, which no CDC file shows)."""
    tenant_created = history_tenants(sim)
    history_customers(sim, tenant_created, end)
    history_products(sim, tenant_created, end)
    customers, products = sim.customer_pool(None), sim.product_pool()
    history_orders(sim, customers, products, end)
    history_events(sim, customers, products, end)
    history_subscriptions(sim, customers, end)
    history_invoices(sim, customers, end)


def sorted_times(
    rng: np.random.Generator, lo: np.ndarray | int, hi: np.ndarray | int, n: int
) -> np.ndarray:
    return np.sort(lo + (rng.random(n) * (np.asarray(hi) - lo)).astype(np.int64))


def history_tenants(sim: Simulation) -> np.ndarray:
    log = sim.logs["core_tenant"]
    ids = log.allocate(sim.tenants)
    created = sorted_times(
        sim.rng, sim.start_us - 1_500 * DAY, sim.start_us - 1_000 * DAY, len(ids)
    )
    log.write("I", tenant_rows(sim, ids, created), created, STATE_PERIOD)
    return created


def spread_over_tenants(rng: np.random.Generator, tenants: int, n: int) -> np.ndarray:
    """Random tenants, the first ``tenants`` rows one each so that no tenant is empty."""
    tenant = rng.integers(1, tenants + 1, n)
    tenant[: min(n, tenants)] = np.arange(1, min(n, tenants) + 1)
    return tenant


def created_after_tenant(
    sim: Simulation, tenant: np.ndarray, tenant_created: np.ndarray, end: int
) -> tuple[np.ndarray, np.ndarray]:
    """Creation times between each row's tenant creation and ``end``, and the
    order that sorts them (ids follow creation order, as a sequence does)."""
    lo = tenant_created[tenant - 1]
    created = lo + (sim.rng.random(len(tenant)) * (end - lo)).astype(np.int64)
    order = np.argsort(created, kind="stable")
    return created[order], tenant[order]


def touch_history(
    sim: Simulation, rows: Columns, created: np.ndarray, end: int, null_share: float
) -> Columns:
    """History rows were edited since creation; some predate the updated_at column."""
    rng, n = sim.rng, len(created)
    updated = created + (rng.random(n) ** 3 * (end - created)).astype(np.int64)
    return {**rows, "updated_at": timestamps(np.where(rng.random(n) < null_share, -1, updated))}


def history_customers(sim: Simulation, tenant_created: np.ndarray, end: int) -> None:
    log = sim.logs["core_customer"]
    n = sim.counts["core_customer"]
    created, tenant = created_after_tenant(
        sim, spread_over_tenants(sim.rng, sim.tenants, n), tenant_created, end
    )
    rows = customer_rows(sim, log.allocate(n), tenant, created)
    log.write("I", touch_history(sim, rows, created, end, 0.3), created, STATE_PERIOD)


def history_products(sim: Simulation, tenant_created: np.ndarray, end: int) -> None:
    log = sim.logs["core_product"]
    n = sim.counts["core_product"]
    created, tenant = created_after_tenant(
        sim, spread_over_tenants(sim.rng, sim.tenants, n), tenant_created, end
    )
    rows = product_rows(sim, log.allocate(n), tenant, created)
    log.write("I", touch_history(sim, rows, created, end, 0.2), created, STATE_PERIOD)


def history_orders(
    sim: Simulation, customers: CustomerPool, products: ProductPool, end: int
) -> None:
    """Orders skewed to recent days, their status following their age. The last few
    orders are placed while DMS starts (see ``preload_changes``)."""
    rng = sim.rng
    n = sim.counts["core_order"] - overlap_orders(sim)
    age = (ORDER_HISTORY_DAYS * DAY * rng.random(n) ** 2).astype(np.int64)
    created = np.sort(end - age)
    new = order_rows(sim, sim.logs["core_order"].allocate(n), created, customers, products)
    status = np.empty(n, object)
    band = np.searchsorted(ORDER_AGE_BANDS_DAYS, (end - created) / DAY, side="right")
    for index, (labels, weights) in enumerate(ORDER_STATUS_BY_AGE):
        status[band == index] = categorical(rng, labels, weights, int((band == index).sum()))
    orders = {**new.orders, "status": pa.array(status, pa.string())}
    orders = touch_history(sim, orders, created, end, 0.0)
    sim.logs["core_order"].write("I", orders, created, STATE_PERIOD)
    sim.logs["core_orderitem"].write("I", new.items, created[new.item_order], STATE_PERIOD)


def history_events(
    sim: Simulation, customers: CustomerPool, products: ProductPool, end: int
) -> None:
    log = sim.logs["core_event"]
    ids = log.allocate(sim.counts["core_event"])
    columns, occurred = event_rows(
        sim, ids, (end - EVENT_HISTORY_DAYS * DAY, end), customers, products
    )
    log.write("I", columns, occurred, STATE_PERIOD)


def history_subscriptions(sim: Simulation, customers: CustomerPool, end: int) -> None:
    rng = sim.rng
    n = sim.counts["core_subscription"]
    index = rng.integers(0, len(customers.ids), n)
    lo = customers.created_us[index]
    created = lo + (rng.random(n) * (end - lo)).astype(np.int64)
    order = np.argsort(created, kind="stable")
    created, index = created[order], index[order]
    recent = (end - created) < 30 * DAY
    status = np.where(
        recent & (rng.random(n) < 0.4),
        "trialing",
        categorical(rng, ("active", "past_due", "canceled"), (0.78, 0.05, 0.17), n),
    )
    plans = Plans.draw(rng, n)
    log = sim.logs["core_subscription"]
    rows = subscription_rows(
        log.allocate(n), customers.ids[index], customers.tenant_ids[index], plans, status, created
    )
    # Paying subscriptions renew within one period from the start day; canceled
    # ones ended when they were canceled.
    canceled_at = created + (rng.random(n) * (end - created)).astype(np.int64)
    start_day = sim.start_us // DAY
    period_end = np.select(
        [status == "trialing", status == "canceled", status == "past_due"],
        [created // DAY + TRIAL_DAYS, canceled_at // DAY, start_day - rng.integers(1, 10, n)],
        start_day + 1 + (rng.random(n) * plans.period_days).astype(np.int64),
    )
    rows = {
        **rows,
        "current_period_end": dates(period_end),
        "canceled_at": timestamps(np.where(status == "canceled", canceled_at, -1)),
    }
    log.write("I", touch_history(sim, rows, created, end, 0.1), created, STATE_PERIOD)


def history_invoices(sim: Simulation, customers: CustomerPool, end: int) -> None:
    """Most invoices bill a subscription; the rest are one-off charges."""
    rng = sim.rng
    n = sim.counts["core_invoice"]
    subscriptions = sim.logs["core_subscription"].current(sim.logs["core_subscription"].live_ids())
    billed = rng.random(n) < 0.8
    sub_index = rng.integers(0, subscriptions.num_rows, n)
    customer_index = rng.integers(0, len(customers.ids), n)
    by_customer = {
        "tenant": customers.tenant_ids[customer_index],
        "customer": customers.ids[customer_index],
        "lo": customers.created_us[customer_index],
        "amount": rng.integers(1_000, 200_000, n),
    }
    by_subscription = {
        "tenant": int_values(subscriptions, "tenant_id")[sub_index],
        "customer": int_values(subscriptions, "customer_id")[sub_index],
        "lo": int_values(subscriptions, "created_at")[sub_index],
        "amount": cent_values(subscriptions, "price")[sub_index]
        * int_values(subscriptions, "quantity")[sub_index],
    }
    chosen = {key: np.where(billed, by_subscription[key], by_customer[key]) for key in by_customer}
    created = chosen["lo"] + (rng.random(n) * (end - chosen["lo"])).astype(np.int64)
    order = np.argsort(created, kind="stable")
    created = created[order]
    recent = (end - created) < 14 * DAY
    status = np.where(
        recent,
        categorical(rng, ("open", "paid", "draft"), (0.5, 0.4, 0.1), n),
        categorical(rng, ("paid", "void", "uncollectible", "open"), (0.9, 0.04, 0.03, 0.03), n),
    )
    paid_us = np.minimum(created + (rng.random(n) * 10 * DAY).astype(np.int64), end - HOUR)
    draft = InvoiceDraft(
        tenant=chosen["tenant"][order],
        customer=chosen["customer"][order],
        subscription=np.where(billed, int_values(subscriptions, "id")[sub_index], 0)[order],
        amount_cents=chosen["amount"][order],
        status=status,
        created_us=created,
        paid_us=paid_us,
    )
    log = sim.logs["core_invoice"]
    log.write("I", invoice_rows(sim, log.allocate(n), draft), created, STATE_PERIOD)
