"""Refresh rules of the gold sensor (pure helpers, no Dagster instance)."""

from datetime import date

import dagster as dg

from lakehouse_assets.gold.refresh import (
    SilverChange,
    contiguous_ranges,
    data_horizon,
    days_for_rule,
    plan_refresh,
    run_requests,
)
from lakehouse_assets.gold.summaries import SUMMARIES
from lakehouse_assets.names import gold_asset_key

FIRST, LAST = date(2024, 1, 1), date(2024, 1, 10)


def test_days_for_rule_keeps_partition_days_and_goes_onward_when_asked():
    touched = {
        "created_at": ["2023-12-30", "2024-01-02", "2024-01-05"],
        "updated_at": ["2024-01-06"],
    }
    assert days_for_rule(touched, ["created_at"], False, FIRST, LAST) == {
        date(2024, 1, 2),
        date(2024, 1, 5),
    }
    assert days_for_rule(touched, ["created_at"], True, FIRST, date(2024, 1, 3)) == {
        date(2024, 1, 1),
        date(2024, 1, 2),
        date(2024, 1, 3),
    }
    assert days_for_rule(touched, ["other"], False, FIRST, LAST) == set()


def test_contiguous_ranges_merge_and_extend():
    days = [date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 5), date(2024, 1, 9)]
    assert contiguous_ranges(days, 0, LAST) == [
        (date(2024, 1, 1), date(2024, 1, 2)),
        (date(2024, 1, 5), date(2024, 1, 5)),
        (date(2024, 1, 9), date(2024, 1, 9)),
    ]
    assert contiguous_ranges(days, 3, LAST) == [(date(2024, 1, 1), date(2024, 1, 10))]


def test_late_order_change_plans_its_own_day_only_when_gold_is_older():
    change = SilverChange(
        "core_order",
        storage_id=50,
        run_id="abcdef123456",
        partition="2024-01-06",
        touched={"created_at": ["2024-01-01"], "updated_at": ["2024-01-06"]},
    )
    latest = {gold_asset_key("daily_revenue"): {"2024-01-01": 10}}
    plan = plan_refresh(
        [change],
        SUMMARIES,
        gold_asset_key,
        FIRST,
        LAST,
        latest_gold=lambda key, partitioned: latest.get(key, {}),
    )
    assert plan.days[gold_asset_key("daily_revenue")] == {date(2024, 1, 1)}
    assert plan.days[gold_asset_key("product_daily")] == {date(2024, 1, 1)}
    assert gold_asset_key("mrr") not in plan.days
    assert plan.unpartitioned == {gold_asset_key("customer_lifetime_value")}
    assert (
        "silver/core_order partition 2024-01-06 (run abcdef12) changed rows of 2024-01-01"
        in plan.causes[gold_asset_key("daily_revenue")][0]
    )

    # Gold written after the change: nothing to refresh.
    newer = {
        key: {"2024-01-01": 60, None: 60}
        for key in map(
            gold_asset_key, ("daily_revenue", "product_daily", "customer_lifetime_value")
        )
    }
    plan = plan_refresh(
        [change],
        SUMMARIES,
        gold_asset_key,
        FIRST,
        LAST,
        latest_gold=lambda key, partitioned: newer.get(key, {}),
    )
    assert not plan.days and not plan.unpartitioned


def test_run_requests_carry_range_reason_and_marts():
    change = SilverChange(
        "core_order", 50, "abcdef123456", "2024-01-06", {"created_at": ["2024-01-01", "2024-01-02"]}
    )
    plan = plan_refresh(
        [change], SUMMARIES, gold_asset_key, FIRST, LAST, latest_gold=lambda key, partitioned: {}
    )
    marts_daily, marts = (
        dg.AssetKey(["marts", "tenant_kpis"]),
        dg.AssetKey(["marts", "customer_segments"]),
    )
    requests = run_requests(plan, [marts_daily], [marts], trailing_days=2, last=LAST)
    ranged, unpartitioned = requests
    assert ranged.tags["dagster/asset_partition_range_start"] == "2024-01-01"
    assert ranged.tags["dagster/asset_partition_range_end"] == "2024-01-04"  # +2 trailing days
    assert (
        marts_daily in ranged.asset_selection
        and "changed rows of 2024-01-01, 2024-01-02" in ranged.tags["lakehouse/refresh_reason"]
    )
    assert unpartitioned.asset_selection == [gold_asset_key("customer_lifetime_value"), marts]


def test_data_horizon_is_the_newest_day_with_data():
    change = SilverChange("core_order", 50, "r", "2024-01-06", {})
    assert data_horizon([change], [{"2024-01-03": 1}], LAST) == date(2024, 1, 6)
    assert data_horizon([], [], LAST) == LAST
