"""The demo's vocabularies: names, products, texts and JSON documents rows draw from.

They carry what a pipeline must survive: delimiters, quotes, CR/LF, unicode and emoji.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lakehouse_assets.demo.clock import HOUR, MINUTE, US
from lakehouse_assets.demo.values import json_text

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
