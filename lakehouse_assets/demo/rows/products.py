"""Rows of products, with shop prices."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.values import (
    Columns,
    digits,
    ints,
    join,
    money,
    nullify,
    pick,
    timestamps,
)
from lakehouse_assets.demo.vocabulary import (
    PRICE_CENTS_ENDINGS,
    PRODUCT_ADJECTIVES,
    PRODUCT_ATTRIBUTES,
    PRODUCT_CATEGORIES,
    PRODUCT_DESCRIPTIONS,
    PRODUCT_KIND_NAMES,
    PRODUCT_KINDS,
)


def product_rows(
    sim: Simulation, ids: np.ndarray, tenant_ids: np.ndarray, created_us: np.ndarray
) -> Columns:
    rng, n = sim.rng, len(ids)
    kind = rng.integers(0, len(PRODUCT_KINDS), n)
    return {
        "id": ints(ids),
        "tenant_id": ints(tenant_ids),
        "sku": join("SKU-", digits(ids, 6)),
        "name": pc.binary_join_element_wise(
            pick(PRODUCT_ADJECTIVES, rng, n), PRODUCT_KIND_NAMES.take(kind), " "
        ),
        "description": pick(PRODUCT_DESCRIPTIONS, rng, n, null_share=0.2),
        "category": PRODUCT_CATEGORIES.take(kind),
        "price": money(price_cents(rng, rng.integers(2, 500, n))),
        "weight_grams": ints(rng.integers(50, 5_000, n), null=rng.random(n) < 0.1),
        "rating": nullify(
            pa.array(np.round(rng.uniform(1, 5, n), 1).astype(np.float32)), rng.random(n) < 0.15
        ),
        "is_active": pa.array(rng.random(n) < 0.93),
        "attributes": pick(PRODUCT_ATTRIBUTES, rng, n, null_share=0.25),
        "created_at": timestamps(created_us),
        "updated_at": timestamps(created_us),
    }


def price_cents(rng: np.random.Generator, whole: np.ndarray) -> np.ndarray:
    """Shop prices: whole units with the usual endings (.00, .50, .99, .95, .49) or any cents."""
    endings = np.where(
        rng.random(len(whole)) < 0.8,
        PRICE_CENTS_ENDINGS[rng.integers(0, len(PRICE_CENTS_ENDINGS), len(whole))],
        rng.integers(0, 100, len(whole)),
    )
    return whole * 100 + endings
