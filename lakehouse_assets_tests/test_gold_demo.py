"""Gold and marts end to end over a small demo, on the embedded defaults.

One module-scoped build: the demo simulator writes 3 days of DMS files, then the real
``dagster asset materialize --select '*'`` CLI (subprocess, temp DAGSTER_HOME, no
LAKEHOUSE_* variables: embedded lake, SQLite catalog and embedded PostgreSQL under
./.lakehouse of a temp working folder) builds bronze, silver, gold and marts.

Gold values are checked against the demo oracle (the source tables' final state)
with plain Python here, not with the gold SQL. Then a late CDC change to an old
order goes through silver, the refresh sensor and the run it requests.
"""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import dagster as dg
import psycopg2
import pyarrow.parquet as pq
import pytest

from lakehouse_assets.contracts import load_contracts
from lakehouse_assets.dms import FileKind
from lakehouse_assets.lake import open_lake
from lakehouse_assets.postgres import embedded_postgres_url, stop_embedded_postgres
from lakehouse_assets_tests.test_demo_simulator import parse_value, read_changes, replay

pytestmark = pytest.mark.dbt

DAYS = ("2024-01-01", "2024-01-02", "2024-01-03")
PAID = {"paid", "shipped", "delivered"}
FUNNEL = ("page_view", "product_view", "add_to_cart", "checkout_started", "purchase")
CENT = Decimal("0.01")


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def demo():
    # Not under pytest's basetemp: see server_folder in test_postgres_io_manager.py.
    work = Path(tempfile.mkdtemp(prefix="lakehouse-gold-demo-"))
    home = work / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {name: value for name, value in os.environ.items() if not name.startswith("LAKEHOUSE_")}
    env.update(
        DAGSTER_HOME=str(home),
        # The demo's commits are from 2024: the silver freshness checks would (rightly) call
        # them stale. Allow any lag here; this test is about gold and marts.
        LAKEHOUSE_FRESHNESS_MAX_LAG_MINUTES=str(10**9),
    )
    generated = subprocess.run(
        [
            str(Path(sys.executable).with_name("lakehouse-demo")),
            "generate",
            "--scale",
            "0.02",
            "--days",
            "3",
            "--seed",
            "42",
            "--out",
            "./.lakehouse/data-lake",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert generated.returncode == 0, generated.stderr
    pgdata = work / ".lakehouse" / "postgres"
    try:
        # One process for all steps keeps the test short; the per-step processes of the
        # default executor share the embedded server the same way (test_embedded_server_*).
        built = _cli(
            [
                "asset",
                "materialize",
                "-m",
                "lakehouse_assets.definitions",
                "--select",
                "*",
                "--partition-range",
                f"{DAYS[0]}...{DAYS[-1]}",
                "--config-json",
                json.dumps({"execution": {"config": {"in_process": {}}}}),
            ],
            work,
            env,
        )
        yield {"work": work, "home": home, "env": env, "built": built, "pgdata": pgdata}
    finally:
        stop_embedded_postgres(pgdata)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def gold_db(demo):
    assert demo["built"].returncode == 0, (
        demo["built"].stdout[-6000:] + demo["built"].stderr[-6000:]
    )
    connection = psycopg2.connect(embedded_postgres_url(demo["pgdata"]))
    yield connection
    connection.close()


def _query(connection, text: str, params: tuple = ()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(text, params)
        rows = cursor.fetchall()
    connection.rollback()
    return rows


def _oracle(demo, table: str) -> list[dict]:
    return pq.read_table(
        demo["work"] / ".lakehouse" / "data-lake" / "demo" / "expected" / f"{table}.parquet"
    ).to_pylist()


def _day(value: datetime) -> str:
    return value.date().isoformat()


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# --------------------------------------------------------------------------- the CLI build


def test_cli_builds_every_layer_and_every_check_passes(demo, gold_db):
    instance = dg.DagsterInstance.from_config(str(demo["home"]))
    try:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(["marts", "tenant_kpis"])), limit=5
        ).records
        assert records, "marts/tenant_kpis was not materialized"
        materialized = {
            key.to_user_string()
            for key in instance.get_asset_keys()
            if instance.get_latest_materialization_event(key) is not None
        }
        for layer, expected in {
            "bronze": 8,
            "silver": 8,
            "gold": 6,
            "marts": 2,
        }.items():
            assert len([key for key in materialized if key.startswith(f"{layer}/")]) == expected, (
                layer,
                materialized,
            )
        evaluations = [
            record.event_log_entry.dagster_event.event_specific_data
            for record in instance.get_event_records(  # deprecated for 2.0; the API of 1.13
                dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION),
                limit=1000,
            )
        ]
        failed = [(e.asset_key.to_user_string(), e.check_name) for e in evaluations if not e.passed]
        assert not failed
        checked = {e.asset_key.path[0] for e in evaluations}
        assert {"silver", "marts"} <= checked
        assert (
            len([e for e in evaluations if e.asset_key.path[0] == "marts"]) == 15
        )  # every dbt test
    finally:
        instance.dispose()
    schemas = {
        row[0]
        for row in _query(
            gold_db,
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_schema IN ('gold', 'marts')",
        )
    }
    assert {
        "gold.daily_revenue",
        "gold.mrr",
        "gold.event_funnel",
        "gold.product_daily",
        "gold.customer_lifetime_value",
        "gold.tenants",
        "marts.tenant_kpis",
        "marts.customer_segments",
    } <= schemas


