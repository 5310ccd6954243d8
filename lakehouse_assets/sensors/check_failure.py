"""Failed asset-check alerts: a check whose evaluation fails with ERROR severity is posted to
``LAKEHOUSE_ALERT_WEBHOOK`` (logged without it), in the run alerts' payload style.

A non-blocking check fails without failing its run (silver's ``quarantine_empty``), so the
run-failure alert never hears of it. Each tick reads the latest evaluation of every check of
the code location (one query, whatever the history) and alerts when a check starts failing,
and again when the files a failing check names change (its ``files`` metadata, as
``quarantine_empty`` records them). A check that keeps failing the same way, evaluated again
by every silver run, alerts once, not every minute; a passing (or WARN) evaluation ends the
failure, so the next one alerts again. The cursor holds, per failing check, the failure
alerted. A webhook that cannot be reached fails the tick, so the alert is retried (alerts
posted earlier in that tick are posted again: at least once).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from lakehouse_assets.names import CHECK_FAILURE_SENSOR_NAME
from lakehouse_assets.sensors.webhook import ALERT_WEBHOOK_VAR, post_webhook

SENSOR_NAME = CHECK_FAILURE_SENSOR_NAME
INTERVAL_SECONDS = 30
# The metadata entry in which a check names the files it fails for ({key: error}), as
# silver's quarantine_empty does.
FILES_METADATA = "files"
_CURSOR_VERSION = 1
_TEXT_DETAIL_CHARS = 500
_TEXT_FILES = 5  # files named in the text line; the payload's ``files`` has them all


@dataclass
class CheckAlertCursor:
    # Check key (``asset:check``) -> fingerprint of the failure alerted, for failing checks.
    alerted: dict[str, str] = field(default_factory=dict)

    def encode(self) -> str:
        document = {"v": _CURSOR_VERSION, "a": self.alerted}
        return json.dumps(document, separators=(",", ":"), sort_keys=True)

    @classmethod
    def decode(cls, text: str | None) -> CheckAlertCursor:
        if not text:
            return cls()
        document = json.loads(text)
        if document.get("v") != _CURSOR_VERSION:
            raise ValueError(f"unknown {SENSOR_NAME} cursor version {document.get('v')!r}")
        return cls(alerted=dict(document.get("a", {})))


def code_location_checks(repository: dg.RepositoryDefinition) -> list[dg.AssetCheckKey]:
    """Every asset check of the code location: standalone checks and those defined with their
    assets (dbt tests)."""
    keys = set(repository.asset_checks_defs_by_key)
    keys |= {
        spec.key
        for assets_def in set(repository.assets_defs_by_key.values())
        for spec in assets_def.check_specs
    }
    return sorted(keys, key=lambda key: key.to_user_string())


def failure_fingerprint(evaluation: dg.AssetCheckEvaluation) -> str:
    """What tells one failure of a check from another: the files it names, if it names any."""
    files = evaluation.metadata.get(FILES_METADATA)
    named = json.dumps(files.value if files is not None else None, sort_keys=True, default=str)
    return hashlib.sha256(named.encode()).hexdigest()[:16]


def check_failure_payload(evaluation: dg.AssetCheckEvaluation, run_id: str) -> dict[str, Any]:
    asset = evaluation.asset_key.to_user_string()
    text = f"Asset check {evaluation.check_name} failed on {asset}"
    if evaluation.partition:
        text += f" [{evaluation.partition}]"
    files = evaluation.metadata.get(FILES_METADATA)
    description = (evaluation.description or "").strip()
    if description:  # quarantine_empty's names the files and their errors
        text += f": {description.splitlines()[0][:_TEXT_DETAIL_CHARS]}"
    elif files is not None and files.value:
        named = sorted(files.value)
        text += f": files {', '.join(named[:_TEXT_FILES])}"
        if len(named) > _TEXT_FILES:
            text += f" and {len(named) - _TEXT_FILES} more"
    return {
        "text": text,
        "check": evaluation.check_name,
        "asset": asset,
        "partition": evaluation.partition,
        "severity": evaluation.severity.value,
        "description": evaluation.description,
        "files": files.value if files is not None else None,
        "run_id": run_id or None,  # None: reported without a run
        "metadata": {name: _plain(value.value) for name, value in evaluation.metadata.items()},
    }


def _plain(value: Any) -> Any:
    """A metadata value as JSON can carry it (tables, paths, ... as their text)."""
    if value is None or isinstance(value, str | int | float | bool | dict | list):
        return value
    return str(value)


def latest_evaluations(
    instance: dg.DagsterInstance, keys: list[dg.AssetCheckKey]
) -> dict[str, tuple[dg.AssetCheckEvaluation, str] | None]:
    """Per check (``asset:check``), its latest evaluation and the run that made it; None
    while the check is being evaluated (its latest execution is planned) or never was."""
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    latest: dict[str, tuple[dg.AssetCheckEvaluation, str] | None] = {}
    for key in keys:
        record = records.get(key)
        evaluation = record.event.asset_check_evaluation if record and record.event else None
        latest[key.to_user_string()] = (evaluation, record.run_id) if evaluation else None
    return latest


def build_check_failure_sensor(webhook_url: str = "") -> dg.SensorDefinition:
    """Alerts for failed ERROR-severity check evaluations of this code location."""

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Alerts when an asset check starts failing with ERROR severity (again when the "
            "files it names change): "
            + (
                f"posted to the webhook in {ALERT_WEBHOOK_VAR}"
                if webhook_url
                else f"logged ({ALERT_WEBHOOK_VAR} is not set)"
            )
        ),
    )
    def lakehouse_check_failure_alert(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        if context.repository_def is None:
            raise ValueError(f"{SENSOR_NAME} needs the definitions it belongs to")
        keys = code_location_checks(context.repository_def)
        previous = CheckAlertCursor.decode(context.cursor)
        alerted: dict[str, str] = {}
        sent = 0
        for name, latest in latest_evaluations(context.instance, keys).items():
            if latest is None:
                # Being evaluated now (or never was): the failure alerted before stands.
                if name in previous.alerted:
                    alerted[name] = previous.alerted[name]
                continue
            evaluation, run_id = latest
            if evaluation.passed or evaluation.severity != dg.AssetCheckSeverity.ERROR:
                continue  # no failure (any before is over): the next one alerts again
            alerted[name] = failure_fingerprint(evaluation)
            if previous.alerted.get(name) == alerted[name]:
                continue  # alerted already: the check still fails the same way
            payload = check_failure_payload(evaluation, run_id)
            if webhook_url:
                status = post_webhook(webhook_url, payload)
                context.log.info(f"alert for check {name} posted (HTTP {status})")
            else:
                context.log.error(f"{payload['text']} ({ALERT_WEBHOOK_VAR} not set; logged only)")
            sent += 1
        return dg.SensorResult(
            skip_reason=f"{sent} check failure alerts sent; {len(alerted)} checks failing",
            cursor=CheckAlertCursor(alerted).encode(),
        )

    return lakehouse_check_failure_alert
