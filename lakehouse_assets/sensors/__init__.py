"""Sensors: the DMS landing sensor (new files -> bronze partitions + silver runs) and
run-failure alerts."""

from lakehouse_assets.sensors.landing import (
    SENSOR_NAME,
    LandingCursor,
    LandingSettings,
    build_dms_landing_sensor,
    plan_requests,
    scan_landing,
)
from lakehouse_assets.sensors.run_failure import build_run_failure_sensor, webhook_from_env

__all__ = [
    "SENSOR_NAME",
    "LandingCursor",
    "LandingSettings",
    "build_dms_landing_sensor",
    "build_run_failure_sensor",
    "plan_requests",
    "scan_landing",
    "webhook_from_env",
]
