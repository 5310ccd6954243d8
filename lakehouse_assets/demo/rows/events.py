"""Rows of tracking events, in browsing sessions."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.demo.clock import US
from lakehouse_assets.demo.pools import CustomerPool, ProductPool
from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.values import Columns, ints, join, nullify, pick, timestamps, uuid4s
from lakehouse_assets.demo.vocabulary import (
    EVENT_FIXED_URLS,
    EVENT_PROPERTIES,
    EVENT_TYPE_TEXT,
    EVENT_TYPES,
    EVENT_WEIGHTS,
    EVENTS_PER_SESSION,
    PAGE_URLS,
)


def event_rows(
    sim: Simulation,
    ids: np.ndarray,
    window_us: tuple[int, int],
    customers: CustomerPool,
    products: ProductPool,
) -> tuple[Columns, np.ndarray]:
    """Events of browsing sessions in ``window_us``, in time order; also their times."""
    rng, n = sim.rng, len(ids)
    lo, hi = window_us
    sessions = max(1, n // EVENTS_PER_SESSION)
    session = np.sort(rng.integers(0, sessions, n))
    rank = np.arange(n) - np.searchsorted(session, session)
    start = rng.integers(lo, hi, sessions)
    step = rng.integers(3 * US, 120 * US, sessions)
    occurred = np.minimum(start[session] + rank * step[session] + rng.integers(0, US, n), hi - 1)
    order = np.argsort(occurred, kind="stable")
    occurred, session = occurred[order], session[order]
    session_customer, session_tenant = customers.pick(rng, start, anonymous_share=0.3)
    customer, tenant = session_customer[session], session_tenant[session]
    kind = rng.choice(len(EVENT_TYPES), size=n, p=EVENT_WEIGHTS)
    product, _ = products.pick(rng, tenant)
    url = pc.if_else(
        pa.array(kind == EVENT_TYPES.index("page_view")),
        pick(PAGE_URLS, rng, n),
        pc.if_else(
            pa.array(kind == EVENT_TYPES.index("product_view")),
            join("/products/", ints(product).cast(pa.string())),
            EVENT_FIXED_URLS.take(kind),
        ),
    )
    duration = np.round(rng.lognormal(7, 1.2, n), 3)
    columns = {
        "id": ints(ids),
        "tenant_id": ints(tenant),
        "customer_id": ints(customer, null=customer == 0),
        "session_id": uuid4s(rng, sessions).take(session),
        "event_type": EVENT_TYPE_TEXT.take(kind),
        "url": nullify(url, rng.random(n) < 0.03),
        "duration_ms": nullify(pa.array(duration), rng.random(n) < 0.1),
        "properties": pick(EVENT_PROPERTIES, rng, n, null_share=0.25),
        "occurred_at": timestamps(occurred),
    }
    return columns, occurred
