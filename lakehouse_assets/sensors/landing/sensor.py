"""The ``dms_landing_sensor`` definition: a scan from the saved cursor (and the tables'
quarantines), then its plan."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import dagster as dg
from pyiceberg.catalog import Catalog

from lakehouse_assets.contracts import Contracts
from lakehouse_assets.names import LANDING_SENSOR_NAME, silver_asset_key
from lakehouse_assets.resources import IcebergCatalogResource, LakeResource
from lakehouse_assets.sensors.landing.cursor import LandingCursor
from lakehouse_assets.sensors.landing.plan import plan_requests
from lakehouse_assets.sensors.landing.scan import check_layout, scan_landing
from lakehouse_assets.sensors.landing.settings import LandingSettings
from lakehouse_assets.silver.quarantine import QuarantinedFile, read_quarantine

SENSOR_NAME = LANDING_SENSOR_NAME
_SKIPPED_LOGGED = 20  # skipped keys named in a tick's log; the rest only counts


def partition_bounds(partitions_def: dg.PartitionsDefinition, now: datetime) -> tuple[date, date]:
    """First and last day that have a daily partition at ``now``."""
    with dg.partition_loading_context(effective_dt=now):
        first = partitions_def.get_first_partition_key()
        last = partitions_def.get_last_partition_key()
    if first is None or last is None:
        raise ValueError("the partitions definition has no partitions yet")
    return date.fromisoformat(first), date.fromisoformat(last)


def read_quarantines(
    catalog: Catalog, contracts: Contracts
) -> dict[str, dict[str, QuarantinedFile]]:
    """Each table's quarantined files by key (a table that never quarantined one has no
    quarantine table: one catalog lookup)."""
    return {name: read_quarantine(catalog, contract) for name, contract in contracts.tables.items()}


def build_dms_landing_sensor(
    contracts: Contracts,
    partitions_def: dg.PartitionsDefinition,
    settings: LandingSettings | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dg.SensorDefinition:
    settings = settings or LandingSettings()
    try:
        check_layout(contracts.dms)
        layout_error = None
    except ValueError as exc:
        # Keep the code location loadable (backfills still work); every tick says why not.
        layout_error = str(exc)
    silver_keys = [silver_asset_key(name) for name in contracts.tables]

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=settings.interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        target=silver_keys,
        description=(
            "Lists new AWS DMS files under each table folder (CDC files after a StartAfter "
            "cursor, "
            f"{settings.lookback} lookback for late files, at most "
            f"{settings.max_files_per_tick} files per tick), records a bronze materialization "
            "per landed partition and requests one silver partition-range run per table. "
            "Full-load files are listed whole, so a reload under the same names is seen; "
            "quarantined files are looked up by key, so a fixed one is applied."
        ),
    )
    def dms_landing_sensor(
        context: dg.SensorEvaluationContext, lake: LakeResource, iceberg: IcebergCatalogResource
    ) -> dg.SensorResult:
        if layout_error:
            raise ValueError(layout_error)
        now = clock()
        first_day, last_day = partition_bounds(partitions_def, now)
        try:
            quarantined = read_quarantines(iceberg.catalog(), contracts)
        except Exception as exc:  # noqa: BLE001 - any catalog failure: list the files anyway
            context.log.warning(
                f"quarantine tables unreadable, fixed quarantined files are not looked up "
                f"this tick: {exc}"
            )
            quarantined = None
        scan = scan_landing(
            lake.store(),
            contracts,
            LandingCursor.decode(context.cursor),
            settings,
            first_day=first_day,
            last_day=last_day,
            quarantined=quarantined,
        )
        events, requests = plan_requests(scan, settings)
        for key, reason in scan.skipped[:_SKIPPED_LOGGED]:
            context.log.warning(f"skipped {key}: {reason}")
        if scan.waiting:
            context.log.info(
                f"waiting for the partition of {len(scan.waiting)} files, e.g. {scan.waiting[0]}"
            )
        landed = f"{len(scan.files)} new files ({sum(f.size for f in scan.files)} bytes)"
        rewritten = sum(f.rewritten for f in scan.files)
        if rewritten:
            landed += f", {rewritten} of them new versions of known keys"
        context.log.info(
            f"{landed} in {len(events)} bronze partitions, {len(requests)} silver runs requested; "
            f"{scan.listed} keys listed" + ("; backlog remains" if scan.backlog else "")
        )
        return dg.SensorResult(
            run_requests=requests, asset_events=events, cursor=scan.cursor.encode()
        )

    return dms_landing_sensor
