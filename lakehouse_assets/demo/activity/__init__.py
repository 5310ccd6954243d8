"""The source's activity: one period of the demo database (a CDC day, the minutes of a live
full load, an interval of the stream) as transactions of each table."""

from __future__ import annotations

from lakehouse_assets.demo.activity.accounts import (
    add_customers,
    delete_spam_customers,
    update_customers,
    update_tenant_settings,
)
from lakehouse_assets.demo.activity.events import add_events, purge_bot_events
from lakehouse_assets.demo.activity.invoices import add_one_off_invoices, settle_invoices
from lakehouse_assets.demo.activity.orders import (
    add_orders,
    advance_orders,
    delete_cancelled_orders,
    edit_pending_orders,
)
from lakehouse_assets.demo.activity.products import add_products, edit_products
from lakehouse_assets.demo.activity.subscriptions import (
    add_subscriptions,
    advance_subscriptions,
    renew_subscriptions,
)
from lakehouse_assets.demo.edge_cases import craft_edge_cases
from lakehouse_assets.demo.period import Period
from lakehouse_assets.demo.simulation import Simulation


def simulate_day(sim: Simulation, day: int) -> None:
    """One business day. A day cut at the moment of the run gets no crafted edge cases:
    their times are fixed hours of the day."""
    sim.begin_day(day)
    if not sim.is_cut(day):
        craft_edge_cases(sim, day)
    simulate_activity(sim, sim.day_period(day))


def simulate_activity(sim: Simulation, period: Period) -> None:
    """One period of business as transactions. Deletes come first (after a day's edge
    cases), so the pools new rows reference from leave out the keys they touch."""
    purge_bot_events(sim, period)
    delete_spam_customers(sim, period)
    delete_cancelled_orders(sim, period)
    customers, products = sim.customer_pool(period.number), sim.product_pool()
    update_tenant_settings(sim, period)
    update_customers(sim, period)
    edit_products(sim, period)
    advance_orders(sim, period)
    edit_pending_orders(sim, period)
    advance_subscriptions(sim, period)
    renew_subscriptions(sim, period)
    settle_invoices(sim, period)
    add_customers(sim, period)
    add_products(sim, period)
    add_orders(sim, period, customers, products)
    add_subscriptions(sim, period, customers)
    add_one_off_invoices(sim, period, customers)
    add_events(sim, period, customers, products)
