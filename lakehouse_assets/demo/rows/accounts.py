"""Rows of tenants and customers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.values import Columns, ints, json_text, nullify, pick, timestamps
from lakehouse_assets.demo.vocabulary import (
    BILLING_CUTOFFS_US,
    COUNTRIES,
    CUSTOMER_METADATA,
    EMAIL_DOMAINS,
    FIRST_NAME_ASCII,
    FIRST_NAME_TEXT,
    FIRST_NAMES,
    LAST_NAMES,
    TAGLINES,
    TENANT_PLANS,
    TENANTS,
    UNUSUAL_NAMES,
)


def tenant_rows(sim: Simulation, ids: np.ndarray, created_us: np.ndarray) -> Columns:
    rng, n = sim.rng, len(ids)
    profile = [TENANTS[(i - 1) % len(TENANTS)] for i in ids]
    # Tenants beyond the eight named ones repeat a name with a number.
    suffix = ["" if i <= len(TENANTS) else f" {(i - 1) // len(TENANTS) + 1}" for i in ids]
    settings = [
        json_text(
            {
                "timezone": tz,
                "features": {"sso": bool(rng.random() < 0.5), "beta": bool(rng.random() < 0.3)},
                "branding": {"tagline": TAGLINES[rng.integers(len(TAGLINES))], "color": "#1f6feb"},
            }
        )
        for _, _, _, tz in profile
    ]
    updated = created_us + (rng.random(n) * (sim.start_us - created_us)).astype(np.int64)
    return {
        "id": ints(ids),
        "name": pa.array([p[0] + s for p, s in zip(profile, suffix)]),
        "slug": pa.array([p[1] + s.replace(" ", "-") for p, s in zip(profile, suffix)]),
        "plan": pick(pa.array(TENANT_PLANS), rng, n),
        "settings": nullify(pa.array(settings), rng.random(n) < 0.15),
        "is_active": pa.array(rng.random(n) < 0.9),
        "billing_cutoff": nullify(
            pa.array(
                np.array(BILLING_CUTOFFS_US)[rng.integers(0, len(BILLING_CUTOFFS_US), n)],
                pa.time64("us"),
            ),
            rng.random(n) < 0.2,
        ),
        "created_at": timestamps(created_us),
        "updated_at": timestamps(np.where(rng.random(n) < 0.25, -1, updated)),
    }


def customer_rows(
    sim: Simulation, ids: np.ndarray, tenant_ids: np.ndarray, created_us: np.ndarray
) -> Columns:
    rng, n = sim.rng, len(ids)
    first = rng.integers(0, len(FIRST_NAMES), n)
    names = pc.binary_join_element_wise(FIRST_NAME_TEXT.take(first), pick(LAST_NAMES, rng, n), " ")
    names = pc.if_else(pa.array(rng.random(n) < 0.03), pick(UNUSUAL_NAMES, rng, n), names)
    local = pc.binary_join_element_wise(
        FIRST_NAME_ASCII.take(first), ints(ids).cast(pa.string()), "."
    )
    return {
        "id": ints(ids),
        "tenant_id": ints(tenant_ids),
        "email": nullify(
            pc.binary_join_element_wise(local, pick(EMAIL_DOMAINS, rng, n), "@"),
            rng.random(n) < 0.03,
        ),
        "full_name": nullify(names, rng.random(n) < 0.02),
        "country": pick(COUNTRIES, rng, n, null_share=0.05),
        "metadata": pick(CUSTOMER_METADATA, rng, n, null_share=0.3),
        "created_at": timestamps(created_us),
        "updated_at": timestamps(created_us),
    }
