"""Demo DMS source: a seeded Django SaaS database, replicated the way AWS DMS does it.

``generate`` simulates the source database (tenants, customers, products,
orders, order items, events, subscriptions, invoices) and writes what an AWS
DMS S3 target with the contract's ``dms:`` settings writes for it: a full load
on the start day, then CDC files day by day. The files carry the quirks the
pipeline must survive: one key going I -> U -> D -> I inside one file and
across days, rows redelivered after a task restart, a full load overlapping
CDC, and values with delimiters, quotes, newlines, unicode and NULLs.

Next to the files it writes the oracle: the final state of every source table
(``demo/expected/<table>.parquet``), which replaying the files must reproduce,
and ``demo/manifest.json`` with the arguments, counts and edge cases.

Model: every table is a change log (each insert, update and delete with its
commit time); the database state is, per id, a pointer to the id's live
version in that log. Everything random comes from one numpy Generator drawn in
a fixed order, so the same arguments give byte-identical files.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from gzip import compress as gzip_compress
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakehouse_assets.contracts import Contracts, DmsSettings, TableContract
from lakehouse_assets.dms.keys import date_folder, table_prefix
from lakehouse_assets.lake.store import LakeStore

Columns = Mapping[str, pa.Array | pa.ChunkedArray]

EXPECTED_PREFIX = "demo/expected/"
MANIFEST_KEY = "demo/manifest.json"

# --- time

US = 1_000_000
MINUTE = 60 * US
HOUR = 60 * MINUTE
DAY = 24 * HOUR
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Offsets within the start day: the app's history ends, then come the commits
# DMS captures while it starts (they reach the first CDC files although the
# full load already reflects them), then the full load itself.
HISTORY_END = 22 * HOUR
OVERLAP_WINDOW = (22 * HOUR + 30 * MINUTE, 23 * HOUR + 15 * MINUTE)
LOAD_WINDOW = (23 * HOUR + 20 * MINUTE, 23 * HOUR + 50 * MINUTE)
# Offsets within CDC days: commits fall in the activity window; DMS flushes a
# file per table around each flush hour and once more just before midnight,
# so every file of a day lands in that day's date folder.
ACTIVITY_WINDOW = (1 * MINUTE, 23 * HOUR + 58 * MINUTE)
FLUSH_HOURS = (4, 8, 12, 16, 20)
FLUSH_JITTER = 30 * MINUTE
LAST_FLUSH = 23 * HOUR + 59 * MINUTE
# The DMS task restarts on day 2 and writes the commits after its last
# checkpoint (this long before the first flush) again into the next file.
RESTART_DAY = 2
RESTART_BEFORE_FIRST_FLUSH = 30 * MINUTE

# --- volumes

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

# --- vocabularies


def json_text(value: Any) -> str:
    """Compact JSON as Django's JSONField stores it, unicode unescaped."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


TENANTS = (  # name, slug, currency, timezone
    ("Acme, Inc.", "acme", "USD", "America/New_York"),
    ("Café Olé SARL", "cafe-ole", "EUR", "Europe/Paris"),
    ("株式会社さくら", "sakura", "JPY", "Asia/Tokyo"),
    ("Rocket 🚀 Labs", "rocket-labs", "USD", "America/Los_Angeles"),
    ('The "Best" Shop', "best-shop", "GBP", "Europe/London"),
    ("Nordisk Design AS", "nordisk-design", "NOK", "Europe/Oslo"),
    ("Zürich Analytics AG", "zurich-analytics", "CHF", "Europe/Zurich"),
    ("São Paulo Imports Ltda.", "sao-paulo-imports", "BRL", "America/Sao_Paulo"),
)
TENANT_PLANS = ("starter", "growth", "enterprise")
TAGLINES = (
    'We "deliver"',
    "Qualité, toujours",
    "最高の品質",
    "Fast ⚡ and fair",
    "Since 1999\nFamily-run",
)
BILLING_CUTOFFS_US = (
    17 * HOUR + 30 * MINUTE,
    23 * HOUR + 59 * MINUTE + 59 * US + 999_999,
    0,
    12 * HOUR + 15 * MINUTE + 30 * US + 500_000,
)
CURRENCIES = pa.array([tenant[2] for tenant in TENANTS])

FIRST_NAMES = (  # shown, ascii for e-mail addresses
    ("Alice", "alice"),
    ("Chloé", "chloe"),
    ("Dmitri", "dmitri"),
    ("Émilie", "emilie"),
    ("François", "francois"),
    ("Giulia", "giulia"),
    ("Hiroshi", "hiroshi"),
    ("Ingrid", "ingrid"),
    ("José", "jose"),
    ("Katarzyna", "katarzyna"),
    ("Liam", "liam"),
    ("Mei", "mei"),
    ("Nuño", "nuno"),
    ("Olivia", "olivia"),
    ("Priya", "priya"),
    ("Søren", "soren"),
    ("Zoë", "zoe"),
    ("Bob", "bob"),
)
FIRST_NAME_TEXT = pa.array([shown for shown, _ in FIRST_NAMES])
FIRST_NAME_ASCII = pa.array([plain for _, plain in FIRST_NAMES])
LAST_NAMES = pa.array(
    [
        "Smith",
        "García",
        "Müller",
        "Dubois",
        "O'Brien",
        "Rossi",
        "Nowak",
        "Tanaka",
        "Øvergaard",
        "Nguyễn",
        "Silva",
        "Johnson",
        "Ångström",
        "Kowalski",
    ]
)
UNUSUAL_NAMES = pa.array(
    [
        'Zoë "Zee" Martin',
        "Smith, John",
        "山田 太郎",
        "Renée 🎉 Dupont",
        "李 小龙",
        "Anne-Marie\nDe La Cruz",
    ]
)
EMAIL_DOMAINS = pa.array(["example.com", "mail.example.org", "shop.example.net", "corp.example.jp"])
COUNTRIES = pa.array(["US", "GB", "FR", "DE", "ES", "JP", "CN", "BR", "IN", "CA", "NO", "VN", "CH"])
CUSTOMER_METADATA = pa.array(
    [
        json_text(value)
        for value in (
            {"source": "organic"},
            {"source": "ads", "utm": {"campaign": 'spring "sale"', "medium": "cpc"}},
            {"source": "referral", "referrer": {"name": "Émile", "code": "FR-2024"}},
            {"newsletter": True, "tags": ["vip", "日本"]},
            {"source": "import", "legacy_id": 48213, "note": "line 1\nline 2"},
            {"marketing": {"consent": False, "channels": []}},
            {"emoji": "🙂", "score": 4.5},
        )
    ]
)

PRODUCT_KINDS = (  # name, category
    ("Coffee Beans, 250g", "coffee"),
    ("Espresso Crème", "coffee"),
    ("Matcha 抹茶 Powder", "tea"),
    ("Earl Grey", "tea"),
    ("T-shirt 🌈", "apparel"),
    ('Hoodie "Classic"', "apparel"),
    ("Notebook A5", "stationery"),
    ("Füller Pen", "stationery"),
    ("Headphones", "audio"),
    ("Speaker, Portable", "audio"),
    ("Yoga Mat", "fitness"),
    ("Kettlebell 8kg", "fitness"),
    ("Chef's Knife", "kitchen"),
    ("Moka Pot", "kitchen"),
)
PRODUCT_KIND_NAMES = pa.array([name for name, _ in PRODUCT_KINDS])
PRODUCT_CATEGORIES = pa.array([category for _, category in PRODUCT_KINDS])
PRODUCT_ADJECTIVES = pa.array(
    ["Classic", "Organic", "Deluxe", "Mini", "Über", "Eco", "Smart", "Vintage"]
)
PRODUCT_DESCRIPTIONS = pa.array(
    [
        "Hand-picked beans.\nRoasted weekly, in small batches.",
        'Soft cotton, "relaxed" fit.\r\nMachine washable.',
        "日本製。丁寧に作りました。",
        "Compact 🎧 design, 30h battery",
        "Includes: 1 unit, manual, warranty card",
        "Great value",
    ]
)
PRODUCT_ATTRIBUTES = pa.array(
    [
        json_text(value)
        for value in (
            {"color": "red", "size": "M"},
            {"dimensions": {"w": 10, "h": 20, "unit": "cm"}, "materials": ["cotton", "élasthanne"]},
            {"origin": "日本", "organic": True},
            {"note": 'say "hi"', "gift_wrap": False},
            {"warranty": {"years": 2, "region": "EU"}},
        )
    ]
)
PRICE_CENTS_ENDINGS = np.array([0, 50, 99, 95, 49])

