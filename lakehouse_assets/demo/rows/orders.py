"""Rows of new orders and their items."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lakehouse_assets.demo.pools import CustomerPool, ProductPool
from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.values import Columns, ints, join, money, nullify, pick, timestamps
from lakehouse_assets.demo.vocabulary import (
    CURRENCIES,
    ITEM_QUANTITIES,
    ORDER_CHANNELS,
    ORDER_METADATA_EXTRAS,
    ORDER_NOTES,
    ORDER_PRIORITIES,
)
from lakehouse_assets.demo.volumes import EXTRA_ITEMS_PER_ORDER


@dataclass(frozen=True)
class NewOrders:
    orders: Columns
    items: Columns
    item_order: np.ndarray  # index of each item's order, for sharing its commit time


def order_rows(
    sim: Simulation,
    ids: np.ndarray,
    created_us: np.ndarray,
    customers: CustomerPool,
    products: ProductPool,
) -> NewOrders:
    """Pending orders with their items (item ids are allocated here, in order)."""
    rng, n = sim.rng, len(ids)
    customer, tenant = customers.pick(rng, created_us, anonymous_share=0.03)
    item_order = np.repeat(np.arange(n), 1 + rng.poisson(EXTRA_ITEMS_PER_ORDER, n))
    m = len(item_order)
    product, unit_cents = products.pick(rng, tenant[item_order])
    quantity = ITEM_QUANTITIES[rng.integers(0, len(ITEM_QUANTITIES), m)]
    line_cents = quantity * unit_cents
    kind = rng.random(m)
    discount = np.where(kind < 0.2, np.rint(line_cents * rng.uniform(0.05, 0.2, m)), 0).astype(
        np.int64
    )
    total = np.rint(np.bincount(item_order, weights=line_cents - discount, minlength=n)).astype(
        np.int64
    )
    item_counts = np.bincount(item_order, minlength=n)
    metadata = join(
        '{"channel":"',
        pick(ORDER_CHANNELS, rng, n),
        '","items":',
        ints(item_counts).cast(pa.string()),
        pick(ORDER_METADATA_EXTRAS, rng, n),
        "}",
    )
    orders = {
        "id": ints(ids),
        "tenant_id": ints(tenant),
        "customer_id": ints(customer, null=customer == 0),
        "status": pa.repeat("pending", n),
        "currency": CURRENCIES.take((tenant - 1) % len(CURRENCIES)),
        "total": money(total),
        "priority": ints(
            ORDER_PRIORITIES[rng.integers(0, len(ORDER_PRIORITIES), n)], null=rng.random(n) < 0.2
        ),
        "notes": pick(ORDER_NOTES, rng, n, null_share=0.88),
        "metadata": nullify(metadata, rng.random(n) < 0.05),
        "created_at": timestamps(created_us),
        "updated_at": timestamps(created_us),
    }
    items = {
        "id": ints(sim.logs["core_orderitem"].allocate(m)),
        "tenant_id": ints(tenant[item_order]),
        "order_id": ints(ids[item_order]),
        "product_id": ints(product, null=product == 0),
        "quantity": ints(quantity),
        "unit_price": money(unit_cents),
        # A NULL discount is an item priced before discounts existed.
        "discount": money(discount, null=kind > 0.9),
        "created_at": timestamps(created_us[item_order]),
    }
    return NewOrders(orders, items, item_order)