# --------------------------------------------------------------------------- gold vs the oracle


def test_daily_revenue_matches_the_oracle(demo, gold_db):
    orders = [o for o in _oracle(demo, "core_order") if _day(o["created_at"]) in DAYS]
    units = defaultdict(int)
    for item in _oracle(demo, "core_orderitem"):
        units[item["order_id"]] += item["quantity"] or 0
    expected: dict[tuple, dict] = defaultdict(
        lambda: {
            "orders": 0,
            "paid_orders": 0,
            "revenue": Decimal(0),
            "items_sold": 0,
            "new_customers": 0,
        }
    )
    for order in orders:
        row = expected[(_day(order["created_at"]), order["tenant_id"])]
        row["orders"] += 1
        if order["status"] in PAID:
            row["paid_orders"] += 1
            row["revenue"] += order["total"]
            row["items_sold"] += units[order["id"]]
    for customer in _oracle(demo, "core_customer"):
        if _day(customer["created_at"]) in DAYS:
            expected[(_day(customer["created_at"]), customer["tenant_id"])]["new_customers"] += 1

    rows = _query(
        gold_db,
        "SELECT day, tenant_id, orders, paid_orders, revenue, items_sold, "
        "average_order_value, new_customers FROM gold.daily_revenue",
    )
    actual = {
        (day.isoformat(), tenant): (o, p, r, i, a, n) for day, tenant, o, p, r, i, a, n in rows
    }
    assert set(actual) == set(expected)
    for key, want in expected.items():
        orders_, paid, revenue, items, average, new = actual[key]
        assert (orders_, paid, revenue, items, new) == (
            want["orders"],
            want["paid_orders"],
            want["revenue"],
            want["items_sold"],
            want["new_customers"],
        ), key
        if want["paid_orders"]:
            assert abs(average - want["revenue"] / want["paid_orders"]) <= CENT
        else:
            assert average is None
    assert sum(want["orders"] for want in expected.values()) > 50  # the demo is not trivially small


def _subscriptions_at(demo, end: datetime) -> list[dict]:
    """The subscriptions as the source held them at ``end``: the demo's DMS files replayed
    (DESIGN.md's order) up to that time, independently of silver."""
    store = open_lake(str(demo["work"] / ".lakehouse" / "data-lake"))
    contract = load_contracts().table("core_subscription")
    changes = read_changes(store, contract)
    moment = end.replace(tzinfo=UTC)
    state = replay(
        [c for c in changes if c.kind is FileKind.FULL_LOAD or c.commit_ts < moment], contract
    )
    return [
        {column.name: parse_value(values[column.name], column.type) for column in contract.columns}
        for values in state.values()
    ]


def test_mrr_matches_the_oracle(demo, gold_db):
    """MRR of each day from the subscriptions as they were at its end (their history), not as
    they are now: a later price change does not move a past day."""
    expected = {}
    for text in DAYS:
        end = datetime.fromisoformat(text) + timedelta(days=1)
        subscriptions = [s for s in _subscriptions_at(demo, end) if s["started_at"] is not None]
        per_tenant: dict[int, list] = defaultdict(lambda: [Decimal(0), 0])
        for sub in subscriptions:
            if sub["started_at"] >= end:
                continue
            entry = per_tenant[sub["tenant_id"]]
            if sub["canceled_at"] is None or sub["canceled_at"] >= end:
                monthly = (
                    sub["price"]
                    * sub["quantity"]
                    / (12 if sub["billing_interval"] == "year" else 1)
                )
                entry[0] += monthly
                entry[1] += 1
        for tenant, (mrr, active) in per_tenant.items():
            expected[(text, tenant)] = (mrr, active)
    rows = _query(gold_db, "SELECT day, tenant_id, mrr, active_subscriptions FROM gold.mrr")
    actual = {(day.isoformat(), tenant): (mrr, active) for day, tenant, mrr, active in rows}
    assert set(actual) == set(expected)
    for key, (mrr, active) in expected.items():
        assert actual[key][1] == active, key
        assert abs(actual[key][0] - mrr) <= CENT, key
    assert any(mrr > 0 for mrr, _ in expected.values())


