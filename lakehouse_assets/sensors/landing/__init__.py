"""The DMS landing sensor: new DMS files become bronze partitions and silver runs.

Each tick lists what is new under each table's folder (``scan``: the CDC date folders after
a cursor, the full-load files whole, each known with its version, ``cursor``), looks up the
table's quarantined files by key (``quarantine``: a fixed one is taken again), at most
``max_files_per_tick`` keys, tables taking turns. For the files taken it records one bronze
materialization per (table, day) and requests silver partition-range runs per table under
run keys derived from the files and their versions (``plan``), so a tick evaluated twice
launches nothing twice and a tick from the saved cursor finds nothing new. ``context`` holds
what the parts of a scan share; ``sensor`` puts them together as the Dagster sensor;
``settings`` reads its ``LAKEHOUSE_SENSOR_*`` variables.
"""

from lakehouse_assets.sensors.landing.context import LandedFile, LandingScan, object_version
from lakehouse_assets.sensors.landing.cursor import (
    CdcCursor,
    LandingCursor,
    LoadCursor,
    TableCursor,
)
from lakehouse_assets.sensors.landing.plan import day_ranges, plan_requests
from lakehouse_assets.sensors.landing.scan import check_layout, scan_landing
from lakehouse_assets.sensors.landing.sensor import (
    SENSOR_NAME,
    build_dms_landing_sensor,
    partition_bounds,
    read_quarantines,
)
from lakehouse_assets.sensors.landing.settings import LandingSettings

__all__ = [
    "SENSOR_NAME",
    "CdcCursor",
    "LandedFile",
    "LandingCursor",
    "LandingScan",
    "LandingSettings",
    "LoadCursor",
    "TableCursor",
    "build_dms_landing_sensor",
    "check_layout",
    "day_ranges",
    "object_version",
    "partition_bounds",
    "plan_requests",
    "read_quarantines",
    "scan_landing",
]
