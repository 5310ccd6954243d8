"""The landing sensor's settings, from ``LAKEHOUSE_SENSOR_*`` environment variables.

A module of its own, below the scan and the plan that read it and the sensor that is
built from it, so that none of them imports another in a circle.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

LOOKBACK_VAR = "LAKEHOUSE_SENSOR_LOOKBACK_MINUTES"
MAX_FILES_VAR = "LAKEHOUSE_SENSOR_MAX_FILES_PER_TICK"
INTERVAL_VAR = "LAKEHOUSE_SENSOR_INTERVAL_SECONDS"
RANGE_GAP_VAR = "LAKEHOUSE_SENSOR_RANGE_GAP_DAYS"
IN_PROCESS_VAR = "LAKEHOUSE_SENSOR_RUN_IN_PROCESS"


@dataclass(frozen=True)
class LandingSettings:
    lookback: timedelta = timedelta(minutes=60)
    max_files_per_tick: int = 5000
    interval_seconds: int = 30
    range_gap_days: int = 7
    run_in_process: bool = True  # needs the default (multi_or_in_process) executor

    def __post_init__(self) -> None:
        if self.lookback < timedelta(0):
            raise ValueError("the sensor lookback cannot be negative")
        if self.max_files_per_tick < 1:
            raise ValueError("the sensor needs max_files_per_tick >= 1")
        if self.interval_seconds < 1 or self.range_gap_days < 0:
            raise ValueError("the sensor interval must be >= 1 s and the range gap >= 0 days")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> LandingSettings:
        defaults = cls()
        return cls(
            lookback=timedelta(
                minutes=_int_env(environ, LOOKBACK_VAR, defaults.lookback // timedelta(minutes=1))
            ),
            max_files_per_tick=_int_env(environ, MAX_FILES_VAR, defaults.max_files_per_tick),
            interval_seconds=_int_env(environ, INTERVAL_VAR, defaults.interval_seconds),
            range_gap_days=_int_env(environ, RANGE_GAP_VAR, defaults.range_gap_days),
            run_in_process=environ.get(IN_PROCESS_VAR, "1").strip().lower()
            not in ("0", "false", "no"),
        )


def _int_env(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a whole number") from None