ORDER_CHANNELS = pa.array(["web", "ios", "android", "pos", "api"])
ORDER_METADATA_EXTRAS = pa.array(
    [
        "",
        ',"gift":true',
        ',"utm":{"source":"newsletter","campaign":"soldes d\'été"}',
        ',"coupon":"SAVE10"',
        ',"note":"call \\"before\\" delivery"',
        ',"locale":"ja-JP","message":"ありがとう 🙏"',
    ]
)
ORDER_NOTES = pa.array(
    [
        "Leave at the door, please",
        'Ring the bell "twice"',
        "Gift wrap\nNo invoice in the box",
        "Call on arrival\r\nGate code 1234",
        "配達は午前中にお願いします",
        "🎁 Birthday present!",
    ]
)
ORDER_PRIORITIES = np.array([0, 0, 0, 1, 1, 2, 3])
ITEM_QUANTITIES = np.array([1, 1, 1, 1, 2, 2, 3, 4, 5])
# Status of history orders by age: younger than 1, 3, 10 days, and older.
ORDER_AGE_BANDS_DAYS = (1, 3, 10)
ORDER_STATUS_BY_AGE = (
    (("pending", "paid", "cancelled"), (0.6, 0.35, 0.05)),
    (("pending", "paid", "shipped", "cancelled"), (0.05, 0.35, 0.55, 0.05)),
    (("paid", "shipped", "delivered", "cancelled"), (0.05, 0.3, 0.6, 0.05)),
    (("delivered", "cancelled", "refunded"), (0.93, 0.04, 0.03)),
)

EVENT_TYPES = ("page_view", "product_view", "add_to_cart", "checkout_started", "purchase", "signup")
EVENT_WEIGHTS = (0.5, 0.25, 0.12, 0.06, 0.04, 0.03)
EVENT_TYPE_TEXT = pa.array(EVENT_TYPES)
EVENT_FIXED_URLS = pa.array([None, None, "/cart", "/checkout", "/checkout/complete", "/signup"])
PAGE_URLS = pa.array(
    [
        "/",
        "/pricing",
        "/blog/how-we-scale",
        "/search?q=caf%C3%A9&page=2",
        "/help/returns,refunds",
        "/ja/製品",
    ]
)
EVENT_PROPERTIES = pa.array(
    [
        json_text(value)
        for value in (
            {"referrer": "https://www.google.com/", "device": {"type": "mobile", "os": "iOS"}},
            {"browser": "Firefox", "screen": {"w": 1920, "h": 1080}},
            {"campaign": 'black "friday"', "variant": "B"},
            {"search": "café crème", "results": 12},
            {"locale": "zh-CN", "title": "产品目录"},
            {"experiment": {"id": "exp-42", "arms": ["a", "b"]}, "bot_score": 0.02},
            {"emoji": "👍", "items": []},
        )
    ]
)
EVENTS_PER_SESSION = 4

PLANS = ("basic", "pro", "team", "enterprise")
PLAN_WEIGHTS = (0.4, 0.35, 0.18, 0.07)
PLAN_MONTHLY_CENTS = np.array([900, 2900, 9900, 49950])
PERIOD_DAYS = {"month": 30, "year": 365}
TRIAL_DAYS = 14


# --- arrow helpers


def timestamps(us: np.ndarray) -> pa.Array:
    """Microseconds since the epoch as timestamps; negative values are NULL."""
    us = np.asarray(us, np.int64)
    return nullify(pa.array(us, pa.timestamp("us")), us < 0)


def dates(days: np.ndarray) -> pa.Array:
    """Days since the epoch as dates; negative values are NULL."""
    days = np.asarray(days, np.int64)
    return nullify(pa.array(days.astype(np.int32), pa.date32()), days < 0)


