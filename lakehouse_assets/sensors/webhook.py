"""The alert webhook both alert sensors post to: ``LAKEHOUSE_ALERT_WEBHOOK``, JSON with a
Slack/Teams/Mattermost-compatible ``text`` line plus structured fields.

A webhook that cannot be reached (or answers 4xx/5xx) raises, so the sensor tick fails and
Dagster evaluates the same alert again on the next tick instead of dropping it.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Mapping
from typing import Any

ALERT_WEBHOOK_VAR = "LAKEHOUSE_ALERT_WEBHOOK"
WEBHOOK_TIMEOUT_S = 10.0


def webhook_from_env(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get(ALERT_WEBHOOK_VAR, "").strip()


def post_webhook(url: str, payload: Mapping[str, Any], timeout: float = WEBHOOK_TIMEOUT_S) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # raises on 4xx/5xx
        return response.status
