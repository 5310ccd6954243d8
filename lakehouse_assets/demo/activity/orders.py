"""Activity of orders: status changes, edits before payment, new orders, clean-up."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lakehouse_assets.demo.period import Period
from lakehouse_assets.demo.pools import CustomerPool, ProductPool
from lakehouse_assets.demo.rows.orders import order_rows
from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.values import (
    cent_values,
    int_values,
    ints,
    money,
    replaced,
    text_values,
    timestamps,
)
from lakehouse_assets.demo.volumes import ORDER_TRANSITIONS


def delete_cancelled_orders(sim: Simulation, period: Period) -> None:
    """Cancelled orders are cleaned up with their items, one transaction per order."""
    orders, items = sim.logs["core_order"], sim.logs["core_orderitem"]
    live = orders.untouched(orders.live_ids(), period.number)
    cancelled = sim.sample(
        live[text_values(orders.current(live), "status") == "cancelled"], period.scaled(0.3)
    )
    at = sim.commit_times(len(cancelled), period)
    item_ids = items.live_ids()
    item_order = int_values(items.current(item_ids), "order_id")
    doomed = np.isin(item_order, cancelled)
    orders.delete(cancelled, at, period.number)
    items.delete(
        item_ids[doomed], at[np.searchsorted(cancelled, item_order[doomed])], period.number
    )


def advance_orders(sim: Simulation, period: Period) -> None:
    """Orders move on: pending -> paid or cancelled, paid -> shipped, and so on."""
    rng, log = sim.rng, sim.logs["core_order"]
    live = log.untouched(log.live_ids(), period.number)
    status = text_values(log.current(live), "status")
    ids, new_status = [], []
    for current, moves in ORDER_TRANSITIONS.items():
        candidates = live[status == current]
        roll = rng.random(len(candidates))
        lower = 0.0
        for target, per_day in moves:
            share = period.scaled(per_day)
            moved = candidates[(roll >= lower) & (roll < lower + share)]
            ids.append(moved)
            new_status.append(np.full(len(moved), target, object))
            lower += share
    order = np.argsort(np.concatenate(ids), kind="stable")
    moved_ids = np.concatenate(ids)[order]
    at = sim.commit_times(len(moved_ids), period)
    log.write(
        "U",
        replaced(
            log.current(moved_ids),
            status=pa.array(np.concatenate(new_status)[order], pa.string()),
            updated_at=timestamps(at),
        ),
        at,
        period.number,
    )


def edit_pending_orders(sim: Simulation, period: Period) -> None:
    """A customer changes the quantity of an item before paying: the item and the
    order's total change in one transaction."""
    rng, orders, items = sim.rng, sim.logs["core_order"], sim.logs["core_orderitem"]
    live = orders.untouched(orders.live_ids(), period.number)
    edited = sim.sample(
        live[text_values(orders.current(live), "status") == "pending"], period.scaled(0.05)
    )
    item_ids = items.live_ids()
    item_rows = items.current(item_ids)
    item_order = int_values(item_rows, "order_id")
    # The first item of each edited order (items are stored in order id order).
    hits = np.flatnonzero(np.isin(item_order, edited))
    first = hits[np.unique(item_order[hits], return_index=True)[1]]
    edited = item_order[first]
    at = sim.commit_times(len(edited), period)
    quantity = int_values(item_rows, "quantity")[first]
    new_quantity = np.maximum(1, quantity + np.where(rng.random(len(first)) < 0.7, 1, -1))
    delta = (new_quantity - quantity) * cent_values(item_rows, "unit_price")[first]
    edited_items = item_ids[first]
    items.write(
        "U", replaced(items.current(edited_items), quantity=ints(new_quantity)), at, period.number
    )
    order_rows_now = orders.current(edited)
    orders.write(
        "U",
        replaced(
            order_rows_now,
            total=money(cent_values(order_rows_now, "total") + delta),
            updated_at=timestamps(at),
        ),
        at,
        period.number,
    )


def add_orders(
    sim: Simulation, period: Period, customers: CustomerPool, products: ProductPool
) -> None:
    """New orders, each inserted with its items in one transaction."""
    log = sim.logs["core_order"]
    n = sim.new_rows("core_order", period)
    at = sim.commit_times(n, period)
    new = order_rows(sim, log.allocate(n), at, customers, products)
    log.write("I", new.orders, at, period.number)
    sim.logs["core_orderitem"].write("I", new.items, at[new.item_order], period.number)
