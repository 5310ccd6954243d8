"""Activity of tenants and customers: settings, profile edits, sign-ups, spam."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.demo.period import Period
from lakehouse_assets.demo.rows.accounts import customer_rows
from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.values import (
    int_values,
    ints,
    join,
    json_text,
    pick,
    replaced,
    text_values,
    timestamps,
)
from lakehouse_assets.demo.vocabulary import CUSTOMER_METADATA, EMAIL_DOMAINS, TENANTS


def unreferenced_customers(sim: Simulation, ids: np.ndarray) -> np.ndarray:
    """The customers of ``ids`` that no live order, subscription or invoice references."""
    referenced = np.zeros(sim.logs["core_customer"].next_id, bool)
    for table in ("core_order", "core_subscription", "core_invoice"):
        other = sim.logs[table]
        referenced[int_values(other.current(other.live_ids()), "customer_id").clip(0)] = True
    return ids[~referenced[ids]]


def delete_spam_customers(sim: Simulation, period: Period) -> None:
    """Spam sign-ups that never ordered, subscribed or got invoiced are deleted."""
    log = sim.logs["core_customer"]
    candidates = unreferenced_customers(sim, log.untouched(log.live_ids(), period.number))
    spam = sim.sample(candidates, period.scaled(0.01))
    log.delete(spam, sim.commit_times(len(spam), period), period.number)


def update_tenant_settings(sim: Simulation, period: Period) -> None:
    """Tenant admins toggle the beta features flag now and then."""
    log = sim.logs["core_tenant"]
    ids = sim.sample(log.untouched(log.live_ids(), period.number), period.scaled(0.3))
    rows = log.current(ids)
    settings = []
    for tenant_id, text in zip(ids, text_values(rows, "settings")):
        value = json.loads(text) if text else {}
        features = value.setdefault("features", {})
        features["beta"] = not features.get("beta", False)
        value["updated_by"] = f"admin@{TENANTS[(tenant_id - 1) % len(TENANTS)][1]}.example"
        settings.append(json_text(value))
    at = sim.commit_times(len(ids), period)
    log.write(
        "U",
        replaced(rows, settings=pa.array(settings, pa.string()), updated_at=timestamps(at)),
        at,
        period.number,
    )


def update_customers(sim: Simulation, period: Period) -> None:
    """Profile edits: new metadata, sometimes a new e-mail address."""
    rng, log = sim.rng, sim.logs["core_customer"]
    ids = sim.sample(log.untouched(log.live_ids(), period.number), period.scaled(0.01))
    rows = log.current(ids)
    n = len(ids)
    at = sim.commit_times(n, period)
    new_email = pc.binary_join_element_wise(
        join("customer", ints(ids).cast(pa.string())), pick(EMAIL_DOMAINS, rng, n), "@"
    )
    email = pc.if_else(pa.array(rng.random(n) < 0.3), new_email, rows["email"].combine_chunks())
    log.write(
        "U",
        replaced(
            rows,
            email=email,
            metadata=pick(CUSTOMER_METADATA, rng, n, null_share=0.1),
            updated_at=timestamps(at),
        ),
        at,
        period.number,
    )


def add_customers(sim: Simulation, period: Period) -> None:
    log = sim.logs["core_customer"]
    n = sim.new_rows("core_customer", period)
    at = sim.commit_times(n, period)
    tenant = sim.rng.integers(1, sim.tenants + 1, n)
    log.write("I", customer_rows(sim, log.allocate(n), tenant, at), at, period.number)
