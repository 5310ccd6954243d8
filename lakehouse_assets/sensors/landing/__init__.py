"""The DMS landing sensor: new DMS files become bronze partitions and silver runs.

Each tick lists only what is new under each table's folder, per key stream
(``scan``: the CDC date folders and the full-load files, each with its cursor,
``cursor``), at most ``max_files_per_tick`` keys, tables taking turns. For the
files taken it records one bronze materialization per (table, day) and requests
silver partition-range runs per table under run keys derived from the files
(``plan``), so a tick evaluated twice launches nothing twice and a tick from the
saved cursor finds nothing new. ``sensor`` puts these together as the Dagster
sensor; ``settings`` reads its ``LAKEHOUSE_SENSOR_*`` variables.
"""

from lakehouse_assets.sensors.landing.cursor import LandingCursor, StreamCursor
from lakehouse_assets.sensors.landing.plan import day_ranges, plan_requests
from lakehouse_assets.sensors.landing.scan import (
    LandedFile,
    LandingScan,
    check_layout,
    scan_landing,
)
from lakehouse_assets.sensors.landing.sensor import (
    SENSOR_NAME,
    build_dms_landing_sensor,
    partition_bounds,
)
from lakehouse_assets.sensors.landing.settings import LandingSettings

__all__ = [
    "SENSOR_NAME",
    "LandedFile",
    "LandingCursor",
    "LandingScan",
    "LandingSettings",
    "StreamCursor",
    "build_dms_landing_sensor",
    "check_layout",
    "day_ranges",
    "partition_bounds",
    "plan_requests",
    "scan_landing",
]