def test_event_funnel_matches_the_oracle(demo, gold_db):
    users: dict[tuple, set] = defaultdict(set)
    tenant_days = set()
    for event in _oracle(demo, "core_event"):
        day = _day(event["occurred_at"])
        if day not in DAYS:
            continue
        tenant_days.add((day, event["tenant_id"]))
        who = (
            f"customer:{event['customer_id']}"
            if event["customer_id"] is not None
            else f"session:{event['session_id']}"
        )
        users[(day, event["tenant_id"], event["event_type"])].add(who)
    rows = _query(
        gold_db,
        "SELECT day, tenant_id, step_number, step, users, conversion_from_previous, "
        "conversion_from_first FROM gold.event_funnel",
    )
    actual = {
        (day.isoformat(), tenant, number): (step, n, previous, first)
        for day, tenant, number, step, n, previous, first in rows
    }
    assert len(actual) == len(tenant_days) * len(FUNNEL)
    for day, tenant in tenant_days:
        counts = [len(users[(day, tenant, step)]) for step in FUNNEL]
        for number, step in enumerate(FUNNEL, start=1):
            got_step, got_users, previous, first = actual[(day, tenant, number)]
            assert (got_step, got_users) == (step, counts[number - 1])
            if number > 1 and counts[number - 2]:
                assert previous == pytest.approx(counts[number - 1] / counts[number - 2])
            if counts[0]:
                assert first == pytest.approx(counts[number - 1] / counts[0])


def test_product_daily_matches_the_oracle(demo, gold_db):
    orders = {
        o["id"]: o
        for o in _oracle(demo, "core_order")
        if _day(o["created_at"]) in DAYS and o["status"] in PAID
    }
    expected: dict[tuple, list] = defaultdict(lambda: [set(), 0, Decimal(0), Decimal(0)])
    for item in _oracle(demo, "core_orderitem"):
        order = orders.get(item["order_id"])
        if order is None or item["product_id"] is None:
            continue
        row = expected[(_day(order["created_at"]), item["product_id"])]
        row[0].add(order["id"])
        row[1] += item["quantity"]
        row[2] += item["quantity"] * item["unit_price"]
        row[3] += item["discount"] or 0
    rows = _query(
        gold_db,
        "SELECT day, product_id, orders, units, gross_revenue, net_revenue FROM gold.product_daily",
    )
    actual = {(day.isoformat(), product): (o, u, g, n) for day, product, o, u, g, n in rows}
    assert set(actual) == set(expected)
    for key, (order_ids, quantity, gross, discount) in expected.items():
        assert actual[key] == (len(order_ids), quantity, _money(gross), _money(gross - discount)), (
            key
        )


def test_customer_lifetime_value_matches_the_oracle(demo, gold_db):
    paid_orders: dict[int, list] = defaultdict(lambda: [0, Decimal(0)])
    for order in _oracle(demo, "core_order"):
        if order["status"] in PAID and order["customer_id"] is not None:
            paid_orders[order["customer_id"]][0] += 1
            paid_orders[order["customer_id"]][1] += order["total"]
    invoiced: dict[int, Decimal] = defaultdict(Decimal)
    for invoice in _oracle(demo, "core_invoice"):
        if invoice["status"] == "paid" and invoice["amount_paid"] is not None:
            invoiced[invoice["customer_id"]] += invoice["amount_paid"]
    customers = _oracle(demo, "core_customer")
    rows = _query(
        gold_db,
        "SELECT customer_id, tenant_id, paid_orders, order_revenue, invoice_revenue, "
        "lifetime_value FROM gold.customer_lifetime_value",
    )
    actual = {row[0]: row[1:] for row in rows}
    assert set(actual) == {c["id"] for c in customers}
    for customer in customers:
        count, revenue = paid_orders[customer["id"]]
        paid = invoiced[customer["id"]]
        assert actual[customer["id"]] == (
            customer["tenant_id"],
            count,
            revenue,
            paid,
            revenue + paid,
        ), customer["id"]
    tenants = _query(gold_db, "SELECT tenant_id, name FROM gold.tenants ORDER BY 1")
    assert tenants == [
        (t["id"], t["name"]) for t in sorted(_oracle(demo, "core_tenant"), key=lambda t: t["id"])
    ]


def test_marts_are_built_from_gold(gold_db):
    kpis = _query(
        gold_db,
        """
        SELECT k.day, k.tenant_id, k.revenue, r.revenue, k.revenue_7d
        FROM marts.tenant_kpis k LEFT JOIN gold.daily_revenue r USING (day, tenant_id)""",
    )
    assert {row[0].isoformat() for row in kpis} == set(DAYS)
    for _kpi_day, _tenant, revenue, gold_revenue, revenue_7d in kpis:
        assert revenue == (gold_revenue or 0)
        assert revenue_7d >= revenue
    segments = dict(
        _query(gold_db, "SELECT segment, count(*) FROM marts.customer_segments GROUP BY 1")
    )
    assert (
        sum(segments.values())
        == _query(gold_db, "SELECT count(*) FROM gold.customer_lifetime_value")[0][0]
    )


