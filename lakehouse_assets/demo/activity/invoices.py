"""Activity of invoices: billing subscriptions, payments, write-offs, one-off charges."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lakehouse_assets.demo.clock import DAY
from lakehouse_assets.demo.period import Period
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
    sim: Simulation, period: Period, rows: pa.Table, at: np.ndarray, paid: bool
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
    invoices.write("I", columns, at, period.number)


def settle_invoices(sim: Simulation, period: Period) -> None:
    """Open invoices get paid or written off; drafts get issued or discarded."""
    rng, log = sim.rng, sim.logs["core_invoice"]
    live = log.untouched(log.live_ids(), period.number)
    rows = log.current(live)
    status = text_values(rows, "status")
    overdue = int_values(rows, "due_date") < period.today
    roll = rng.random(len(live))
    pay, write_off, issue, discard = (period.scaled(p) for p in (0.35, 0.4, 0.5, 0.6))
    paying = live[(status == "open") & (roll < pay)]
    writing_off = live[(status == "open") & overdue & (roll >= pay) & (roll < write_off)]
    issuing = live[(status == "draft") & (roll < issue)]
    discarding = live[(status == "draft") & (roll >= issue) & (roll < discard)]

    paid = log.current(paying)
    at = sim.commit_times(len(paying), period)
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
        period.number,
    )
    at = sim.commit_times(len(writing_off), period)
    log.write(
        "U",
        replaced(
            log.current(writing_off),
            status=pa.repeat("uncollectible", len(writing_off)),
            updated_at=timestamps(at),
        ),
        at,
        period.number,
    )
    at = sim.commit_times(len(issuing), period)
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
        period.number,
    )
    log.delete(discarding, sim.commit_times(len(discarding), period), period.number)


def add_one_off_invoices(sim: Simulation, period: Period, customers: CustomerPool) -> None:
    rng, log = sim.rng, sim.logs["core_invoice"]
    n = sim.new_rows("core_invoice", period) if len(customers.ids) else 0
    at = sim.commit_times(n, period)
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
    log.write("I", invoice_rows(sim, log.allocate(n), draft), at, period.number)
