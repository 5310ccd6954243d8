"""Late changes reach gold: the refresh sensor.

Every silver merge records, per date and timestamp column, the business dates of
the rows it changed (old and new values) as materialization metadata
``touched_dates``. An order created on day D and updated on day D+5 touches D.

``gold_refresh_sensor`` reads the silver materializations since its cursor,
maps their touched dates to gold partitions through each summary's refresh
rules, drops the partitions whose gold materialization is already newer than
the change, and requests runs for the rest: one run per contiguous range of days
(single-run backfills), with the dbt marts downstream in the same run. Each run
carries the tag ``lakehouse/refresh_reason`` ("why was this partition
refreshed"), which the run page shows and every gold materialization repeats as
``refresh_reason`` metadata.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import dagster as dg

from lakehouse_assets.names import (
    GOLD_REFRESH_SENSOR_NAME,
    RANGE_END_TAG,
    RANGE_START_TAG,
    REFRESH_REASON_TAG,
    TOUCHED_DATES_METADATA,
    silver_asset_key,
)

MAX_REASON_CHARS = 900


@dataclass(frozen=True)
class SilverChange:
    """One silver materialization: which table, when, and the business dates it touched."""

    table: str
    storage_id: int
    run_id: str
    partition: str | None
    touched: Mapping[str, Sequence[str]]  # column -> ISO dates


@dataclass
class RefreshPlan:
    days: dict[dg.AssetKey, set[date]] = field(default_factory=lambda: defaultdict(set))
    unpartitioned: set[dg.AssetKey] = field(default_factory=set)
    causes: dict[dg.AssetKey, list[str]] = field(default_factory=lambda: defaultdict(list))


def days_for_rule(
    touched: Mapping[str, Sequence[str]],
    columns: Iterable[str],
    onward: bool,
    first: date,
    last: date,
) -> set[date]:
    """The partitions (days in ``[first, last]``) that a change touching ``touched`` reaches."""
    days = {date.fromisoformat(text) for column in columns for text in touched.get(column, ())}
    if not days:
        return set()
    if onward:
        start = max(min(days), first)
        return (
            {start + timedelta(days=offset) for offset in range((last - start).days + 1)}
            if start <= last
            else set()
        )
    return {day for day in days if first <= day <= last}


def contiguous_ranges(
    days: Iterable[date], extend_days: int, last: date
) -> list[tuple[date, date]]:
    """Sorted inclusive ranges covering ``days``, each extended by ``extend_days`` (capped at
    ``last``), overlapping or adjacent ranges merged."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        end = min(day + timedelta(days=extend_days), last)
        if ranges and day <= ranges[-1][1] + timedelta(days=1):
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], end))
        else:
            ranges.append((day, end))
    return ranges


def _describe(change: SilverChange, days: set[date]) -> str:
    shown = ", ".join(day.isoformat() for day in sorted(days)[:5]) + (
        " ..." if len(days) > 5 else ""
    )
    landed = f" partition {change.partition}" if change.partition else ""
    return f"silver/{change.table}{landed} (run {change.run_id[:8]}) changed rows of {shown}"


def _reason(causes: Iterable[str]) -> str:
    unique = list(dict.fromkeys(causes))
    text = "; ".join(unique)
    if len(text) > MAX_REASON_CHARS:
        text = text[: MAX_REASON_CHARS - 20].rsplit(";", 1)[0] + f"; and {len(unique)} more"
    return text


