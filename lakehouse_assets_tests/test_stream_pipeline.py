"""A live demo stream reaches silver on its own, and silver then equals the stream's oracle.

``lakehouse-demo generate --end today`` lays down a landing that ends now, and
``lakehouse-demo stream`` (a subprocess, real time) continues it: every second, a CDC file
per table that changed. Meanwhile a stand-in for the Dagster daemon, in process, does what
the daemon does and nothing else: it ticks the landing sensor
(``sensors.in_process.evaluate_sensor_tick``: ``dg.build_sensor_context`` on a real
``DagsterInstance``, in memory; the cursor kept between ticks, its runless bronze
materializations recorded) and the automation sensor's evaluation
(``dg.evaluate_automation_conditions``), and launches every run they request, once per run
key, with the request's tags and run config (in process, ``dg.materialize``). The test
itself starts no run. Once the stream has stopped and a tick finds nothing new, every silver
table's live rows must equal the oracle the stream wrote, every run in the instance must
have been requested by a sensor, and the busiest table's freshness check is green.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from lakehouse_assets.automation import build_freshness_checks, follow_upstream
from lakehouse_assets.bronze.assets import build_bronze_assets
from lakehouse_assets.definitions import lake_resources
from lakehouse_assets.demo.cli import main as lakehouse_demo
from lakehouse_assets.demo.oracle import read_manifest
from lakehouse_assets.lake import open_lake
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for, warehouse_for_lake
from lakehouse_assets.names import (
    AUTOMATION_SENSOR_NAME,
    FRESHNESS_CHECK,
    LANDING_SENSOR_NAME,
    RANGE_END_TAG,
    RANGE_START_TAG,
    TRIGGER_TAG,
    silver_asset_key,
)
from lakehouse_assets.sensors.in_process import evaluate_sensor_tick
from lakehouse_assets.sensors.landing import LandingSettings, build_dms_landing_sensor, day_ranges
from lakehouse_assets.silver.assets import build_silver_assets
from lakehouse_assets_tests.test_silver_demo import CONTRACTS, assert_equals_oracle

SCALE = "0.02"
STREAM_SECONDS = 4
# Busy enough that a second holds inserts, updates and deletes of the busiest tables.
STREAM_RATE = "5000"
DRAIN_TICKS = 10  # ticks after the stream stopped before giving up on "nothing new"
SENSOR_NAME_TAG = "dagster/sensor_name"  # the daemon tags a sensor's runs with its name


def lakehouse_demo_command() -> list[str]:
    script = Path(sys.executable).with_name("lakehouse-demo")
    return [str(script)] if script.exists() else [sys.executable, "-m", "lakehouse_assets.demo.cli"]


@dataclass
class Daemon:
    """The daemon's part, in process: sensor ticks, automation evaluations and the runs
    they request, each launched once per run key."""

    instance: dg.DagsterInstance
    lake: str
    catalog_uri: str
    first_day: date
    cursor: str | None = None
    automation_cursor: object = None
    run_keys: set[str] = field(default_factory=set)
    launched: Counter = field(default_factory=Counter)  # who requested the runs launched
    results: list[dg.ExecuteInProcessResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        daily = dg.DailyPartitionsDefinition(start_date=self.first_day.isoformat(), end_offset=1)
        self.sensor = build_dms_landing_sensor(CONTRACTS, daily, LandingSettings())
        self.definitions = [
            *build_bronze_assets(CONTRACTS, daily),
            *build_silver_assets(CONTRACTS, daily, automation_condition=follow_upstream()),
            *build_freshness_checks(CONTRACTS),
        ]
        self.resources = lake_resources(self.lake, self.catalog_uri)
        self.defs = dg.Definitions(assets=self.definitions, resources=self.resources)

    def tick(self) -> int:
        """One landing-sensor tick and one automation evaluation, and their runs; returns
        how many runs the sensor requested."""
        landing = self.landing_requests()
        for request in landing:
            self.launch(request, LANDING_SENSOR_NAME)
        for request in self.automation_requests():
            self.launch(request, AUTOMATION_SENSOR_NAME)
        return len(landing)

    def landing_requests(self) -> list[dg.RunRequest]:
        result = evaluate_sensor_tick(self.sensor, self.instance, self.cursor, self.resources)
        self.cursor = result.cursor
        return list(result.run_requests)

    def automation_requests(self) -> list[dg.RunRequest]:
        """The automation sensor's evaluation, as runs: per requested asset a run per range
        of its requested days (single-run backfill policy), and one run for the checks."""
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.automation_cursor
        )
        self.automation_cursor = result.cursor
        requests, checks = [], []
        for evaluation in result.results:
            if not evaluation.true_subset.size:
                continue
            if isinstance(evaluation.key, dg.AssetCheckKey):
                checks.append(evaluation.key)
                continue
            days = [date.fromisoformat(p) for p in result.get_requested_partitions(evaluation.key)]
            for first, last in day_ranges(days, 0):
                requests.append(
                    dg.RunRequest(
                        asset_selection=[evaluation.key],
                        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
                    )
                )
        if checks:
            requests.append(dg.RunRequest(asset_selection=[], asset_check_keys=checks))
        return requests

    def launch(self, request: dg.RunRequest, requested_by: str) -> None:
        if request.run_key is not None:
            if request.run_key in self.run_keys:
                return  # the daemon skips a run key it has launched
            self.run_keys.add(request.run_key)
        result = dg.materialize(
            self.definitions,
            selection=self.selection(request),
            instance=self.instance,
            resources=self.resources,
            tags={**request.tags, SENSOR_NAME_TAG: requested_by},
            run_config=request.run_config or None,
        )
        assert result.success, f"run requested by {requested_by} failed: {request}"
        self.launched[requested_by] += 1
        self.results.append(result)

    @staticmethod
    def selection(request: dg.RunRequest) -> dg.AssetSelection:
        """The request's assets (with their checks) and, for a check-only request, its checks."""
        selection = dg.AssetSelection.assets(*(request.asset_selection or []))
        if request.asset_check_keys:
            selection = selection.without_checks() | dg.AssetSelection.checks(
                *request.asset_check_keys
            )
        return selection


