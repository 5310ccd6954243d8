"""Sensors: the DMS landing sensor (new files -> bronze partitions + silver runs), run-failure
alerts and failed-check alerts (both posted to the alert webhook)."""

from lakehouse_assets.sensors.check_failure import build_check_failure_sensor
from lakehouse_assets.sensors.landing import (
    SENSOR_NAME,
    LandingCursor,
    LandingSettings,
    build_dms_landing_sensor,
    plan_requests,
    read_quarantines,
    scan_landing,
)
from lakehouse_assets.sensors.run_failure import build_run_failure_sensor
from lakehouse_assets.sensors.webhook import webhook_from_env

__all__ = [
    "SENSOR_NAME",
    "LandingCursor",
    "LandingSettings",
    "build_check_failure_sensor",
    "build_dms_landing_sensor",
    "build_run_failure_sensor",
    "plan_requests",
    "read_quarantines",
    "scan_landing",
    "webhook_from_env",
]
