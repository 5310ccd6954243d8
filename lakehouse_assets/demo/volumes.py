"""How much the demo database holds and how busy it is: row counts, file sizes, daily shares."""

from __future__ import annotations

DEMO_TABLES = (
    "core_tenant",
    "core_customer",
    "core_product",
    "core_order",
    "core_orderitem",
    "core_event",
    "core_subscription",
    "core_invoice",
)
# Full-load row counts at scale 1; order items follow from the orders.
SEED_COUNTS = {
    "core_tenant": 8,
    "core_customer": 6_400,
    "core_product": 800,
    "core_order": 47_750,
    "core_event": 293_339,
    "core_subscription": 1_920,
    "core_invoice": 10_000,
}
MIN_ROWS = 5
# Items per order are 1 + Poisson: about 153,600 items for 47,750 orders.
EXTRA_ITEMS_PER_ORDER = 153_600 / 47_750 - 1
# DMS cuts full-load files by size; the demo cuts by rows, scaled with the
# data so every scale gets the same layout (core_event spans 15 LOAD files).
LOAD_FILE_ROWS = 20_000
MIN_LOAD_FILE_ROWS = 100
EVENTS_PER_DAY = 40_000
EVENT_HISTORY_DAYS = 7
ORDER_HISTORY_DAYS = 540
# Deletes of these tables carry only the key (REPLICA IDENTITY DEFAULT); the
# others run with REPLICA IDENTITY FULL and carry the before-image.
KEY_ONLY_DELETES = frozenset({"core_customer", "core_orderitem", "core_event"})

# Daily activity, as a share of the table's scaled seed count (new rows) or of
# the candidate rows (changes).
NEW_SHARE = {
    "core_customer": 0.015,
    "core_product": 0.004,
    "core_order": 0.03,
    "core_subscription": 0.01,
    "core_invoice": 0.004,
}
ORDER_TRANSITIONS: dict[str, tuple[tuple[str, float], ...]] = {
    "pending": (("paid", 0.55), ("cancelled", 0.05)),
    "paid": (("shipped", 0.5), ("refunded", 0.01)),
    "shipped": (("delivered", 0.45),),
    "delivered": (("refunded", 0.002),),
}


def load_file_rows(scale: float) -> int:
    """Rows per full-load file at ``scale``."""
    return max(MIN_LOAD_FILE_ROWS, min(LOAD_FILE_ROWS, round(LOAD_FILE_ROWS * scale)))


def scaled_counts(scale: float) -> dict[str, int]:
    counts = {name: max(MIN_ROWS, round(count * scale)) for name, count in SEED_COUNTS.items()}
    counts["core_tenant"] = max(1, round(SEED_COUNTS["core_tenant"] * scale))
    return counts
