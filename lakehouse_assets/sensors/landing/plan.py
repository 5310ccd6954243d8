"""What a scan asks for: bronze materializations per (table, day), silver range runs per table.

The bronze materializations record each day's files with their count and bytes. The
days of one table become one partition-range run (days further apart than
``range_gap_days`` start a new range). Run keys are derived from the files requested and
their versions, so evaluating the same tick twice (a daemon restarted before the cursor was
saved) launches nothing twice, while a file rewritten under its key (a reload, a fixed
quarantined file) gets a run of its own.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from datetime import date

import dagster as dg

from lakehouse_assets.names import (
    LANDING_SENSOR_NAME,
    NEW_FILES_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    TRIGGER_TAG,
    bronze_asset_key,
    silver_asset_key,
)
from lakehouse_assets.sensors.landing.context import LandedFile, LandingScan
from lakehouse_assets.sensors.landing.settings import LandingSettings

# A silver run is one merge step and its checks: running them in the run's own
# process saves a Python start per step (seconds each), more than most merges take.
IN_PROCESS_RUN_CONFIG = {"execution": {"config": {"in_process": {}}}}


def plan_requests(
    scan: LandingScan, settings: LandingSettings
) -> tuple[list[dg.AssetMaterialization], list[dg.RunRequest]]:
    """Bronze materializations per (table, day) and silver range runs per table."""
    by_day: dict[tuple[str, date], list[LandedFile]] = defaultdict(list)
    for landed in scan.files:
        by_day[(landed.table, landed.day)].append(landed)
    events = [
        _bronze_materialization(table, day, files) for (table, day), files in sorted(by_day.items())
    ]

    requests = []
    days_by_table: dict[str, list[date]] = defaultdict(list)
    for table, day in sorted(by_day):
        days_by_table[table].append(day)
    for table, days in sorted(days_by_table.items()):
        for first, last in day_ranges(days, settings.range_gap_days):
            files = [
                landed
                for (owner, day), landed_files in by_day.items()
                if owner == table and first <= day <= last
                for landed in landed_files
            ]
            requests.append(_silver_range_run(table, first, last, files, settings))
    return events, requests


def day_ranges(days: Iterable[date], gap_days: int) -> list[tuple[date, date]]:
    """Sorted ``days`` as (first, last) ranges; days at most ``gap_days`` apart share one."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and (day - ranges[-1][1]).days <= gap_days + 1:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def _bronze_materialization(
    table: str, day: date, files: list[LandedFile]
) -> dg.AssetMaterialization:
    keys = sorted(f.key for f in files)
    return dg.AssetMaterialization(
        asset_key=bronze_asset_key(table),
        partition=day.isoformat(),
        description=f"{len(files)} DMS files landed (recorded by {LANDING_SENSOR_NAME})",
        metadata={
            "files": len(files),
            "bytes": sum(f.size for f in files),
            "rewritten": sum(f.rewritten for f in files),
            "first_file": keys[0],
            "last_file": keys[-1],
            "newest_last_modified": dg.MetadataValue.timestamp(max(f.last_modified for f in files)),
            "landed_by": LANDING_SENSOR_NAME,
        },
    )


def _silver_range_run(
    table: str, first: date, last: date, files: list[LandedFile], settings: LandingSettings
) -> dg.RunRequest:
    # The run key names the files and their versions, not the tick: the same files give the
    # same key, a file rewritten under its key another one.
    names = sorted(f"{f.key}\0{f.version}" for f in files)
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:20]
    return dg.RunRequest(
        run_key=f"silver/{table}:{first.isoformat()}...{last.isoformat()}:{digest}",
        asset_selection=[silver_asset_key(table)],
        run_config=IN_PROCESS_RUN_CONFIG if settings.run_in_process else None,
        tags={
            RANGE_START_TAG: first.isoformat(),
            RANGE_END_TAG: last.isoformat(),
            TRIGGER_TAG: LANDING_SENSOR_NAME,
            NEW_FILES_TAG: str(len(files)),
        },
    )