# --------------------------------------------------------------------------- a late change


def _dms_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return str(value)


def test_late_update_of_an_old_order_refreshes_its_day(demo, gold_db, monkeypatch):
    work = demo["work"]
    monkeypatch.chdir(work)
    for name, value in demo["env"].items():
        if name in ("DAGSTER_HOME", "LAKEHOUSE_FRESHNESS_MAX_LAG_MINUTES"):
            monkeypatch.setenv(name, value)
    order = next(
        o
        for o in _oracle(demo, "core_order")
        if _day(o["created_at"]) == DAYS[0] and o["status"] in PAID
    )
    day, tenant = DAYS[0], order["tenant_id"]
    (before,) = _query(
        gold_db,
        "SELECT revenue FROM gold.daily_revenue WHERE day = %s AND tenant_id = %s",
        (day, tenant),
    )[0]

    # Day 4's CDC file updates the day-1 order: its total grows by 1000.
    late = "2024-01-04"
    updated = dict(order, total=order["total"] + 1000, updated_at=datetime(2024, 1, 4, 12, 0))
    line = io.StringIO()
    csv.writer(line, lineterminator="\n").writerow(
        ["U", "2024-01-04 12:00:00.000000", *(_dms_text(updated[name]) for name in order)]
    )
    folder = (
        work
        / ".lakehouse"
        / "data-lake"
        / "bronze"
        / "dms"
        / "public"
        / "core_order"
        / "2024"
        / "01"
        / "04"
    )
    folder.mkdir(parents=True)
    (folder / "20240104-120500000.csv").write_text(line.getvalue())

    from lakehouse_assets.definitions import defs as load_defs

    definitions = load_defs()
    job = definitions.resolve_implicit_global_asset_job_def()
    instance = dg.DagsterInstance.get()
    try:
        silver = job.execute_in_process(
            instance=instance,
            partition_key=late,
            asset_selection=[
                dg.AssetKey(["bronze", "core_order"]),
                dg.AssetKey(["silver", "core_order"]),
            ],
        )
        assert silver.success
        touched = (
            silver.asset_materializations_for_node("silver__core_order")[0]
            .metadata["touched_dates"]
            .value
        )
        assert touched["created_at"] == [day] and touched["updated_at"] == sorted(
            {_day(order["updated_at"]), late}
        )

        sensor = definitions.get_sensor_def("gold_refresh_sensor")
        tick = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=definitions)
        )
        ranged = [r for r in tick.run_requests if "dagster/asset_partition_range_start" in r.tags]
        assert len(ranged) == 1
        request = ranged[0]
        assert request.tags["dagster/asset_partition_range_start"] == day
        assert request.tags["dagster/asset_partition_range_end"] == late  # the data horizon
        # The order's day for the order summaries; MRR only for the new day 4 (its
        # subscriptions count on every day up to the newest data).
        assert {key.to_user_string() for key in request.asset_selection} == {
            "gold/daily_revenue",
            "gold/product_daily",
            "gold/mrr",
            "marts/tenant_kpis",
        }
        reason = request.tags["lakehouse/refresh_reason"]
        assert (
            f"silver/core_order partition {late}" in reason and f"changed rows of {day}" in reason
        )
        unpartitioned = [r for r in tick.run_requests if r not in ranged]
        assert unpartitioned[0].asset_selection[0] == dg.AssetKey(
            ["gold", "customer_lifetime_value"]
        )

        refresh = job.execute_in_process(
            instance=instance, asset_selection=request.asset_selection, tags=request.tags
        )
        assert refresh.success
        materialization = next(
            m
            for m in refresh.asset_materializations_for_node("gold__daily_revenue")
            if m.partition == day
        )
        assert materialization.metadata["refresh_reason"].value == reason

        (after,) = _query(
            gold_db,
            "SELECT revenue FROM gold.daily_revenue WHERE day = %s AND tenant_id = %s",
            (day, tenant),
        )[0]
        assert after == before + 1000
        (kpi,) = _query(
            gold_db,
            "SELECT revenue FROM marts.tenant_kpis WHERE day = %s AND tenant_id = %s",
            (day, tenant),
        )[0]
        assert kpi == after

        # The next tick finds gold newer than every change: nothing more to do for those days.
        again = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=definitions, cursor=tick.cursor)
        )
        assert not [
            r for r in again.run_requests if "dagster/asset_partition_range_start" in r.tags
        ]
    finally:
        instance.dispose()
