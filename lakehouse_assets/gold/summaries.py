"""The gold summaries of the demo schema: which silver rows each reads, its SQL, its key,
and which business dates of which silver columns decide its partitions.

Pure of Dagster: ``load_inputs`` scans silver (filters pushed into Iceberg) and
``run_summary`` runs the summary's SQL file in DuckDB over those Arrow tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import (
    And,
    GreaterThanOrEqual,
    IsNull,
    LessThan,
    LessThanOrEqual,
    Or,
)

from lakehouse_assets.gold.history_scans import (
    VALID_FROM,
    VALID_TO,
    has_history,
    history_schema,
    scan_history,
)
from lakehouse_assets.gold.silver_scans import day_bound, days_filter, live_schema, scan_live

DAY_COLUMN = "day"
PAID_STATUSES = ("paid", "shipped", "delivered")


@dataclass(frozen=True)
class Window:
    """Business days ``start <= day < end``; ``None`` for an unpartitioned summary."""

    start: date
    end: date


@dataclass(frozen=True)
class RefreshRule:
    """A change to a row of ``table`` reaches the partitions of the business dates in
    ``columns`` (old and new values); ``onward``: and every later partition too."""

    table: str
    columns: tuple[str, ...]
    onward: bool = False


Loader = Callable[[Catalog, Window | None], dict[str, pa.Table]]


@dataclass(frozen=True)
class GoldSummary:
    name: str
    description: str
    primary_key: tuple[str, ...]
    partitioned: bool
    silver_tables: tuple[str, ...]
    load: Loader
    refresh: tuple[RefreshRule, ...] = ()

    @property
    def sql_text(self) -> str:
        return summary_sql(self.name)


def summary_sql(name: str) -> str:
    return resources.files("lakehouse_assets.gold").joinpath("sql", f"{name}.sql").read_text()


def run_summary(
    sql_text: str, inputs: Mapping[str, pa.Table], window: Window | None = None
) -> pa.Table:
    """Run one summary's SQL in a fresh in-process DuckDB over ``inputs`` (name -> Arrow)."""
    connection = duckdb.connect(config={"threads": 2})
    try:
        for name, table in inputs.items():
            connection.register(name, table)
        params = {}
        if window is not None:
            params = {"window_start": window.start, "window_end": window.end}
            params = {name: value for name, value in params.items() if f"${name}" in sql_text}
        return connection.sql(sql_text, params=params or None).to_arrow_table()
    finally:
        connection.close()


# --------------------------------------------------------------------------- silver scans


def _created_in(
    catalog: Catalog, table: str, column: str, window: Window, columns: tuple[str, ...]
) -> pa.Table:
    return scan_live(
        catalog,
        table,
        columns,
        days_filter(live_schema(catalog, table), column, window.start, window.end),
    )


def _items_of(catalog: Catalog, orders: pa.Table, columns: tuple[str, ...]) -> pa.Table:
    """Items of ``orders``: the order id range goes into the scan (min/max pruning), the
    exact match happens here."""
    if orders.num_rows == 0:
        return scan_live(catalog, "core_orderitem", columns).slice(0, 0)
    low, high = pc.min(orders["id"]).as_py(), pc.max(orders["id"]).as_py()
    items = scan_live(
        catalog,
        "core_orderitem",
        columns,
        And(GreaterThanOrEqual("order_id", low), LessThanOrEqual("order_id", high)),
    )
    return items.filter(pc.is_in(items["order_id"], value_set=orders["id"].combine_chunks()))


ORDER_COLUMNS = ("id", "tenant_id", "customer_id", "status", "currency", "total", "created_at")
ITEM_COLUMNS = ("id", "order_id", "product_id", "quantity", "unit_price", "discount")


def load_daily_revenue(catalog: Catalog, window: Window | None) -> dict[str, pa.Table]:
    assert window is not None
    orders = _created_in(catalog, "core_order", "created_at", window, ORDER_COLUMNS)
    return {
        "orders": orders,
        "order_items": _items_of(catalog, orders, ITEM_COLUMNS),
        "customers": _created_in(
            catalog, "core_customer", "created_at", window, ("id", "tenant_id", "created_at")
        ),
    }


def load_product_daily(catalog: Catalog, window: Window | None) -> dict[str, pa.Table]:
    assert window is not None
    orders = _created_in(catalog, "core_order", "created_at", window, ORDER_COLUMNS)
    items = _items_of(catalog, orders, ITEM_COLUMNS)
    products = scan_live(catalog, "core_product", ("id", "tenant_id", "name", "category"))
    products = products.filter(
        pc.is_in(products["id"], value_set=pc.unique(items["product_id"]).drop_null())
    )
    return {"orders": orders, "order_items": items, "products": products}