def build_gold_refresh_sensor(
    summaries: Sequence,  # of GoldSummary
    gold_key: Callable[[str], dg.AssetKey],
    partitions_def: dg.TimeWindowPartitionsDefinition,
    partitioned_downstream: Sequence[dg.AssetKey] = (),
    unpartitioned_downstream: Sequence[dg.AssetKey] = (),
    trailing_days: int = 29,
    minimum_interval_seconds: int = 60,
) -> dg.SensorDefinition:
    """The sensor that refreshes gold (and the marts below it) after silver merges.

    ``trailing_days``: partitioned marts look back this many days (trailing 30-day
    revenue), so a run refreshing days D1..D2 covers D1..D2+trailing_days.
    """
    silver_tables = sorted({table for summary in summaries for table in summary.silver_tables})
    all_keys = (
        [gold_key(s.name) for s in summaries]
        + list(partitioned_downstream)
        + list(unpartitioned_downstream)
    )

    @dg.sensor(
        name=GOLD_REFRESH_SENSOR_NAME,
        description=(
            "Refreshes the gold partitions (and marts) whose business dates a silver merge "
            "changed, including late updates to old days; the run tag "
            "lakehouse/refresh_reason says why."
        ),
        asset_selection=dg.AssetSelection.assets(*all_keys),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def gold_refresh_sensor(context: dg.SensorEvaluationContext):
        cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        changes: list[SilverChange] = []
        for table in silver_tables:
            result = context.instance.fetch_materializations(
                dg.AssetRecordsFilter(
                    asset_key=silver_asset_key(table), after_storage_id=cursor.get(table)
                ),
                limit=1000,
                ascending=True,
            )
            for record in result.records:
                cursor[table] = record.storage_id
                entry = record.asset_materialization.metadata.get(TOUCHED_DATES_METADATA)
                touched = entry.value if entry is not None else None
                if touched:
                    changes.append(
                        SilverChange(
                            table,
                            record.storage_id,
                            record.run_id,
                            record.asset_materialization.partition,
                            touched,
                        )
                    )
        last_key = partitions_def.get_last_partition_key()
        if last_key is None or not changes:
            return dg.SensorResult(run_requests=[], cursor=json.dumps(cursor, sort_keys=True))
        latest = {
            gold_key(summary.name): _latest_gold(
                context.instance, gold_key(summary.name), summary.partitioned
            )
            for summary in summaries
        }
        last = data_horizon(changes, latest.values(), date.fromisoformat(last_key))
        plan = plan_refresh(
            changes,
            summaries,
            gold_key,
            first=partitions_def.start.date(),
            last=last,
            latest_gold=lambda key, partitioned: latest[key],
        )
        requests = run_requests(
            plan, partitioned_downstream, unpartitioned_downstream, trailing_days, last
        )
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))

    return gold_refresh_sensor


def data_horizon(
    changes: Sequence[SilverChange], latest_gold: Iterable[Mapping], last_partition: date
) -> date:
    """The last day with data: the newest silver partition that changed or gold partition that
    exists (an "onward" refresh stops there, not at the calendar's last partition)."""
    days = [date.fromisoformat(change.partition) for change in changes if change.partition]
    days += [date.fromisoformat(key) for latest in latest_gold for key in latest if key]
    return min(max(days), last_partition) if days else last_partition


def _latest_gold(
    instance: dg.DagsterInstance, key: dg.AssetKey, partitioned: bool
) -> Mapping[str | None, int]:
    if partitioned:
        return instance.get_latest_storage_id_by_partition(
            key, dg.DagsterEventType.ASSET_MATERIALIZATION
        )
    record = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1).records
    return {None: record[0].storage_id} if record else {}


def plan_refresh(
    changes: Sequence[SilverChange],
    summaries: Sequence,
    gold_key,
    first: date,
    last: date,
    latest_gold,
) -> RefreshPlan:
    """Which gold partitions each change reaches and that are older than the change."""
    plan = RefreshPlan()
    for summary in summaries:
        key = gold_key(summary.name)
        latest = latest_gold(key, summary.partitioned)
        for change in changes:
            if change.table not in summary.silver_tables:
                continue
            if not summary.partitioned:
                if latest.get(None, -1) < change.storage_id:
                    plan.unpartitioned.add(key)
                    plan.causes[key].append(
                        f"silver/{change.table} (run {change.run_id[:8]}) changed"
                    )
                continue
            days: set[date] = set()
            for rule in summary.refresh:
                if rule.table == change.table:
                    days |= days_for_rule(change.touched, rule.columns, rule.onward, first, last)
            stale = {day for day in days if latest.get(day.isoformat(), -1) < change.storage_id}
            if stale:
                plan.days[key] |= stale
                plan.causes[key].append(_describe(change, stale))
    return plan


def run_requests(
    plan: RefreshPlan,
    partitioned_downstream: Sequence[dg.AssetKey],
    unpartitioned_downstream: Sequence[dg.AssetKey],
    trailing_days: int,
    last: date,
) -> list[dg.RunRequest]:
    requests = []
    all_days = set().union(*plan.days.values()) if plan.days else set()
    extend = trailing_days if partitioned_downstream else 0
    for start, end in contiguous_ranges(all_days, extend, last):
        keys = [key for key, days in plan.days.items() if any(start <= day <= end for day in days)]
        causes = [cause for key in keys for cause in plan.causes[key]]
        requests.append(
            dg.RunRequest(
                run_key=None,
                asset_selection=[*keys, *partitioned_downstream],
                tags={
                    RANGE_START_TAG: start.isoformat(),
                    RANGE_END_TAG: end.isoformat(),
                    REFRESH_REASON_TAG: _reason(causes),
                },
            )
        )
    if plan.unpartitioned:
        keys = sorted(plan.unpartitioned, key=lambda key: key.to_user_string())
        causes = [cause for key in keys for cause in plan.causes[key]]
        requests.append(
            dg.RunRequest(
                run_key=None,
                asset_selection=[*keys, *unpartitioned_downstream],
                tags={REFRESH_REASON_TAG: _reason(causes)},
            )
        )
    return requests
