"""A sensor tick evaluated in process, as the Dagster daemon evaluates it.

For what drives the project without a daemon (the soak benchmark, the live-stream test): the
daemon builds the sensor's context from the saved cursor with the definitions' resources,
evaluates it and records the runless asset events it returns (the landing sensor's bronze
materializations); it then saves the result's cursor and launches the run requests, which is
left to the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg


def evaluate_sensor_tick(
    sensor: dg.SensorDefinition,
    instance: dg.DagsterInstance,
    cursor: str | None,
    resources: Mapping[str, Any],
) -> dg.SensorResult:
    """One tick of ``sensor`` from ``cursor``; its asset events are recorded on ``instance``."""
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=dict(resources)
    ) as context:
        result = sensor(context)
    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    return result
