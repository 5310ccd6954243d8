"""Run-failure alerts: a JSON POST to ``LAKEHOUSE_ALERT_WEBHOOK`` when set, the log otherwise.

The payload has a Slack/Teams/Mattermost-compatible ``text`` line plus the
structured fields (run id, job, assets, partition range, error). A webhook that
cannot be reached fails the sensor tick, so Dagster evaluates the same failure
again on the next tick instead of dropping the alert.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from lakehouse_assets.names import RANGE_END_TAG, RANGE_START_TAG, RUN_FAILURE_SENSOR_NAME
from lakehouse_assets.sensors.webhook import ALERT_WEBHOOK_VAR, post_webhook

SENSOR_NAME = RUN_FAILURE_SENSOR_NAME


def run_assets(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[str]:
    """The assets a run targeted: its selection, else the materializations it planned."""
    if run.asset_selection:
        return sorted(key.to_user_string() for key in run.asset_selection)
    records = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, limit=1000
    ).records
    return sorted(
        {
            record.event_log_entry.dagster_event.asset_key.to_user_string()
            for record in records
            if record.event_log_entry.dagster_event
            and record.event_log_entry.dagster_event.asset_key
        }
    )


def failure_payload(
    run: dg.DagsterRun,
    error_message: str | None,
    step_errors: Mapping[str, str] | None = None,
    assets: list[str] | None = None,
) -> dict[str, Any]:
    tags = dict(run.tags)
    partition = tags.get("dagster/partition")
    if RANGE_START_TAG in tags:
        partition = f"{tags[RANGE_START_TAG]}...{tags.get(RANGE_END_TAG, '')}"
    if assets is None:
        assets = sorted(key.to_user_string() for key in (run.asset_selection or ()))
    what = ", ".join(assets) if assets else run.job_name
    text = f"Dagster run {run.run_id} failed: {what}"
    if partition:
        text += f" [{partition}]"
    step_errors = dict(step_errors or {})
    first_error = next(iter(step_errors.values()), None) or error_message
    if first_error:
        text += f": {first_error.strip().splitlines()[0][:500]}"
    return {
        "text": text,
        "run_id": run.run_id,
        "job_name": run.job_name,
        "assets": assets,
        "partition": partition,
        "error": error_message,
        "step_errors": step_errors,
        "tags": {k: v for k, v in tags.items() if not k.startswith(".dagster")},
    }


def _root_cause(error: Any) -> str:
    """The message (``Class: text``) of the innermost cause: Dagster wraps user errors."""
    if error is None:
        return ""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error.message.strip()


def build_run_failure_sensor(webhook_url: str = "") -> dg.SensorDefinition:
    """A run-failure sensor for every job of this code location."""

    @dg.run_failure_sensor(
        name=SENSOR_NAME,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Posts failed runs to the webhook in {ALERT_WEBHOOK_VAR}"
            if webhook_url
            else f"Logs failed runs ({ALERT_WEBHOOK_VAR} is not set)"
        ),
    )
    def lakehouse_run_failure_alert(context: dg.RunFailureSensorContext) -> None:
        error = context.failure_event.message if context.failure_event else None
        step_errors = {}
        for event in context.get_step_failure_events():
            failure = event.step_failure_data
            step_errors[event.step_key or "?"] = _root_cause(failure.error)
        payload = failure_payload(
            context.dagster_run,
            error,
            step_errors,
            run_assets(context.instance, context.dagster_run),
        )
        if webhook_url:
            status = post_webhook(webhook_url, payload)
            context.log.info(f"alert for run {context.dagster_run.run_id} posted (HTTP {status})")
        else:
            context.log.error(f"{payload['text']} ({ALERT_WEBHOOK_VAR} not set; logged only)")

    return lakehouse_run_failure_alert
