"""Activity of products: price edits, deactivations, ratings, new products."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.demo.period import Period
from lakehouse_assets.demo.rows.products import price_cents, product_rows
from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.values import cent_values, money, replaced, timestamps


def edit_products(sim: Simulation, period: Period) -> None:
    """Price edits, a few deactivations and fresh ratings."""
    rng, log = sim.rng, sim.logs["core_product"]
    ids = sim.sample(log.untouched(log.live_ids(), period.number), period.scaled(0.02))
    rows = log.current(ids)
    n = len(ids)
    at = sim.commit_times(n, period)
    old_price = cent_values(rows, "price")
    new_price = price_cents(
        rng, np.maximum(1, (old_price * rng.uniform(0.8, 1.25, n)) // 100).astype(np.int64)
    )
    active = pc.and_(rows["is_active"].combine_chunks(), pa.array(rng.random(n) >= 0.1))
    rating = pa.array(np.round(rng.uniform(1, 5, n), 1).astype(np.float32))
    log.write(
        "U",
        replaced(
            rows, price=money(new_price), is_active=active, rating=rating, updated_at=timestamps(at)
        ),
        at,
        period.number,
    )


def add_products(sim: Simulation, period: Period) -> None:
    log = sim.logs["core_product"]
    n = sim.new_rows("core_product", period)
    at = sim.commit_times(n, period)
    tenant = sim.rng.integers(1, sim.tenants + 1, n)
    log.write("I", product_rows(sim, log.allocate(n), tenant, at), at, period.number)
