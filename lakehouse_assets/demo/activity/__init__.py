"""Daily activity: one CDC day of the demo database, as transactions of each table."""

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
from lakehouse_assets.demo.simulation import Simulation


def simulate_day(sim: Simulation, day: int) -> None:
    """One business day as transactions. Edge cases and deletes come first, so the
    pools new rows reference from leave out the keys they touch."""
    sim.begin_day(day)
    craft_edge_cases(sim, day)
    purge_bot_events(sim, day)
    delete_spam_customers(sim, day)
    delete_cancelled_orders(sim, day)
    customers, products = sim.customer_pool(day), sim.product_pool()
    update_tenant_settings(sim, day)
    update_customers(sim, day)
    edit_products(sim, day)
    advance_orders(sim, day)
    edit_pending_orders(sim, day)
    advance_subscriptions(sim, day)
    renew_subscriptions(sim, day)
    settle_invoices(sim, day)
    add_customers(sim, day)
    add_products(sim, day)
    add_orders(sim, day, customers, products)
    add_subscriptions(sim, day, customers)
    add_one_off_invoices(sim, day, customers)
    add_events(sim, day, customers, products)
