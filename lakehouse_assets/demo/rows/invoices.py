"""Rows of invoices, from what decides them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lakehouse_assets.demo.clock import DAY, HOUR
from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.values import Columns, dates, digits, ints, join, money, timestamps
from lakehouse_assets.demo.vocabulary import CURRENCIES


@dataclass(frozen=True)
class InvoiceDraft:
    """What decides an invoice; the rest of its row follows from these."""

    tenant: np.ndarray
    customer: np.ndarray
    subscription: np.ndarray  # 0: a one-off invoice
    amount_cents: np.ndarray
    status: np.ndarray
    created_us: np.ndarray
    paid_us: np.ndarray  # -1: unpaid


def invoice_rows(sim: Simulation, ids: np.ndarray, draft: InvoiceDraft) -> Columns:
    rng, n = sim.rng, len(ids)
    paid = draft.status == "paid"
    # Drafts and void invoices owe nothing yet; open ones have paid nothing so far.
    unpaid_null = np.isin(draft.status, ["draft", "void"])
    issued = draft.created_us + rng.integers(0, 2 * HOUR, n)
    return {
        "id": ints(ids),
        "tenant_id": ints(draft.tenant),
        "customer_id": ints(draft.customer),
        "subscription_id": ints(draft.subscription, null=draft.subscription == 0),
        "number": join("INV-", digits(ids, 7)),
        "status": pa.array(draft.status, pa.string()),
        "currency": CURRENCIES.take((draft.tenant - 1) % len(CURRENCIES)),
        "amount_due": money(draft.amount_cents),
        "amount_paid": money(np.where(paid, draft.amount_cents, 0), null=unpaid_null),
        "issued_at": timestamps(issued),
        "due_date": dates(issued // DAY + np.where(rng.random(n) < 0.7, 14, 30)),
        "paid_at": timestamps(np.where(paid, np.maximum(draft.paid_us, issued), -1)),
        "created_at": timestamps(draft.created_us),
        "updated_at": timestamps(
            np.where(paid, np.maximum(draft.paid_us, issued), draft.created_us)
        ),
    }
