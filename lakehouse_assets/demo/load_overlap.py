"""The full load overlapping CDC: commits DMS captures while it starts, on the start day."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lakehouse_assets.demo.clock import OVERLAP_WINDOW
from lakehouse_assets.demo.rows.orders import order_rows
from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.values import replaced, text_values, timestamps


def overlap_orders(sim: Simulation) -> int:
    """Orders placed while DMS starts: in the full load and in the first CDC files."""
    return min(max(2, round(sim.counts["core_order"] * 0.0005)), sim.counts["core_order"] - 1)


def preload_changes(sim: Simulation) -> None:
    """Commits on the start day just before the full load reads the tables (day 1).

    DMS captures them from the log and writes them into the first CDC files of
    day 2, although the load, which runs later, already reflects them: the
    full load overlaps CDC.
    """
    rng, day = sim.rng, 1
    lo, hi = (sim.start_us + offset for offset in OVERLAP_WINDOW)
    orders = sim.logs["core_order"]
    pending = orders.live_ids()[
        text_values(orders.current(orders.live_ids()), "status") == "pending"
    ]
    k = overlap_orders(sim)
    updated = np.sort(rng.choice(pending, size=min(k, len(pending)), replace=False))
    times = np.sort(sim.coarsen(rng.integers(lo, hi, len(updated)), lo))
    orders.write(
        "U",
        replaced(
            orders.current(updated),
            status=pa.repeat("paid", len(updated)),
            updated_at=timestamps(times),
        ),
        times,
        day,
    )
    ids = orders.allocate(k)
    created = np.sort(sim.coarsen(rng.integers(lo, hi, k), lo))
    new = order_rows(sim, ids, created, sim.customer_pool(day), sim.product_pool())
    orders.write("I", new.orders, created, day)
    sim.logs["core_orderitem"].write("I", new.items, created[new.item_order], day)
    sim.edge_cases["load_overlap"] = {
        "table": "core_order",
        "inserted_ids": ids.tolist(),
        "updated_ids": updated.tolist(),
    }
