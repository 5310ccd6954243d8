"""Declarative automation and freshness.

* ``follow_upstream()``: the automation condition of every asset that follows
  its upstream assets (silver after bronze, later gold after silver): run the
  partitions whose upstream partitions were updated *by a run* since this asset
  last ran or was requested, once nothing upstream or here is in progress. It
  covers every partition, not only the latest (``eager()`` does only the
  latest), so backfills of an upstream asset flow downstream. Updates recorded
  without a run (the landing sensor's bronze materializations) do not trigger
  it: the sensor requests those silver runs itself, as partition ranges with
  run keys, and a second request for them here would only race with it.
* Freshness checks on silver: how far the newest source commit applied to the
  Iceberg table (``lakehouse.max-commit-ts`` in its snapshot summary) lags
  behind now; they run after each merge and on a cron schedule, so a stalled
  pipeline shows up even when nothing runs.
* One automation-condition sensor for the project, running by default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
from pyiceberg.catalog import Catalog

from lakehouse_assets.contracts import Contracts, TableContract
from lakehouse_assets.names import (
    AUTOMATION_SENSOR_NAME,
    FRESHNESS_CHECK,
    MAX_COMMIT_TS_PROPERTY,
    silver_asset_key,
)
from lakehouse_assets.resources import IcebergCatalogResource
from lakehouse_assets.silver.tables import table_identifier

FRESHNESS_MAX_LAG_VAR = "LAKEHOUSE_FRESHNESS_MAX_LAG_MINUTES"
FRESHNESS_CRON_VAR = "LAKEHOUSE_FRESHNESS_CRON"
AUTOMATION_INTERVAL_VAR = "LAKEHOUSE_AUTOMATION_INTERVAL_SECONDS"


@dataclass(frozen=True)
class AutomationSettings:
    freshness_max_lag: timedelta = timedelta(minutes=5)
    freshness_cron: str = "*/5 * * * *"
    interval_seconds: int = 30

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> AutomationSettings:
        defaults = cls()
        lag = environ.get(FRESHNESS_MAX_LAG_VAR, "").strip()
        interval = environ.get(AUTOMATION_INTERVAL_VAR, "").strip()
        try:
            return cls(
                freshness_max_lag=timedelta(minutes=float(lag))
                if lag
                else defaults.freshness_max_lag,
                freshness_cron=environ.get(FRESHNESS_CRON_VAR, "").strip()
                or defaults.freshness_cron,
                interval_seconds=int(interval) if interval else defaults.interval_seconds,
            )
        except ValueError as exc:
            raise ValueError(
                f"{FRESHNESS_MAX_LAG_VAR} (minutes) and {AUTOMATION_INTERVAL_VAR} (seconds) "
                f"must be numbers: {exc}"
            ) from None


def follow_upstream() -> dg.AutomationCondition:
    updated_by_a_run = (
        dg.AutomationCondition.newly_updated()
        # a run that also targets this asset handles it itself
        & ~dg.AutomationCondition.executed_with_root_target()
        # runless materializations (the landing sensor's) have no run to match
        & dg.AutomationCondition.any_new_update_has_run_tags()
    ).with_label("newly_updated_by_a_run")
    return (
        dg.AutomationCondition.any_deps_match(
            updated_by_a_run | dg.AutomationCondition.will_be_requested()
        )
        .with_label("any_deps_updated_by_a_run")
        .since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("follow_upstream")


def freshness_condition(cron: str) -> dg.AutomationCondition:
    """Run a freshness check on every cron tick and after its asset updates."""
    return (
        (
            dg.AutomationCondition.cron_tick_passed(cron)
            | dg.AutomationCondition.any_deps_updated()
        ).since_last_handled()
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"freshness({cron})")


# --------------------------------------------------------------------------- freshness


@dataclass(frozen=True)
class Freshness:
    passed: bool
    lag: timedelta | None  # now - newest applied source commit
    max_commit_ts: datetime | None
    snapshot_id: int | None
    committed_at: datetime | None  # when the snapshot was committed
    reason: str


def silver_freshness(
    catalog: Catalog, contract: TableContract, max_lag: timedelta, now: datetime
) -> Freshness:
    identifier = table_identifier(contract)
    if not catalog.table_exists(identifier):
        return Freshness(False, None, None, None, None, f"{identifier} does not exist yet")
    snapshot = catalog.load_table(identifier).current_snapshot()
    value = None
    if snapshot is not None and snapshot.summary is not None:
        value = snapshot.summary.additional_properties.get(MAX_COMMIT_TS_PROPERTY)
    if not value:
        return Freshness(False, None, None, None, None, f"{identifier} has no applied commit yet")
    newest = datetime.fromisoformat(value)
    if newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)  # commit times are UTC
    lag = now - newest
    committed_at = datetime.fromtimestamp(snapshot.timestamp_ms / 1000, tz=UTC)
    passed = lag <= max_lag
    reason = (
        f"newest applied commit {newest.isoformat()} is {_human(lag)} old "
        f"({'within' if passed else 'over'} {_human(max_lag)})"
    )
    return Freshness(passed, lag, newest, snapshot.snapshot_id, committed_at, reason)


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {minutes}m"
    return f"{sign}{minutes}m {seconds}s"


def build_freshness_checks(
    contracts: Contracts, settings: AutomationSettings | None = None
) -> list[dg.AssetChecksDefinition]:
    settings = settings or AutomationSettings()
    return [_freshness_check(contract, settings) for contract in contracts.tables.values()]


def _freshness_check(
    contract: TableContract, settings: AutomationSettings
) -> dg.AssetChecksDefinition:
    max_lag = settings.freshness_max_lag

    @dg.asset_check(
        asset=silver_asset_key(contract.name),
        name=FRESHNESS_CHECK,
        description=(
            f"The newest source commit applied to {table_identifier(contract)} is at most "
            f"{_human(max_lag)} behind now ({FRESHNESS_MAX_LAG_VAR})."
        ),
        automation_condition=freshness_condition(settings.freshness_cron),
    )
    def freshness(iceberg: IcebergCatalogResource) -> dg.AssetCheckResult:
        result = silver_freshness(iceberg.catalog(), contract, max_lag, datetime.now(UTC))
        return dg.AssetCheckResult(
            passed=result.passed,
            description=result.reason,
            metadata={
                "lag_seconds": result.lag.total_seconds() if result.lag is not None else None,
                "max_lag_seconds": max_lag.total_seconds(),
                "max_commit_ts": result.max_commit_ts.isoformat() if result.max_commit_ts else None,
                "snapshot_id": str(result.snapshot_id) if result.snapshot_id else None,
                "snapshot_committed_at": (
                    result.committed_at.isoformat() if result.committed_at else None
                ),
            },
        )

    return freshness


def build_automation_sensor(
    settings: AutomationSettings | None = None,
) -> dg.AutomationConditionSensorDefinition:
    settings = settings or AutomationSettings()
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR_NAME,
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=settings.interval_seconds,
        description=(
            "Evaluates the automation conditions of every asset and check "
            "(follow_upstream, freshness)."
        ),
    )