def freshness_results(results: list[dg.ExecuteInProcessResult], table: str) -> list[bool]:
    """Whether each freshness check of ``silver/<table>`` in ``results`` passed, in order."""
    return [
        evaluation.passed
        for result in results
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.asset_key == silver_asset_key(table)
        and evaluation.check_name == FRESHNESS_CHECK
    ]


def test_a_live_stream_reaches_silver_through_the_sensor_alone(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    generated = [
        *("generate", "--scale", SCALE, "--days", "2", "--end", "today", "--out", str(lake)),
    ]
    assert lakehouse_demo(generated) == 0
    first_day = date.fromisoformat(read_manifest(open_lake(str(lake))).arguments["start"])
    catalog_uri = sqlite_uri_for(tmp_path / "catalog.db")

    with dg.DagsterInstance.ephemeral() as instance:
        daemon = Daemon(instance, str(lake), catalog_uri, first_day)
        stream = subprocess.Popen(
            [*lakehouse_demo_command(), "stream", "--out", str(lake), "--interval", "1"]
            + ["--duration", str(STREAM_SECONDS), "--rate", STREAM_RATE, "--scale", SCALE],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # The first tick takes the landing (its full load and two days of CDC), before
            # the stream's first file (a second after it started); later ticks take the
            # stream's files as they land.
            while stream.poll() is None:
                daemon.tick()
                time.sleep(0.2)
            stdout, stderr = stream.communicate(timeout=30)
        finally:
            if stream.poll() is None:
                stream.kill()
                stream.communicate()
        assert stream.returncode == 0, stderr
        assert f"stopped after {STREAM_SECONDS} intervals" in stdout, stdout
        assert read_manifest(open_lake(str(lake))).streams[-1]["files"] > 0, stdout

        for _ in range(DRAIN_TICKS):
            if daemon.tick() == 0:
                break
        else:
            pytest.fail(f"the sensor still requested runs after {DRAIN_TICKS} ticks")

        catalog = open_catalog(catalog_uri, warehouse_for_lake(str(lake)))
        assert_equals_oracle(catalog, lake)

        runs = instance.get_runs()
        assert runs and all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
        assert {run.tags.get(SENSOR_NAME_TAG) for run in runs} <= {
            LANDING_SENSOR_NAME,
            AUTOMATION_SENSOR_NAME,
        }, "every run was requested by the landing sensor or the automation"
        silver_runs = [run for run in runs if run.tags.get(RANGE_START_TAG)]
        assert all(run.tags.get(TRIGGER_TAG) == LANDING_SENSOR_NAME for run in silver_runs), (
            "the sensor requests the silver runs; the automation leaves its runless reports alone"
        )
        # One run per table took the landing; the stream's files took more.
        assert daemon.launched[LANDING_SENSOR_NAME] > len(CONTRACTS.tables), daemon.launched
        # The busiest table's newest applied commit is seconds old: its freshness check is green.
        freshness = freshness_results(daemon.results, "core_event")
        assert freshness and freshness[-1], f"silver/core_event freshness checks: {freshness}"