def load_mrr(catalog: Catalog, window: Window | None) -> dict[str, pa.Table]:
    """Subscriptions that started before the window ends and were not canceled before it
    starts: the versions live during the window when the table keeps its history (a price
    change then moves only the days after it), else the current rows."""
    assert window is not None
    columns = (
        "id",
        "tenant_id",
        "price",
        "quantity",
        "billing_interval",
        "started_at",
        "canceled_at",
    )
    if has_history(catalog, "core_subscription"):
        schema = history_schema(catalog, "core_subscription")
        overlapping = And(
            _overlapping_subscriptions(schema, window),
            LessThan(VALID_FROM, day_bound(schema, VALID_FROM, window.end)),
            Or(
                IsNull(VALID_TO),
                GreaterThanOrEqual(VALID_TO, day_bound(schema, VALID_TO, window.start)),
            ),
        )
        rows = scan_history(
            catalog, "core_subscription", (*columns, VALID_FROM, VALID_TO), overlapping
        )
        return {"subscriptions": rows}
    schema = live_schema(catalog, "core_subscription")
    rows = scan_live(
        catalog, "core_subscription", columns, _overlapping_subscriptions(schema, window)
    )
    never = pa.nulls(rows.num_rows, pa.timestamp("us", tz="UTC"))
    return {"subscriptions": rows.append_column(VALID_FROM, never).append_column(VALID_TO, never)}


def _overlapping_subscriptions(schema, window: Window):
    return And(
        LessThan("started_at", day_bound(schema, "started_at", window.end)),
        Or(
            IsNull("canceled_at"),
            GreaterThanOrEqual("canceled_at", day_bound(schema, "canceled_at", window.start)),
        ),
    )


def load_event_funnel(catalog: Catalog, window: Window | None) -> dict[str, pa.Table]:
    assert window is not None
    columns = ("id", "tenant_id", "customer_id", "session_id", "event_type", "occurred_at")
    return {"events": _created_in(catalog, "core_event", "occurred_at", window, columns)}


def load_customer_lifetime_value(catalog: Catalog, window: Window | None) -> dict[str, pa.Table]:
    return {
        "customers": scan_live(catalog, "core_customer", ("id", "tenant_id", "created_at")),
        "orders": scan_live(
            catalog, "core_order", ("id", "customer_id", "status", "total", "created_at")
        ),
        "invoices": scan_live(
            catalog, "core_invoice", ("id", "customer_id", "status", "amount_paid")
        ),
    }


def load_tenants(catalog: Catalog, window: Window | None) -> dict[str, pa.Table]:
    return {
        "tenants": scan_live(
            catalog, "core_tenant", ("id", "name", "slug", "plan", "is_active", "created_at")
        )
    }


SUMMARIES: tuple[GoldSummary, ...] = (
    GoldSummary(
        name="daily_revenue",
        description=(
            "Daily revenue per tenant: orders, paid orders, revenue, items sold, average order "
            "value and new customers, by the day orders and customers were created (UTC)."
        ),
        primary_key=("day", "tenant_id"),
        partitioned=True,
        silver_tables=("core_order", "core_orderitem", "core_customer"),
        load=load_daily_revenue,
        refresh=(
            RefreshRule("core_order", ("created_at",)),
            RefreshRule("core_orderitem", ("created_at",)),
            RefreshRule("core_customer", ("created_at",)),
        ),
    ),
    GoldSummary(
        name="mrr",
        description=(
            "Monthly recurring revenue per tenant at the end of each day, with active, new and "
            "churned subscriptions and their MRR."
        ),
        primary_key=("day", "tenant_id"),
        partitioned=True,
        silver_tables=("core_subscription",),
        load=load_mrr,
        # A subscription counts on every day from its start: a change reaches every later day.
        refresh=(RefreshRule("core_subscription", ("started_at", "canceled_at"), onward=True),),
    ),
    GoldSummary(
        name="event_funnel",
        description=(
            "Event funnel per tenant and day: users at each step (page view, product view, add "
            "to cart, checkout, purchase) and conversion rates."
        ),
        primary_key=("day", "tenant_id", "step_number"),
        partitioned=True,
        silver_tables=("core_event",),
        load=load_event_funnel,
        refresh=(RefreshRule("core_event", ("occurred_at",)),),
    ),
    GoldSummary(
        name="product_daily",
        description=(
            "Product performance per day: orders, units, gross and net revenue of paid orders."
        ),
        primary_key=("day", "product_id"),
        partitioned=True,
        silver_tables=("core_order", "core_orderitem", "core_product"),
        load=load_product_daily,
        refresh=(
            RefreshRule("core_order", ("created_at",)),
            RefreshRule("core_orderitem", ("created_at",)),
        ),
    ),
    GoldSummary(
        name="customer_lifetime_value",
        description=(
            "Customer lifetime value: paid orders and paid invoices of every live customer."
        ),
        primary_key=("customer_id",),
        partitioned=False,
        silver_tables=("core_customer", "core_order", "core_invoice"),
        load=load_customer_lifetime_value,
    ),
    GoldSummary(
        name="tenants",
        description=(
            "The tenant directory (name, slug, plan, active) for dashboards and dbt relationships."
        ),
        primary_key=("tenant_id",),
        partitioned=False,
        silver_tables=("core_tenant",),
        load=load_tenants,
    ),
)


def summaries_for(table_names: set[str] | frozenset[str]) -> tuple[GoldSummary, ...]:
    """The summaries whose silver tables all exist in the contracts."""
    return tuple(summary for summary in SUMMARIES if set(summary.silver_tables) <= set(table_names))


def compute_summary(
    summary: GoldSummary, catalog: Catalog, window: Window | None
) -> tuple[pa.Table, dict[str, int]]:
    """The summary's rows for ``window`` and the row count of each input it read."""
    inputs = summary.load(catalog, window)
    result = run_summary(summary.sql_text, inputs, window)
    return result, {name: table.num_rows for name, table in inputs.items()}
