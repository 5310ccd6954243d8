"""Daily activity of invoices: billing subscriptions, payments, write-offs, one-off charges."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lakehouse_assets.demo.clock import DAY
from lakehouse_assets.demo.pools import CustomerPool
from lakehouse_assets.demo.rows.invoices import InvoiceDraft, invoice_rows
from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.values import (
    cent_values,
    dates,
    int_values,
    money,
    replaced,
    text_values,
    timestamps,
)


def bill_subscriptions(
    sim: Simulation, day: int, rows: pa.Table, at: np.ndarray, paid: bool
) -> None:
    n = rows.num_rows
    draft = InvoiceDraft(
        tenant=int_values(rows, "tenant_id"),
        customer=int_values(rows, "customer_id"),
        subscription=int_values(rows, "id"),
        amount_cents=cent_values(rows, "price") * int_values(rows, "quantity"),
        status=np.full(n, "paid" if paid else "open", object),
        created_us=at,
        paid_us=at if paid else np.full(n, -1),
    )
    invoices = sim.logs["core_invoice"]
    # Issued within the transaction: issued_at equals the commit time.
    columns = {**invoice_rows(sim, invoices.allocate(n), draft), "issued_at": timestamps(at)}
    if paid:
        columns.update(paid_at=timestamps(at), updated_at=timestamps(at))
    invoices.write("I", columns, at, day)


def settle_invoices(sim: Simulation, day: int) -> None:
    """Open invoices get paid or written off; drafts get issued or discarded."""
    rng, log = sim.rng, sim.logs["core_invoice"]
    live = log.untouched(log.live_ids(), day)
    rows = log.current(live)
    status = text_values(rows, "status")
    overdue = int_values(rows, "due_date") < sim.day_start(day) // DAY
    roll = rng.random(len(live))
    paying = live[(status == "open") & (roll < 0.35)]
    writing_off = live[(status == "open") & overdue & (roll >= 0.35) & (roll < 0.4)]
    issuing = live[(status == "draft") & (roll < 0.5)]
    discarding = live[(status == "draft") & (roll >= 0.5) & (roll < 0.6)]

    paid = log.current(paying)
    at = sim.commit_times(len(paying), day)
    log.write(
        "U",
        replaced(
            paid,
            status=pa.repeat("paid", len(paying)),
            amount_paid=paid["amount_due"],
            paid_at=timestamps(at),
            updated_at=timestamps(at),
        ),
        at,
        day,
    )
    at = sim.commit_times(len(writing_off), day)
    log.write(
        "U",
        replaced(
            log.current(writing_off),
            status=pa.repeat("uncollectible", len(writing_off)),
            updated_at=timestamps(at),
        ),
        at,
        day,
    )
    at = sim.commit_times(len(issuing), day)
    log.write(
        "U",
        replaced(
            log.current(issuing),
            status=pa.repeat("open", len(issuing)),
            amount_paid=money(np.zeros(len(issuing), np.int64)),
            issued_at=timestamps(at),
            due_date=dates(at // DAY + 14),
            updated_at=timestamps(at),
        ),
        at,
        day,
    )
    log.delete(discarding, sim.commit_times(len(discarding), day), day)


def add_one_off_invoices(sim: Simulation, day: int, customers: CustomerPool) -> None:
    rng, log = sim.rng, sim.logs["core_invoice"]
    n = sim.daily_new("core_invoice") if len(customers.ids) else 0
    at = sim.commit_times(n, day)
    customer, tenant = customers.pick(rng, at, anonymous_share=0.0)
    draft = InvoiceDraft(
        tenant=tenant,
        customer=customer,
        subscription=np.zeros(n, np.int64),
        amount_cents=rng.integers(1_000, 200_000, n),
        status=np.where(rng.random(n) < 0.3, "draft", "open").astype(object),
        created_us=at,
        paid_us=np.full(n, -1),
    )
    log.write("I", invoice_rows(sim, log.allocate(n), draft), at, day)