def money(cents: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Exact decimals from integer cents (the two's complement words of decimal128)."""
    cents = np.asarray(cents, np.int64)
    words = np.empty((len(cents), 2), np.int64)
    words[:, 0] = cents
    words[:, 1] = cents >> 63
    array = pa.Array.from_buffers(pa.decimal128(18, 2), len(cents), [None, pa.py_buffer(words)])
    return array if null is None else nullify(array, null)


def ints(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    array = pa.array(np.asarray(values, np.int64))
    return array if null is None else nullify(array, null)


def nullify(array: pa.Array, null: np.ndarray) -> pa.Array:
    if not null.any():
        return array
    return pc.if_else(pa.array(null), pa.scalar(None, array.type), array)


def pick(pool: pa.Array, rng: np.random.Generator, n: int, null_share: float = 0.0) -> pa.Array:
    """Values drawn from ``pool``, a share of them NULL."""
    values = pool.take(rng.integers(0, len(pool), n))
    return nullify(values, rng.random(n) < null_share) if null_share else values


def join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def digits(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(pa.array(np.asarray(values, np.int64)).cast(pa.string()), width, "0")


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_UUID_DIGITS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


def uuid4s(rng: np.random.Generator, n: int) -> pa.Array:
    """Random version-4 UUIDs in lowercase canonical text, built as one byte matrix."""
    raw = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hex_digits = np.empty((n, 32), np.uint8)
    hex_digits[:, 0::2] = _HEX[raw >> 4]
    hex_digits[:, 1::2] = _HEX[raw & 0x0F]
    text = np.full((n, 36), ord("-"), np.uint8)
    text[:, _UUID_DIGITS] = hex_digits
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))


def int_values(table: pa.Table, name: str) -> np.ndarray:
    """An integer, timestamp or date column as int64 (NULL as -1)."""
    column = table[name]
    if pa.types.is_date32(column.type):
        column = column.cast(pa.int32())  # dates cast to integers only at their own width
    return pc.fill_null(column.cast(pa.int64()), -1).to_numpy()


def cent_values(table: pa.Table, name: str) -> np.ndarray:
    """A decimal(p,2) column as integer cents (NULL as 0)."""
    return np.rint(pc.fill_null(table[name].cast(pa.float64()), 0).to_numpy() * 100).astype(
        np.int64
    )


def text_values(table: pa.Table, name: str) -> np.ndarray:
    return table[name].to_numpy(zero_copy_only=False)


# --- the change log


class TableLog:
    """One source table: its change log, and per id where the live version sits.

    The demo tables all have a bigint ``id`` key from a sequence, so ids index
    plain arrays. A deleted id may come back (a re-insert with the same key).
    """

    def __init__(self, contract: TableContract):
        if contract.primary_key != ("id",):
            raise ValueError(f"demo table {contract.name!r} must have primary key [id]")
        self.contract = contract
        self.key_only_deletes = contract.name in KEY_ONLY_DELETES
        # Key-only deletes put NULLs into NOT NULL columns, so the log allows them.
        self.schema = pa.schema([f.with_nullable(True) for f in contract.arrow_schema])
        self.next_id = 1
        self._position = np.zeros(0, np.int64)  # id - 1 -> log row of the live version, or -1
        self._touched = np.zeros(0, np.int64)  # id - 1 -> last day a change hit the id
        self._chunks: list[tuple[int, pa.Table]] = []  # (day, changes)
        self._rows = 0
        self._combined: pa.Table | None = None

    def allocate(self, n: int) -> np.ndarray:
        ids = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        self.next_id += n
        self._position = np.concatenate([self._position, np.full(n, -1, np.int64)])
        self._touched = np.concatenate([self._touched, np.full(n, -1, np.int64)])
        return ids

    def live_ids(self) -> np.ndarray:
        return np.flatnonzero(self._position >= 0) + 1

    def untouched(self, ids: np.ndarray, day: int) -> np.ndarray:
        """The ids no change has hit yet on ``day``: one change per key and day keeps
        the random activity's commit times free of ordering constraints."""
        return ids[self._touched[ids - 1] != day]

    def current(self, ids: np.ndarray) -> pa.Table:
        positions = self._position[ids - 1]
        if (positions < 0).any():
            raise KeyError(
                f"{self.contract.name}: ids without a live row: {ids[positions < 0][:5]}"
            )
        if self._combined is None:
            self._combined = pa.concat_tables([chunk for _, chunk in self._chunks]).combine_chunks()
        return self._combined.take(positions).select(self.schema.names)

    def write(self, op: str, rows: Columns, commit_us: np.ndarray | int, day: int) -> None:
        """Log inserts (``I``) or updates (``U``) of whole rows."""
        self._append(op, self._typed(rows), commit_us, day)

    def delete(self, ids: np.ndarray, commit_us: np.ndarray | int, day: int) -> None:
        if self.key_only_deletes:
            image = {f.name: pa.nulls(len(ids), f.type) for f in self.schema}
            image["id"] = ints(ids)
            rows = self._typed(image)
        else:
            rows = self.current(ids)
        self._append("D", rows, commit_us, day)

    def changes(self, days: Sequence[int]) -> pa.Table | None:
        """The changes logged on ``days``, in commit order (ties keep log order)."""
        chunks = [chunk for day, chunk in self._chunks if day in days]
        if not chunks:
            return None
        table = pa.concat_tables(chunks)
        order = np.argsort(table["_commit_us"].to_numpy(), kind="stable")
        return table.take(order)

    def _typed(self, rows: Columns) -> pa.Table:
        arrays = []
        for f in self.schema:
            if f.name not in rows:
                raise ValueError(
                    f"the demo simulator has no values for column {self.contract.name}.{f.name}"
                )
            arrays.append(rows[f.name].cast(f.type))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _append(self, op: str, rows: pa.Table, commit_us: np.ndarray | int, day: int) -> None:
        n = rows.num_rows
        commit = np.broadcast_to(np.asarray(commit_us, np.int64), (n,))
        rows = rows.append_column("_op", pa.repeat(op, n)).append_column(
            "_commit_us", pa.array(commit, pa.int64())
        )
        index = int_values(rows, "id") - 1
        self._position[index] = -1 if op == "D" else self._rows + np.arange(n)
        self._touched[index] = day
        self._chunks.append((day, rows))
        self._rows += n
        self._combined = None


# --- simulation state


@dataclass(frozen=True)
class FlushSchedule:
    """When DMS wrote the CDC files of one day: a file holds the commits after the
    previous flush up to its own. After a task restart, DMS writes the commits
    after ``restart_us`` once more, at the head of the next file."""

    flushes_us: np.ndarray
    restart_us: int | None


@dataclass(frozen=True)
class CustomerPool:
    """Live customers that new rows may reference, in order of creation."""

    ids: np.ndarray
    tenant_ids: np.ndarray
    created_us: np.ndarray
    tenants: int

    def pick(
        self, rng: np.random.Generator, at_us: np.ndarray, anonymous_share: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """A customer that existed at each time (0 for none) and the tenant it belongs to."""
        n = len(at_us)
        known = np.searchsorted(self.created_us, at_us, side="right")
        index = np.minimum((rng.random(n) * known).astype(np.int64), max(len(self.ids) - 1, 0))
        chosen = (known > 0) & (rng.random(n) >= anonymous_share)
        random_tenants = rng.integers(1, self.tenants + 1, n)
        if not len(self.ids):
            return np.zeros(n, np.int64), random_tenants
        return (
            np.where(chosen, self.ids[index], 0),
            np.where(chosen, self.tenant_ids[index], random_tenants),
        )


@dataclass(frozen=True)
class ProductPool:
    """Live products grouped by tenant, with their current prices."""

    ids: np.ndarray
    price_cents: np.ndarray
    starts: np.ndarray  # starts[t]..starts[t + 1]: the products of tenant t

    def pick(
        self, rng: np.random.Generator, tenant_ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """A product of each tenant (0 when it has none) and its price."""
        start = self.starts[tenant_ids]
        count = self.starts[tenant_ids + 1] - start
        index = np.minimum(
            start + (rng.random(len(tenant_ids)) * count).astype(np.int64), len(self.ids) - 1
        )
        has = count > 0
        return np.where(has, self.ids[index], 0), np.where(has, self.price_cents[index], 0)


def scaled_counts(scale: float) -> dict[str, int]:
    counts = {name: max(MIN_ROWS, round(count * scale)) for name, count in SEED_COUNTS.items()}
    counts["core_tenant"] = max(1, round(SEED_COUNTS["core_tenant"] * scale))
    return counts


class Simulation:
    """The source database and the day it is at, driven by one seeded Generator."""

    def __init__(self, contracts: Contracts, scale: float, seed: int, start: date):
        self.rng = np.random.default_rng(seed)
        self.scale = scale
        self.start = start
        midnight = datetime(start.year, start.month, start.day, tzinfo=UTC)
        self.start_us = (midnight - EPOCH) // timedelta(microseconds=1)
        self.counts = scaled_counts(scale)
        self.tenants = self.counts["core_tenant"]
        self.logs = {name: TableLog(contracts.table(name)) for name in DEMO_TABLES}
        self.schedules: dict[int, FlushSchedule] = {}
        self.edge_cases: dict[str, Any] = {}

    def day_start(self, day: int) -> int:
        return self.start_us + (day - 1) * DAY

    def day_date(self, day: int) -> date:
        return self.start + timedelta(days=day - 1)

    def begin_day(self, day: int) -> None:
        start = self.day_start(day)
        jitter = self.rng.integers(-FLUSH_JITTER, FLUSH_JITTER, len(FLUSH_HOURS))
        flushes = np.append(
            start + np.array(FLUSH_HOURS, np.int64) * HOUR + jitter,
            start + LAST_FLUSH + self.rng.integers(0, 50 * US),
        )
        restart = int(flushes[0]) - RESTART_BEFORE_FIRST_FLUSH if day == RESTART_DAY else None
        self.schedules[day] = FlushSchedule(flushes, restart)

    def coarsen(self, times_us: np.ndarray) -> np.ndarray:
        """Most commits keep microseconds; some land on whole milliseconds or seconds,
        so DMS timestamps show 6, fewer or no fraction digits."""
        precision = self.rng.choice(
            np.array([1, 1_000, US]), size=len(times_us), p=[0.85, 0.1, 0.05]
        )
        return times_us - times_us % precision

    def commit_times(self, n: int, day: int) -> np.ndarray:
        """Sorted commit times of ``n`` transactions spread over a CDC day."""
        lo, hi = (self.day_start(day) + offset for offset in ACTIVITY_WINDOW)
        return np.sort(self.coarsen(self.rng.integers(lo, hi, n)))

    def sample(self, ids: np.ndarray, share: float) -> np.ndarray:
        """Each id with probability ``share``."""
        return ids[self.rng.random(len(ids)) < share]

    def daily_new(self, table: str) -> int:
        return int(self.rng.poisson(NEW_SHARE[table] * self.counts[table]))

    def customer_pool(self, day: int | None) -> CustomerPool:
        """Live customers, without those changed on ``day`` so far: keys the day's edge
        cases and deletes touch stay out of new references."""
        log = self.logs["core_customer"]
        ids = log.live_ids() if day is None else log.untouched(log.live_ids(), day)
        rows = log.current(ids)
        created = int_values(rows, "created_at")
        order = np.argsort(created, kind="stable")
        return CustomerPool(
            ids[order], int_values(rows, "tenant_id")[order], created[order], self.tenants
        )

    def product_pool(self) -> ProductPool:
        log = self.logs["core_product"]
        ids = log.live_ids()
        rows = log.current(ids)
        tenant = int_values(rows, "tenant_id")
        order = np.argsort(tenant, kind="stable")
        starts = np.searchsorted(tenant[order], np.arange(self.tenants + 2))
        return ProductPool(ids[order], cent_values(rows, "price")[order], starts)


# --- rows of each table


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


@dataclass(frozen=True)
class NewOrders:
    orders: Columns
    items: Columns
    item_order: np.ndarray  # index of each item's order, for sharing its commit time


def order_rows(
    sim: Simulation,
    ids: np.ndarray,
    created_us: np.ndarray,
    customers: CustomerPool,
    products: ProductPool,
) -> NewOrders:
    """Pending orders with their items (item ids are allocated here, in order)."""
    rng, n = sim.rng, len(ids)
    customer, tenant = customers.pick(rng, created_us, anonymous_share=0.03)
    item_order = np.repeat(np.arange(n), 1 + rng.poisson(EXTRA_ITEMS_PER_ORDER, n))
    m = len(item_order)
    product, unit_cents = products.pick(rng, tenant[item_order])
    quantity = ITEM_QUANTITIES[rng.integers(0, len(ITEM_QUANTITIES), m)]
    line_cents = quantity * unit_cents
    kind = rng.random(m)
    discount = np.where(kind < 0.2, np.rint(line_cents * rng.uniform(0.05, 0.2, m)), 0).astype(
        np.int64
    )
    total = np.rint(np.bincount(item_order, weights=line_cents - discount, minlength=n)).astype(
        np.int64
    )
    item_counts = np.bincount(item_order, minlength=n)
    metadata = join(
        '{"channel":"',
        pick(ORDER_CHANNELS, rng, n),
        '","items":',
        ints(item_counts).cast(pa.string()),
        pick(ORDER_METADATA_EXTRAS, rng, n),
        "}",
    )
    orders = {
        "id": ints(ids),
        "tenant_id": ints(tenant),
        "customer_id": ints(customer, null=customer == 0),
        "status": pa.repeat("pending", n),
        "currency": CURRENCIES.take((tenant - 1) % len(CURRENCIES)),
        "total": money(total),
        "priority": ints(
            ORDER_PRIORITIES[rng.integers(0, len(ORDER_PRIORITIES), n)], null=rng.random(n) < 0.2
        ),
        "notes": pick(ORDER_NOTES, rng, n, null_share=0.88),
        "metadata": nullify(metadata, rng.random(n) < 0.05),
        "created_at": timestamps(created_us),
        "updated_at": timestamps(created_us),
    }
    items = {
        "id": ints(sim.logs["core_orderitem"].allocate(m)),
        "tenant_id": ints(tenant[item_order]),
        "order_id": ints(ids[item_order]),
        "product_id": ints(product, null=product == 0),
        "quantity": ints(quantity),
        "unit_price": money(unit_cents),
        # A NULL discount is an item priced before discounts existed.
        "discount": money(discount, null=kind > 0.9),
        "created_at": timestamps(created_us[item_order]),
    }
    return NewOrders(orders, items, item_order)


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


@dataclass(frozen=True)
class Plans:
    """The plan, billing interval, seats and price of new subscriptions."""

    plan: np.ndarray
    yearly: np.ndarray
    quantity: np.ndarray

    @staticmethod
    def draw(rng: np.random.Generator, n: int) -> Plans:
        plan = rng.choice(len(PLANS), size=n, p=PLAN_WEIGHTS)
        seats = np.where(plan >= PLANS.index("team"), rng.integers(2, 26, n), 1)
        return Plans(plan, rng.random(n) < 0.25, seats)

    @property
    def price_cents(self) -> np.ndarray:
        return plan_price(self.plan, self.yearly)

    @property
    def period_days(self) -> np.ndarray:
        return np.where(self.yearly, PERIOD_DAYS["year"], PERIOD_DAYS["month"])


def plan_price(plan: np.ndarray, yearly: np.ndarray) -> np.ndarray:
    """Price per seat and period: a year costs ten months."""
    return PLAN_MONTHLY_CENTS[plan] * np.where(yearly, 10, 1)


def subscription_rows(
    ids: np.ndarray,
    customer: np.ndarray,
    tenant: np.ndarray,
    plans: Plans,
    status: np.ndarray,
    created_us: np.ndarray,
) -> Columns:
    """New subscriptions: trials start later and end after the trial days."""
    trialing = status == "trialing"
    created_day = created_us // DAY
    return {
        "id": ints(ids),
        "tenant_id": ints(tenant),
        "customer_id": ints(customer),
        "plan": pa.array(np.array(PLANS)[plans.plan]),
        "status": pa.array(status, pa.string()),
        "price": money(plans.price_cents),
        "billing_interval": pa.array(np.where(plans.yearly, "year", "month")),
        "quantity": ints(plans.quantity),
        "started_at": timestamps(np.where(trialing, -1, created_us)),
        "current_period_end": dates(
            created_day + np.where(trialing, TRIAL_DAYS, plans.period_days)
        ),
        "canceled_at": timestamps(np.full(len(ids), -1)),
        "created_at": timestamps(created_us),
        "updated_at": timestamps(created_us),
    }


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


def replaced(rows: pa.Table, **columns: pa.Array) -> Columns:
    """``rows`` with some columns swapped for new values: an update's after-image."""
    values: dict[str, pa.Array | pa.ChunkedArray] = {name: rows[name] for name in rows.column_names}
    values.update(columns)
    return values


def categorical(
    rng: np.random.Generator, labels: Sequence[str], weights: Sequence[float], n: int
) -> np.ndarray:
    return np.array(labels, dtype=object)[rng.choice(len(labels), size=n, p=weights)]


# --- history: what the full load sees


def build_history(sim: Simulation) -> None:
    """The database as it stands when DMS is set up on the start day (logged as day 0,
    which no file shows)."""
    end = sim.start_us + HISTORY_END
    tenant_created = history_tenants(sim)
    history_customers(sim, tenant_created, end)
    history_products(sim, tenant_created, end)
    customers, products = sim.customer_pool(None), sim.product_pool()
    history_orders(sim, customers, products, end)
    history_events(sim, customers, products, end)
    history_subscriptions(sim, customers, end)
    history_invoices(sim, customers, end)


def sorted_times(
    rng: np.random.Generator, lo: np.ndarray | int, hi: np.ndarray | int, n: int
) -> np.ndarray:
    return np.sort(lo + (rng.random(n) * (np.asarray(hi) - lo)).astype(np.int64))


def history_tenants(sim: Simulation) -> np.ndarray:
    log = sim.logs["core_tenant"]
    ids = log.allocate(sim.tenants)
    created = sorted_times(
        sim.rng, sim.start_us - 1_500 * DAY, sim.start_us - 1_000 * DAY, len(ids)
    )
    log.write("I", tenant_rows(sim, ids, created), created, 0)
    return created


def spread_over_tenants(rng: np.random.Generator, tenants: int, n: int) -> np.ndarray:
    """Random tenants, the first ``tenants`` rows one each so that no tenant is empty."""
    tenant = rng.integers(1, tenants + 1, n)
    tenant[: min(n, tenants)] = np.arange(1, min(n, tenants) + 1)
    return tenant


def created_after_tenant(
    sim: Simulation, tenant: np.ndarray, tenant_created: np.ndarray, end: int
) -> tuple[np.ndarray, np.ndarray]:
    """Creation times between each row's tenant creation and ``end``, and the
    order that sorts them (ids follow creation order, as a sequence does)."""
    lo = tenant_created[tenant - 1]
    created = lo + (sim.rng.random(len(tenant)) * (end - lo)).astype(np.int64)
    order = np.argsort(created, kind="stable")
    return created[order], tenant[order]


def touch_history(
    sim: Simulation, rows: Columns, created: np.ndarray, end: int, null_share: float
) -> Columns:
    """History rows were edited since creation; some predate the updated_at column."""
    rng, n = sim.rng, len(created)
    updated = created + (rng.random(n) ** 3 * (end - created)).astype(np.int64)
    return {**rows, "updated_at": timestamps(np.where(rng.random(n) < null_share, -1, updated))}


def history_customers(sim: Simulation, tenant_created: np.ndarray, end: int) -> None:
    log = sim.logs["core_customer"]
    n = sim.counts["core_customer"]
    created, tenant = created_after_tenant(
        sim, spread_over_tenants(sim.rng, sim.tenants, n), tenant_created, end
    )
    rows = customer_rows(sim, log.allocate(n), tenant, created)
    log.write("I", touch_history(sim, rows, created, end, 0.3), created, 0)


def history_products(sim: Simulation, tenant_created: np.ndarray, end: int) -> None:
    log = sim.logs["core_product"]
    n = sim.counts["core_product"]
    created, tenant = created_after_tenant(
        sim, spread_over_tenants(sim.rng, sim.tenants, n), tenant_created, end
    )
    rows = product_rows(sim, log.allocate(n), tenant, created)
    log.write("I", touch_history(sim, rows, created, end, 0.2), created, 0)


def history_orders(
    sim: Simulation, customers: CustomerPool, products: ProductPool, end: int
) -> None:
    """Orders skewed to recent days, their status following their age. The last few
    orders are placed while DMS starts (see ``preload_changes``)."""
    rng = sim.rng
    n = sim.counts["core_order"] - overlap_orders(sim)
    age = (ORDER_HISTORY_DAYS * DAY * rng.random(n) ** 2).astype(np.int64)
    created = np.sort(end - age)
    new = order_rows(sim, sim.logs["core_order"].allocate(n), created, customers, products)
    status = np.empty(n, object)
    band = np.searchsorted(ORDER_AGE_BANDS_DAYS, (end - created) / DAY, side="right")
    for index, (labels, weights) in enumerate(ORDER_STATUS_BY_AGE):
        status[band == index] = categorical(rng, labels, weights, int((band == index).sum()))
    orders = {**new.orders, "status": pa.array(status, pa.string())}
    orders = touch_history(sim, orders, created, end, 0.0)
    sim.logs["core_order"].write("I", orders, created, 0)
    sim.logs["core_orderitem"].write("I", new.items, created[new.item_order], 0)


def history_events(
    sim: Simulation, customers: CustomerPool, products: ProductPool, end: int
) -> None:
    log = sim.logs["core_event"]
    ids = log.allocate(sim.counts["core_event"])
    columns, occurred = event_rows(
        sim, ids, (end - EVENT_HISTORY_DAYS * DAY, end), customers, products
    )
    log.write("I", columns, occurred, 0)


def history_subscriptions(sim: Simulation, customers: CustomerPool, end: int) -> None:
    rng = sim.rng
    n = sim.counts["core_subscription"]
    index = rng.integers(0, len(customers.ids), n)
    lo = customers.created_us[index]
    created = lo + (rng.random(n) * (end - lo)).astype(np.int64)
    order = np.argsort(created, kind="stable")
    created, index = created[order], index[order]
    recent = (end - created) < 30 * DAY
    status = np.where(
        recent & (rng.random(n) < 0.4),
        "trialing",
        categorical(rng, ("active", "past_due", "canceled"), (0.78, 0.05, 0.17), n),
    )
    plans = Plans.draw(rng, n)
    log = sim.logs["core_subscription"]
    rows = subscription_rows(
        log.allocate(n), customers.ids[index], customers.tenant_ids[index], plans, status, created
    )
    # Paying subscriptions renew within one period from the start day; canceled
    # ones ended when they were canceled.
    canceled_at = created + (rng.random(n) * (end - created)).astype(np.int64)
    start_day = sim.start_us // DAY
    period_end = np.select(
        [status == "trialing", status == "canceled", status == "past_due"],
        [created // DAY + TRIAL_DAYS, canceled_at // DAY, start_day - rng.integers(1, 10, n)],
        start_day + 1 + (rng.random(n) * plans.period_days).astype(np.int64),
    )
    rows = {
        **rows,
        "current_period_end": dates(period_end),
        "canceled_at": timestamps(np.where(status == "canceled", canceled_at, -1)),
    }
    log.write("I", touch_history(sim, rows, created, end, 0.1), created, 0)


def history_invoices(sim: Simulation, customers: CustomerPool, end: int) -> None:
    """Most invoices bill a subscription; the rest are one-off charges."""
    rng = sim.rng
    n = sim.counts["core_invoice"]
    subscriptions = sim.logs["core_subscription"].current(sim.logs["core_subscription"].live_ids())
    billed = rng.random(n) < 0.8
    sub_index = rng.integers(0, subscriptions.num_rows, n)
    customer_index = rng.integers(0, len(customers.ids), n)
    by_customer = {
        "tenant": customers.tenant_ids[customer_index],
        "customer": customers.ids[customer_index],
        "lo": customers.created_us[customer_index],
        "amount": rng.integers(1_000, 200_000, n),
    }
    by_subscription = {
        "tenant": int_values(subscriptions, "tenant_id")[sub_index],
        "customer": int_values(subscriptions, "customer_id")[sub_index],
        "lo": int_values(subscriptions, "created_at")[sub_index],
        "amount": cent_values(subscriptions, "price")[sub_index]
        * int_values(subscriptions, "quantity")[sub_index],
    }
    chosen = {key: np.where(billed, by_subscription[key], by_customer[key]) for key in by_customer}
    created = chosen["lo"] + (rng.random(n) * (end - chosen["lo"])).astype(np.int64)
    order = np.argsort(created, kind="stable")
    created = created[order]
    recent = (end - created) < 14 * DAY
    status = np.where(
        recent,
        categorical(rng, ("open", "paid", "draft"), (0.5, 0.4, 0.1), n),
        categorical(rng, ("paid", "void", "uncollectible", "open"), (0.9, 0.04, 0.03, 0.03), n),
    )
    paid_us = np.minimum(created + (rng.random(n) * 10 * DAY).astype(np.int64), end - HOUR)
    draft = InvoiceDraft(
        tenant=chosen["tenant"][order],
        customer=chosen["customer"][order],
        subscription=np.where(billed, int_values(subscriptions, "id")[sub_index], 0)[order],
        amount_cents=chosen["amount"][order],
        status=status,
        created_us=created,
        paid_us=paid_us,
    )
    log = sim.logs["core_invoice"]
    log.write("I", invoice_rows(sim, log.allocate(n), draft), created, 0)


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
    times = np.sort(sim.coarsen(rng.integers(lo, hi, len(updated))))
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
    created = np.sort(sim.coarsen(rng.integers(lo, hi, k)))
    new = order_rows(sim, ids, created, sim.customer_pool(day), sim.product_pool())
    orders.write("I", new.orders, created, day)
    sim.logs["core_orderitem"].write("I", new.items, created[new.item_order], day)
    sim.edge_cases["load_overlap"] = {
        "table": "core_order",
        "inserted_ids": ids.tolist(),
        "updated_ids": updated.tolist(),
    }


# --- daily activity


def simulate_day(sim: Simulation, day: int) -> None:
    """One business day as transactions. Edge cases and deletes come first, so the
    pools new rows reference from leave out the keys they touch."""
    sim.begin_day(day)
    craft_edge_cases(sim, day)
    purge_bot_events(sim, day)
    delete_spam_customers(sim, day)
    delete_cancelled_orders(sim, day)
    customers, products = sim.customer_pool(day), sim.product_pool()
    update_tenant_settings(sim, day)
    update_customers(sim, day)
    edit_products(sim, day)
    advance_orders(sim, day)
    edit_pending_orders(sim, day)
    advance_subscriptions(sim, day)
    renew_subscriptions(sim, day)
    settle_invoices(sim, day)
    add_customers(sim, day)
    add_products(sim, day)
    add_orders(sim, day, customers, products)
    add_subscriptions(sim, day, customers)
    add_one_off_invoices(sim, day, customers)
    add_events(sim, day, customers, products)


def purge_bot_events(sim: Simulation, day: int) -> None:
    """A nightly job deletes events flagged as bot traffic, in one transaction."""
    log = sim.logs["core_event"]
    purged = sim.sample(log.untouched(log.live_ids(), day), 0.005)
    at = sim.day_start(day) + 3 * HOUR + int(sim.rng.integers(0, HOUR))
    log.delete(purged, at, day)


def delete_spam_customers(sim: Simulation, day: int) -> None:
    """Spam sign-ups that never ordered, subscribed or got invoiced are deleted."""
    log = sim.logs["core_customer"]
    referenced = np.zeros(log.next_id, bool)
    for table in ("core_order", "core_subscription", "core_invoice"):
        other = sim.logs[table]
        referenced[int_values(other.current(other.live_ids()), "customer_id").clip(0)] = True
    candidates = log.untouched(log.live_ids(), day)
    spam = sim.sample(candidates[~referenced[candidates]], 0.01)
    log.delete(spam, sim.commit_times(len(spam), day), day)


def delete_cancelled_orders(sim: Simulation, day: int) -> None:
    """Cancelled orders are cleaned up with their items, one transaction per order."""
    orders, items = sim.logs["core_order"], sim.logs["core_orderitem"]
    live = orders.untouched(orders.live_ids(), day)
    cancelled = sim.sample(live[text_values(orders.current(live), "status") == "cancelled"], 0.3)
    at = sim.commit_times(len(cancelled), day)
    item_ids = items.live_ids()
    item_order = int_values(items.current(item_ids), "order_id")
    doomed = np.isin(item_order, cancelled)
    orders.delete(cancelled, at, day)
    items.delete(item_ids[doomed], at[np.searchsorted(cancelled, item_order[doomed])], day)


def update_tenant_settings(sim: Simulation, day: int) -> None:
    """Tenant admins toggle the beta features flag now and then."""
    log = sim.logs["core_tenant"]
    ids = sim.sample(log.untouched(log.live_ids(), day), 0.3)
    rows = log.current(ids)
    settings = []
    for tenant_id, text in zip(ids, text_values(rows, "settings")):
        value = json.loads(text) if text else {}
        features = value.setdefault("features", {})
        features["beta"] = not features.get("beta", False)
        value["updated_by"] = f"admin@{TENANTS[(tenant_id - 1) % len(TENANTS)][1]}.example"
        settings.append(json_text(value))
    at = sim.commit_times(len(ids), day)
    log.write(
        "U",
        replaced(rows, settings=pa.array(settings, pa.string()), updated_at=timestamps(at)),
        at,
        day,
    )


def update_customers(sim: Simulation, day: int) -> None:
    """Profile edits: new metadata, sometimes a new e-mail address."""
    rng, log = sim.rng, sim.logs["core_customer"]
    ids = sim.sample(log.untouched(log.live_ids(), day), 0.01)
    rows = log.current(ids)
    n = len(ids)
    at = sim.commit_times(n, day)
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
        day,
    )


def edit_products(sim: Simulation, day: int) -> None:
    """Price edits, a few deactivations and fresh ratings."""
    rng, log = sim.rng, sim.logs["core_product"]
    ids = sim.sample(log.untouched(log.live_ids(), day), 0.02)
    rows = log.current(ids)
    n = len(ids)
    at = sim.commit_times(n, day)
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
        day,
    )


def advance_orders(sim: Simulation, day: int) -> None:
    """Orders move on: pending -> paid or cancelled, paid -> shipped, and so on."""
    rng, log = sim.rng, sim.logs["core_order"]
    live = log.untouched(log.live_ids(), day)
    status = text_values(log.current(live), "status")
    ids, new_status = [], []
    for current, moves in ORDER_TRANSITIONS.items():
        candidates = live[status == current]
        roll = rng.random(len(candidates))
        lower = 0.0
        for target, share in moves:
            moved = candidates[(roll >= lower) & (roll < lower + share)]
            ids.append(moved)
            new_status.append(np.full(len(moved), target, object))
            lower += share
    order = np.argsort(np.concatenate(ids), kind="stable")
    moved_ids = np.concatenate(ids)[order]
    at = sim.commit_times(len(moved_ids), day)
    log.write(
        "U",
        replaced(
            log.current(moved_ids),
            status=pa.array(np.concatenate(new_status)[order], pa.string()),
            updated_at=timestamps(at),
        ),
        at,
        day,
    )


def edit_pending_orders(sim: Simulation, day: int) -> None:
    """A customer changes the quantity of an item before paying: the item and the
    order's total change in one transaction."""
    rng, orders, items = sim.rng, sim.logs["core_order"], sim.logs["core_orderitem"]
    live = orders.untouched(orders.live_ids(), day)
    edited = sim.sample(live[text_values(orders.current(live), "status") == "pending"], 0.05)
    item_ids = items.live_ids()
    item_rows = items.current(item_ids)
    item_order = int_values(item_rows, "order_id")
    # The first item of each edited order (items are stored in order id order).
    hits = np.flatnonzero(np.isin(item_order, edited))
    first = hits[np.unique(item_order[hits], return_index=True)[1]]
    edited = item_order[first]
    at = sim.commit_times(len(edited), day)
    quantity = int_values(item_rows, "quantity")[first]
    new_quantity = np.maximum(1, quantity + np.where(rng.random(len(first)) < 0.7, 1, -1))
    delta = (new_quantity - quantity) * cent_values(item_rows, "unit_price")[first]
    edited_items = item_ids[first]
    items.write("U", replaced(items.current(edited_items), quantity=ints(new_quantity)), at, day)
    order_rows_now = orders.current(edited)
    orders.write(
        "U",
        replaced(
            order_rows_now,
            total=money(cent_values(order_rows_now, "total") + delta),
            updated_at=timestamps(at),
        ),
        at,
        day,
    )


def advance_subscriptions(sim: Simulation, day: int) -> None:
    """Trials convert or lapse, active plans get upgraded or canceled."""
    rng, log = sim.rng, sim.logs["core_subscription"]
    live = log.untouched(log.live_ids(), day)
    rows = log.current(live)
    status = text_values(rows, "status")
    roll = rng.random(len(live))
    converting = live[(status == "trialing") & (roll < 0.1)]
    canceling = live[
        ((status == "trialing") & (roll >= 0.1) & (roll < 0.13))
        | ((status == "active") & (roll < 0.002))
        | ((status == "past_due") & (roll < 0.1))
    ]
    upgrading = live[
        (status == "active")
        & (roll >= 0.002)
        & (roll < 0.006)
        & (text_values(rows, "plan") != PLANS[-1])
    ]
    start_paying(sim, day, converting)
    at = sim.commit_times(len(canceling), day)
    log.write(
        "U",
        replaced(
            log.current(canceling),
            status=pa.repeat("canceled", len(canceling)),
            canceled_at=timestamps(at),
            updated_at=timestamps(at),
        ),
        at,
        day,
    )
    upgraded = log.current(upgrading)
    plan = np.array([PLANS.index(p) for p in text_values(upgraded, "plan")], np.int64) + 1
    yearly = text_values(upgraded, "billing_interval") == "year"
    at = sim.commit_times(len(upgrading), day)
    log.write(
        "U",
        replaced(
            upgraded,
            plan=pa.array(np.array(PLANS)[plan]),
            price=money(plan_price(plan, yearly)),
            updated_at=timestamps(at),
        ),
        at,
        day,
    )


def start_paying(sim: Simulation, day: int, ids: np.ndarray) -> None:
    """Trials that convert: the subscription turns active and its first invoice is paid
    in the same transaction."""
    log = sim.logs["core_subscription"]
    rows = log.current(ids)
    at = sim.commit_times(len(ids), day)
    period = np.where(
        text_values(rows, "billing_interval") == "year", PERIOD_DAYS["year"], PERIOD_DAYS["month"]
    )
    log.write(
        "U",
        replaced(
            rows,
            status=pa.repeat("active", len(ids)),
            started_at=timestamps(at),
            current_period_end=dates(at // DAY + period),
            updated_at=timestamps(at),
        ),
        at,
        day,
    )
    bill_subscriptions(sim, day, rows, at, paid=True)


def renew_subscriptions(sim: Simulation, day: int) -> None:
    """Active subscriptions whose period ends today renew: a new period and an open
    invoice, in one transaction."""
    log = sim.logs["core_subscription"]
    live = log.untouched(log.live_ids(), day)
    live_rows = log.current(live)
    today = sim.day_start(day) // DAY
    due = live[
        (text_values(live_rows, "status") == "active")
        & (int_values(live_rows, "current_period_end") <= today)
    ]
    rows = log.current(due)
    at = sim.commit_times(len(due), day)
    period = np.where(
        text_values(rows, "billing_interval") == "year", PERIOD_DAYS["year"], PERIOD_DAYS["month"]
    )
    log.write(
        "U",
        replaced(
            rows,
            current_period_end=dates(int_values(rows, "current_period_end") + period),
            updated_at=timestamps(at),
        ),
        at,
        day,
    )
    bill_subscriptions(sim, day, rows, at, paid=False)


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


def add_customers(sim: Simulation, day: int) -> None:
    log = sim.logs["core_customer"]
    n = sim.daily_new("core_customer")
    at = sim.commit_times(n, day)
    tenant = sim.rng.integers(1, sim.tenants + 1, n)
    log.write("I", customer_rows(sim, log.allocate(n), tenant, at), at, day)


def add_products(sim: Simulation, day: int) -> None:
    log = sim.logs["core_product"]
    n = sim.daily_new("core_product")
    at = sim.commit_times(n, day)
    tenant = sim.rng.integers(1, sim.tenants + 1, n)
    log.write("I", product_rows(sim, log.allocate(n), tenant, at), at, day)


def add_orders(sim: Simulation, day: int, customers: CustomerPool, products: ProductPool) -> None:
    """New orders, each inserted with its items in one transaction."""
    log = sim.logs["core_order"]
    n = sim.daily_new("core_order")
    at = sim.commit_times(n, day)
    new = order_rows(sim, log.allocate(n), at, customers, products)
    log.write("I", new.orders, at, day)
    sim.logs["core_orderitem"].write("I", new.items, at[new.item_order], day)


def add_subscriptions(sim: Simulation, day: int, customers: CustomerPool) -> None:
    """Sign-ups: trials, or paid plans with their first invoice in the same transaction."""
    rng, log = sim.rng, sim.logs["core_subscription"]
    n = sim.daily_new("core_subscription") if len(customers.ids) else 0
    at = sim.commit_times(n, day)
    customer, tenant = customers.pick(rng, at, anonymous_share=0.0)
    status = np.where(rng.random(n) < 0.4, "trialing", "active").astype(object)
    ids = log.allocate(n)
    log.write(
        "I", subscription_rows(ids, customer, tenant, Plans.draw(rng, n), status, at), at, day
    )
    paying = status == "active"
    bill_subscriptions(sim, day, log.current(ids[paying]), at[paying], paid=True)


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


def add_events(sim: Simulation, day: int, customers: CustomerPool, products: ProductPool) -> None:
    """Tracking events, each committed a moment after it occurred."""
    log = sim.logs["core_event"]
    n = int(sim.rng.poisson(EVENTS_PER_DAY * sim.scale))
    window = tuple(sim.day_start(day) + offset for offset in ACTIVITY_WINDOW)
    columns, occurred = event_rows(sim, log.allocate(n), window, customers, products)
    at = sim.coarsen(occurred + sim.rng.integers(200, 50_000, n))
    log.write("I", columns, at, day)


# --- edge cases


def craft_edge_cases(sim: Simulation, day: int) -> None:
    """Key churn every replay must get right, at fixed places in the stream."""
    if day == 2:
        reinsert_within_one_file(sim)
        start_churn_across_days(sim)
    elif day == 3:
        finish_churn_across_days(sim)


def crafted_customer(sim: Simulation, customer_id: int, at_us: int, **values: Any) -> Columns:
    """One customer row with explicit values (``None`` is NULL)."""
    row: dict[str, pa.Array] = {
        "id": ints(np.array([customer_id])),
        "tenant_id": ints(np.array([1])),
        "created_at": timestamps(np.array([at_us])),
        "updated_at": timestamps(np.array([at_us])),
    }
    schema = sim.logs["core_customer"].schema
    for name, value in values.items():
        row[name] = pa.array([value], schema.field(name).type)
    return row


def reinsert_within_one_file(sim: Simulation) -> None:
    """One customer goes I -> U -> D -> I between the restart checkpoint and the first
    flush of day 2: all four rows sit in one file, and the restart sends them again.
    The re-insert has other values than the first insert."""
    log, day = sim.logs["core_customer"], 2
    restart = sim.schedules[day].restart_us
    assert restart is not None
    # Separate transactions; microseconds, milliseconds, whole seconds.
    times = [
        restart + 2 * MINUTE + 123_457,
        restart + 6 * MINUTE + 250_000,
        restart + 10 * MINUTE,
        restart + 14 * MINUTE + 987_654,
    ]
    (customer_id,) = log.allocate(1)
    log.write(
        "I",
        crafted_customer(
            sim,
            customer_id,
            times[0],
            email="zoe.obrien@example.com",
            full_name='Zoë "Zee" O\'Brien, Jr.',
            country="IE",
            metadata=json_text({"source": "ads", "utm": {"campaign": 'spring "sale", 2024'}}),
        ),
        times[0],
        day,
    )
    log.write(
        "U",
        replaced(
            log.current(np.array([customer_id])),
            full_name=pa.array(["Zoë O'Brien\r\nc/o Acme, Inc."]),
            metadata=pa.array(
                [
                    json_text(
                        {
                            "vip": True,
                            "address": {
                                "city": "Zürich",
                                "lines": ["Bahnhofstrasse 1", "8001 Zürich"],
                            },
                        }
                    )
                ]
            ),
            updated_at=timestamps(np.array([times[1]])),
        ),
        times[1],
        day,
    )
    log.delete(np.array([customer_id]), times[2], day)
    log.write(
        "I",
        crafted_customer(
            sim,
            customer_id,
            times[3],
            email=None,
            full_name="山田 太郎 🎌",
            country="JP",
            metadata=None,
        ),
        times[3],
        day,
    )
    sim.edge_cases["reinsert_within_file"] = {
        "table": "core_customer",
        "id": int(customer_id),
        "day": sim.day_date(day).isoformat(),
    }


def start_churn_across_days(sim: Simulation) -> None:
    """A customer inserted early on day 2 and updated late that day (two files);
    ``finish_churn_across_days`` deletes and re-inserts it on day 3."""
    log, day = sim.logs["core_customer"], 2
    start = sim.day_start(day)
    (customer_id,) = log.allocate(1)
    inserted, updated = start + 40 * MINUTE + 500_000, start + 22 * HOUR + 30 * MINUTE + 123_456
    log.write(
        "I",
        crafted_customer(
            sim,
            customer_id,
            inserted,
            email="lee.chen@example.org",
            full_name="Lee Chen",
            country="SG",
            metadata=json_text({"source": "referral", "note": 'refers "friends"'}),
        ),
        inserted,
        day,
    )
    log.write(
        "U",
        replaced(
            log.current(np.array([customer_id])),
            full_name=pa.array(["Lee Chen\nSales, APAC"]),
            updated_at=timestamps(np.array([updated])),
        ),
        updated,
        day,
    )
    sim.edge_cases["reinsert_across_days"] = {
        "table": "core_customer",
        "id": int(customer_id),
        "days": [sim.day_date(day).isoformat()],
    }


def finish_churn_across_days(sim: Simulation) -> None:
    log, day = sim.logs["core_customer"], 3
    case = sim.edge_cases["reinsert_across_days"]
    customer_id = case["id"]
    start = sim.day_start(day)
    deleted, reinserted = start + HOUR + 15 * MINUTE, start + 21 * HOUR + 45 * MINUTE + 10_250
    log.delete(np.array([customer_id]), deleted, day)
    log.write(
        "I",
        crafted_customer(
            sim,
            customer_id,
            reinserted,
            email="lee@example.com.cn",
            full_name="陈 李 (Lee Chen)",
            country="CN",
            metadata=json_text({"restored": True, "by": "support 🛟"}),
        ),
        reinserted,
        day,
    )
    case["days"].append(sim.day_date(day).isoformat())


# --- DMS CSV


def csv_field(text: pa.Array, delimiter: str) -> pa.Array:
    """RFC 4180: quote a field only when it holds the delimiter, a quote, CR or LF."""
    needs_quotes = pc.match_substring_regex(text, f'[{re.escape(delimiter)}"\r\n]')
    if not pc.any(needs_quotes).as_py():
        return text
    quoted = join('"', pc.replace_substring(text, '"', '""'), '"')
    return pc.if_else(needs_quotes, quoted, text)


def timestamp_text(values: pa.Array) -> pa.Array:
    """``yyyy-MM-dd HH:mm:ss[.SSSSSS]`` (or ``HH:mm:ss[...]``) without trailing fraction
    zeros; timestamptz in UTC without an offset."""
    if pa.types.is_timestamp(values.type):
        values = values.cast(pa.timestamp("us"))
    return pc.replace_substring_regex(values.cast(pa.string()), r"\.?0+$", "")


def value_text(values: pa.Array, type_name: str, rng: np.random.Generator) -> pa.Array:
    """One column as DMS writes it for a PostgreSQL source."""
    if type_name in ("timestamp", "timestamptz", "time"):
        return timestamp_text(values)
    if type_name == "boolean":
        # Both spellings occur in DMS output; mix them so readers handle each.
        long_form = pa.array(rng.random(len(values)) < 0.5)
        return pc.if_else(
            long_form, pc.if_else(values, "true", "false"), pc.if_else(values, "t", "f")
        )
    return values.cast(pa.string())


def csv_lines(
    rows: pa.Table,
    contract: TableContract,
    dms: DmsSettings,
    ops: pa.Array | None,
    stamps_us: np.ndarray,
    change_seqs: pa.Array | None,
    rng: np.random.Generator,
) -> pa.StringArray:
    """Every row as one CSV line ending in LF: [Op,] [timestamp,] columns [, change seq]."""
    fields = [] if ops is None else [ops]
    if dms.timestamp_column:
        fields.append(timestamp_text(pa.array(stamps_us, pa.timestamp("us"))))
    for column in contract.columns:
        values = rows[column.name].combine_chunks()
        fields.append(csv_field(value_text(values, column.type, rng), dms.delimiter))
    if dms.change_seq_column:
        fields.append(
            change_seqs if change_seqs is not None else pa.nulls(rows.num_rows, pa.string())
        )
    line = pc.binary_join_element_wise(
        *fields, dms.delimiter, null_handling="replace", null_replacement=dms.null_value
    )
    return join(line, "\n")


def line_bytes(lines: pa.StringArray, ranges: Sequence[tuple[int, int]]) -> bytes:
    """The text of the lines in ``ranges`` (start, stop), straight from Arrow's buffers."""
    offsets = np.frombuffer(
        lines.buffers()[1], np.int32, count=len(lines) + 1, offset=lines.offset * 4
    )
    data = memoryview(lines.buffers()[2])
    return b"".join(data[offsets[start] : offsets[stop]] for start, stop in ranges)


def change_seq_text(commit_us: np.ndarray, first: int) -> pa.Array:
    """AR_H_CHANGE_SEQ: the commit time's digits and an increasing change number (35 digits)."""
    stamp = pc.strftime(pa.array(commit_us - commit_us % US, pa.timestamp("us")), "%Y%m%d%H%M")
    seconds = digits((commit_us // US) % 60, 2)
    micros = digits(commit_us % US, 6)
    counter = digits(np.arange(first, first + len(commit_us)), 15)
    return join(stamp, seconds, micros, counter)


def moment(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))


def isoformat_us(us: int) -> str:
    return moment(us).strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass
class TableSummary:
    files: int = 0
    bytes: int = 0
    load_rows: int = 0
    cdc_rows: int = 0
    live_rows: int = 0

    @property
    def rows_written(self) -> int:
        return self.load_rows + self.cdc_rows


@dataclass
class Summary:
    arguments: dict[str, Any]
    tables: dict[str, TableSummary]
    edge_cases: dict[str, Any]

    @property
    def files(self) -> int:
        return sum(t.files for t in self.tables.values())

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tables.values())

    @property
    def rows_written(self) -> int:
        return sum(t.rows_written for t in self.tables.values())


class DmsWriter:
    """Writes the S3 target's files: full load on day 1, CDC per table and flush."""

    def __init__(
        self, store: LakeStore, contracts: Contracts, compress: bool, rng: np.random.Generator
    ):
        self.store = store
        self.dms = contracts.dms
        self.contracts = contracts
        self.compress = compress
        self.rng = rng
        self.tables = {name: TableSummary() for name in DEMO_TABLES}
        self.redelivered: dict[str, Any] = {}
        self._change_number = 1

    def put(self, table: str, key: str, data: bytes, written_us: int) -> str:
        """Write one file (gzip without a timestamp, so output stays reproducible); its key."""
        if self.compress:
            data = gzip_compress(data, compresslevel=6, mtime=0)
            key += ".gz"
        self.store.put(key, data, last_modified=moment(written_us))
        self.tables[table].files += 1
        self.tables[table].bytes += len(data)
        return key

    def write_full_load(self, sim: Simulation) -> tuple[int, int]:
        """LOAD files with a hex counter, read one after another in the load window;
        each row's timestamp column is its file's transfer time. Returns the first
        and last transfer time."""
        per_file = max(MIN_LOAD_FILE_ROWS, min(LOAD_FILE_ROWS, round(LOAD_FILE_ROWS * sim.scale)))
        snapshots = {name: log.current(log.live_ids()) for name, log in sim.logs.items()}
        total_files = sum(-(-rows.num_rows // per_file) for rows in snapshots.values())
        lo, hi = (sim.start_us + offset for offset in LOAD_WINDOW)
        step = (hi - lo) // max(total_files, 1)
        transfers = []
        for name, rows in snapshots.items():
            contract = self.contracts.table(name)
            prefix = table_prefix(self.dms, contract.schema, contract.name)
            for counter, start in enumerate(range(0, rows.num_rows, per_file), start=1):
                chunk = rows.slice(start, per_file)
                transfer = lo + len(transfers) * step + int(self.rng.integers(0, step // 2 + 1))
                transfers.append(transfer)
                ops = pa.repeat("I", chunk.num_rows) if self.dms.include_op_for_full_load else None
                lines = csv_lines(
                    chunk,
                    contract,
                    self.dms,
                    ops,
                    np.full(chunk.num_rows, transfer),
                    None,
                    self.rng,
                )
                self.put(
                    name,
                    f"{prefix}LOAD{counter:08X}.csv",
                    line_bytes(lines, [(0, len(lines))]),
                    transfer,
                )
                self.tables[name].load_rows += chunk.num_rows
        return transfers[0], transfers[-1]

    def write_cdc_day(self, sim: Simulation, day: int) -> None:
        """Each table's changes of the day, cut at the flush times. Day 2's first files
        also hold the start day's overlap commits."""
        schedule = sim.schedules[day]
        days = (1, day) if day == 2 else (day,)
        for name, log in sim.logs.items():
            changes = log.changes(days)
            if changes is None:
                continue
            commit = changes["_commit_us"].to_numpy()
            seqs = (
                change_seq_text(commit, self._change_number) if self.dms.change_seq_column else None
            )
            self._change_number += len(commit)
            contract = self.contracts.table(name)
            lines = csv_lines(
                changes.select(contract.column_names),
                contract,
                self.dms,
                changes["_op"].combine_chunks(),
                commit,
                seqs,
                self.rng,
            )
            ends = np.searchsorted(commit, schedule.flushes_us, side="right")
            ends[-1] = len(commit)
            starts = np.concatenate([[0], ends[:-1]])
            files = [[(int(a), int(b))] if b > a else [] for a, b in zip(starts, ends)]
            replay = self.replayed(commit, schedule, int(ends[0]))
            if replay:
                files[1].insert(0, replay)
            for window, ranges in enumerate(files):
                if not ranges:
                    continue
                flushed = int(schedule.flushes_us[window]) + int(
                    self.rng.integers(20_000, 1_500_000)
                )
                key = self.put(
                    name, self.cdc_key(contract, flushed), line_bytes(lines, ranges), flushed
                )
                self.tables[name].cdc_rows += sum(b - a for a, b in ranges)
                if window == 1 and replay:
                    self.redelivered[name] = {"file": key, "rows": replay[1] - replay[0]}

    @staticmethod
    def replayed(
        commit_us: np.ndarray, schedule: FlushSchedule, first_file_end: int
    ) -> tuple[int, int] | None:
        """The rows of the first file that a task restart writes again (start, stop)."""
        if schedule.restart_us is None:
            return None
        start = int(np.searchsorted(commit_us, schedule.restart_us, side="right"))
        return (start, first_file_end) if first_file_end > start else None

    def cdc_key(self, contract: TableContract, flushed_us: int) -> str:
        at = moment(flushed_us)
        folder = (
            date_folder(self.dms.date_partition, at.date(), at.hour)
            if self.dms.date_partition.enabled
            else ""
        )
        name = f"{at:%Y%m%d-%H%M%S}{at.microsecond // 1000:03d}.csv"
        return f"{table_prefix(self.dms, contract.schema, contract.name)}{folder}{name}"


# --- oracle and entry point


def expected_state(log: TableLog) -> pa.Table:
    """The live rows typed as the contract says, sorted by key (ids are positions)."""
    rows = log.current(log.live_ids())
    return pa.Table.from_arrays(rows.columns, schema=log.contract.arrow_schema)


def write_oracle(store: LakeStore, sim: Simulation, writer: DmsWriter) -> None:
    for name, log in sim.logs.items():
        table = expected_state(log)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        store.put(f"{EXPECTED_PREFIX}{name}.parquet", buffer.getvalue())
        writer.tables[name].live_rows = table.num_rows


def generate(
    store: LakeStore,
    contracts: Contracts,
    scale: float = 1.0,
    days: int = 7,
    seed: int = 42,
    start: date = date(2024, 1, 1),
    gzip: bool = False,
) -> Summary:
    """Simulate ``days`` days of the demo database and write DMS files, oracle and manifest."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    sim = Simulation(contracts, scale, seed, start)
    writer = DmsWriter(store, contracts, gzip, sim.rng)
    build_history(sim)
    preload_changes(sim)
    first_transfer, last_transfer = writer.write_full_load(sim)
    sim.edge_cases["load_overlap"].update(
        load_transfer_first=isoformat_us(first_transfer),
        load_transfer_last=isoformat_us(last_transfer),
    )
    for day in range(2, days + 1):
        simulate_day(sim, day)
        writer.write_cdc_day(sim, day)
    if writer.redelivered:
        sim.edge_cases["redelivered"] = {
            "day": sim.day_date(RESTART_DAY).isoformat(),
            "files": writer.redelivered,
        }
    write_oracle(store, sim, writer)
    arguments = {
        "scale": scale,
        "days": days,
        "seed": seed,
        "start": start.isoformat(),
        "gzip": gzip,
    }
    summary = Summary(arguments, writer.tables, sim.edge_cases)
    store.put(MANIFEST_KEY, manifest_json(summary).encode("utf-8"))
    return summary


def manifest_json(summary: Summary) -> str:
    document = {
        "generator": "lakehouse-demo",
        "arguments": summary.arguments,
        "tables": {
            name: {
                "files": t.files,
                "bytes": t.bytes,
                "load_rows": t.load_rows,
                "cdc_rows": t.cdc_rows,
                "rows_written": t.rows_written,
                "live_rows": t.live_rows,
            }
            for name, t in summary.tables.items()
        },
        "edge_cases": summary.edge_cases,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
