"""End to end: ``dagster dev`` (webserver + daemon) turns a DMS landing into silver by itself.

The test generates the demo landing, starts ``dagster dev`` on 127.0.0.1 (free
port, its own DAGSTER_HOME whose dagster.yaml limits every pool to one slot)
in its own process group, and then only watches: the landing sensor records
the bronze partitions and launches one silver range run per table, and silver
must equal the demo's oracle, value by value, without anyone launching a run.
Then it launches an asset backfill of bronze the way the UI does (GraphQL
``launchPartitionBackfill``), waits for it to succeed, and for the automation
condition to bring silver along. Every process it started is stopped, even
when an assertion fails.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lakehouse_assets.contracts import load_contracts
from lakehouse_assets.demo.simulator import generate
from lakehouse_assets.lake import open_lake
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for, warehouse_for_lake
from lakehouse_assets.names import AUTOMATION_SENSOR_NAME, silver_pool
from lakehouse_assets.names import LANDING_SENSOR_NAME as SENSOR_NAME
from lakehouse_assets.sensors.run_failure import SENSOR_NAME as FAILURE_SENSOR_NAME
from lakehouse_assets.silver.tables import table_identifier
from lakehouse_assets_tests.conftest import LOOPBACK, free_loopback_port

pytestmark = pytest.mark.dagster_dev

PROJECT = Path(__file__).resolve().parents[1]
CONTRACTS = load_contracts()
OUR_SENSORS = {SENSOR_NAME, AUTOMATION_SENSOR_NAME, FAILURE_SENSOR_NAME}
DAYS = ["2024-01-01", "2024-01-02", "2024-01-03"]
BACKFILL_TABLE = "core_order"
UNFINISHED = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "MANAGED", "CANCELING"}

DAGSTER_YAML = """\
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1     # one silver merge per table at a time (pool silver_<table>)
  runs:
    max_concurrent_runs: 8
run_coordinator:         # launch queued runs at once (the default polls every 5 s)
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
    dequeue_use_threads: true
    dequeue_num_workers: 4
sensors:
  use_threads: true
  num_workers: 4
"""

# --------------------------------------------------------------------------- the server


@dataclass
class DagsterDev:
    process: subprocess.Popen
    port: int
    home: Path
    log: Path

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"http://{LOOPBACK}:{self.port}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            document = json.loads(response.read())
        if document.get("errors"):
            raise AssertionError(f"GraphQL errors: {document['errors']}")
        return document["data"]

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _processes_with_home(home: Path) -> list[int]:
    """Processes whose environment names our DAGSTER_HOME: dagster dev and all it started."""
    marker = f"DAGSTER_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _stop(dev: DagsterDev) -> None:
    """SIGTERM to dagster dev's process group, then SIGKILL to whatever of ours is left."""
    try:
        os.killpg(dev.process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        dev.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _processes_with_home(dev.home):
        time.sleep(0.5)  # code servers and run workers shut down after the leader
    try:
        os.killpg(dev.process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in _processes_with_home(dev.home):  # run workers in sessions of their own
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if dev.process.poll() is None:
        dev.process.wait(timeout=10)


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    generate(open_lake(str(lake)), CONTRACTS, scale=0.02, days=len(DAYS), seed=42)
    return lake


@contextmanager
def serve(command: list[str], tmp_path: Path, lake: Path, port: int) -> Iterator[DagsterDev]:
    """``command`` (the webserver and the daemon) on ``lake``, in its own process group, with
    its own DAGSTER_HOME; everything it started is stopped afterwards."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "LAKEHOUSE_LAKE_URI": str(lake),
        "LAKEHOUSE_CATALOG_URI": sqlite_uri_for(tmp_path / "catalog.db"),
        "LAKEHOUSE_START_DATE": DAYS[0],
        "LAKEHOUSE_SENSOR_INTERVAL_SECONDS": "3",
        "LAKEHOUSE_AUTOMATION_INTERVAL_SECONDS": "5",
        # The periodic freshness run would only compete for the CPU here (the check
        # still runs inside every silver run).
        "LAKEHOUSE_FRESHNESS_CRON": "0 0 1 1 *",
        "PYTHONWARNINGS": "ignore",
    }
    log = tmp_path / "dagster-dev.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=PROJECT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: one signal reaches all of it
        )
    dev = DagsterDev(process, port, home, log)
    try:
        yield dev
    finally:
        _stop(dev)
        left = _processes_with_home(home)
        assert not left, f"processes left running: {left}"


@pytest.fixture
def dagster_dev(tmp_path: Path, landing: Path) -> Iterator[DagsterDev]:
    port = free_loopback_port()
    dagster = str(Path(sys.executable).with_name("dagster"))
    workspace = str(PROJECT / "workspace.yaml")
    with serve(
        [dagster, "dev", "-w", workspace, "-h", LOOPBACK, "-p", str(port)], tmp_path, landing, port
    ) as dev:
        yield dev


# --------------------------------------------------------------------------- queries


def wait_for(what: str, dev: DagsterDev, condition, timeout: float, interval: float = 1.0):
    began = time.monotonic()
    deadline = began + timeout
    last_error = None
    while time.monotonic() < deadline:
        if dev.process.poll() is not None:
            pytest.fail(
                f"dagster dev exited ({dev.process.returncode}) "
                f"while waiting for {what}:\n{dev.log_tail()}"
            )
        try:
            value = condition()
            if value:
                print(f"{what}: {time.monotonic() - began:.1f} s", file=sys.stderr)
                return value
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last_error = exc
        time.sleep(interval)
    pytest.fail(
        f"timed out after {timeout:.0f} s waiting for {what} "
        f"(last error: {last_error})\n{dev.log_tail()}"
    )


RUNS = """{ runsOrError(limit: 500) { ... on Runs { results {
    runId status creationTime startTime endTime assetSelection { path } tags { key value }
    stepStats { stepKey status startTime endTime } } } } }"""


def runs(dev: DagsterDev) -> list[dict]:
    results = dev.graphql(RUNS)["runsOrError"]["results"]
    for run in results:
        run["tags"] = {tag["key"]: tag["value"] for tag in run["tags"]}
        run["assets"] = sorted("/".join(a["path"]) for a in run["assetSelection"] or [])
    return results


def location_loaded(dev: DagsterDev) -> str | None:
    data = dev.graphql(
        "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
        "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
    )
    entries = data["workspaceOrError"]["locationEntries"]
    for entry in entries:
        if (
            entry["locationOrLoadError"]
            and entry["locationOrLoadError"]["__typename"] == "PythonError"
        ):
            pytest.fail(f"code location failed to load: {entry['locationOrLoadError']['message']}")
    loaded = [
        e["name"] for e in entries if e["loadStatus"] == "LOADED" and e["locationOrLoadError"]
    ]
    return loaded[0] if loaded else None


def stop_other_sensors(dev: DagsterDev, location: str) -> list[str]:
    """Sensors of other layers (gold needs PostgreSQL) are not what this test is about."""
    data = dev.graphql(
        """query($s: RepositorySelector!) { sensorsOrError(repositorySelector: $s) {
            ... on Sensors { results { name sensorState { id status } } } } }""",
        {"s": {"repositoryName": "__repository__", "repositoryLocationName": location}},
    )
    stopped = []
    for sensor in data["sensorsOrError"]["results"]:
        if sensor["name"] in OUR_SENSORS or sensor["sensorState"]["status"] != "RUNNING":
            continue
        result = dev.graphql(
            "mutation($id: String) { stopSensor(id: $id) { __typename } }",
            {"id": sensor["sensorState"]["id"]},
        )
        assert result["stopSensor"]["__typename"] == "StopSensorMutationResult", result
        stopped.append(sensor["name"])
    return stopped


def assert_silver_equals_oracle(catalog, lake: Path, tables) -> None:
    for name in tables:
        contract = CONTRACTS.table(name)
        order = [(key, "ascending") for key in contract.primary_key]
        expected = pq.read_table(lake / "demo" / "expected" / f"{name}.parquet")
        expected = expected.select(contract.column_names).sort_by(order)
        actual = (
            catalog.load_table(table_identifier(contract))
            .scan(row_filter="_is_deleted = false")
            .to_arrow()
        )
        actual = actual.select(contract.column_names).sort_by(order)
        assert actual.num_rows == expected.num_rows, (
            f"{name}: {actual.num_rows} live rows, oracle {expected.num_rows}"
        )
        for column in contract.column_names:
            got, want = actual[column].to_pylist(), expected[column].to_pylist()
            if got != want:
                row = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
                pytest.fail(
                    f"{name}.{column} row {row}: silver {got[row]!r} != oracle {want[row]!r}"
                )


def _step_windows(all_runs: list[dict], table: str) -> list[tuple[float, float, str]]:
    windows = []
    for run in all_runs:
        for step in run["stepStats"]:
            if step["stepKey"] == f"silver__{table}" and step["startTime"] and step["endTime"]:
                windows.append((step["startTime"], step["endTime"], run["runId"]))
    return sorted(windows)


# --------------------------------------------------------------------------- the test


def test_dagster_dev_sensor_and_automation_build_silver_and_a_graphql_backfill_completes(
    dagster_dev: DagsterDev, landing: Path, tmp_path: Path
):
    dev = dagster_dev
    location = wait_for(
        "the webserver and the code location", dev, lambda: location_loaded(dev), timeout=180
    )
    stop_other_sensors(dev, location)

    # 1. Nobody launches anything: the landing sensor requests one range run per table.
    def silver_done():
        current = runs(dev)
        failed = [r for r in current if r["status"] in ("FAILURE", "CANCELED")]
        if failed:
            pytest.fail(
                f"runs failed: {[(r['runId'], r['assets']) for r in failed]}\n{dev.log_tail()}"
            )
        done = {
            r["assets"][0] for r in current if r["status"] == "SUCCESS" and len(r["assets"]) == 1
        }
        busy = [r for r in current if r["status"] in UNFINISHED]
        return current if not busy and done >= {f"silver/{t}" for t in CONTRACTS.tables} else None

    # The seed's target: landed files reach silver within 5 minutes.
    first_runs = wait_for(
        "silver runs launched by the landing sensor", dev, silver_done, timeout=300
    )
    for run in first_runs:
        assert run["tags"].get("dagster/sensor_name") in (SENSOR_NAME, AUTOMATION_SENSOR_NAME), run
    landing_runs = [r for r in first_runs if r["tags"].get("dagster/sensor_name") == SENSOR_NAME]
    by_table = {}
    for run in landing_runs:
        [asset] = run["assets"]
        assert asset not in by_table, f"{asset}: more than one landing run for one landing"
        by_table[asset] = run
        # A backlog of days is one partition-range run, not a run per day.
        assert run["tags"]["dagster/asset_partition_range_start"] == DAYS[0]
        assert run["tags"]["dagster/asset_partition_range_end"] in DAYS[1:]
    assert set(by_table) == {f"silver/{t}" for t in CONTRACTS.tables}

    catalog = open_catalog(
        sqlite_uri_for(tmp_path / "catalog.db"), warehouse_for_lake(str(landing))
    )
    assert_silver_equals_oracle(catalog, landing, CONTRACTS.tables)

    # The bronze partitions were recorded by the sensor, and the silver checks ran in its runs.
    bronze = dev.graphql(
        """{ assetNodeOrError(assetKey: {path: ["bronze", "core_order"]}) { ... on AssetNode {
            partitionStats { numMaterialized } } } }"""
    )["assetNodeOrError"]
    assert bronze["partitionStats"]["numMaterialized"] == len(DAYS)
    checks = dev.graphql(
        """{ assetNodeOrError(assetKey: {path: ["silver", "core_order"]}) { ... on AssetNode {
            assetChecksOrError { ... on AssetChecks { checks { name
              executionForLatestMaterialization { runId status } } } } } } }"""
    )["assetNodeOrError"]["assetChecksOrError"]["checks"]
    executed = {c["name"]: c["executionForLatestMaterialization"] for c in checks}
    assert executed["freshness"]["runId"] == by_table["silver/core_order"]["runId"]
    assert executed["primary_key_unique"]["status"] == "SUCCEEDED"

    # One slot per silver pool.
    instance = dev.graphql(
        "{ instance { poolConfig { defaultPoolLimit } "
        "concurrencyLimits { concurrencyKey slotCount } } }"
    )
    assert instance["instance"]["poolConfig"]["defaultPoolLimit"] == 1
    limits = {
        c["concurrencyKey"]: c["slotCount"] for c in instance["instance"]["concurrencyLimits"]
    }
    assert limits.get(silver_pool(BACKFILL_TABLE)) == 1, limits

    # 2. A backfill launched the way the UI launches one: bronze of one table, three days.
    launched = dev.graphql(
        """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
            __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
            ... on PartitionKeysNotFoundError { message } } }""",
        {
            "p": {
                "partitionsByAssets": [
                    {
                        "assetKey": {"path": ["bronze", BACKFILL_TABLE]},
                        "partitions": {"range": {"start": DAYS[0], "end": DAYS[-1]}},
                    }
                ],
                "title": "e2e backfill",
                # the launchpad's config: the run's one step in the run's own process
                "runConfigData": {"execution": {"config": {"in_process": {}}}},
            }
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def backfill_status():
        status = dev.graphql(
            """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
                ... on PartitionBackfill { status } } }""",
            {"id": backfill_id},
        )["partitionBackfillOrError"]["status"]
        if status in ("FAILED", "COMPLETED_FAILED", "CANCELED", "FAILING"):
            pytest.fail(f"backfill {backfill_id} ended {status}\n{dev.log_tail()}")
        return status if status in ("COMPLETED_SUCCESS", "COMPLETED") else None

    wait_for("the backfill to succeed", dev, backfill_status, timeout=300)
    backfill_runs = [r for r in runs(dev) if r["tags"].get("dagster/backfill") == backfill_id]
    assert len(backfill_runs) == 1  # single-run backfill policy: three days, one run
    assert backfill_runs[0]["status"] == "SUCCESS"

    # 3. Automation: silver follows the bronze it was built from, for exactly those days.
    def automation_done():
        followed = [
            r
            for r in runs(dev)
            if r["tags"].get("dagster/sensor_name") == AUTOMATION_SENSOR_NAME
            and f"silver/{BACKFILL_TABLE}" in r["assets"]
        ]
        if any(r["status"] in ("FAILURE", "CANCELED") for r in followed):
            pytest.fail(f"automation run failed: {followed}\n{dev.log_tail()}")
        return followed if followed and all(r["status"] == "SUCCESS" for r in followed) else None

    followed = wait_for("silver to follow the backfilled bronze", dev, automation_done, timeout=300)
    assert len(followed) == 1
    assert followed[0]["tags"]["dagster/asset_partition_range_start"] == DAYS[0]
    assert followed[0]["tags"]["dagster/asset_partition_range_end"] == DAYS[-1]
    assert_silver_equals_oracle(catalog, landing, [BACKFILL_TABLE])  # the merge is idempotent

    # No two merges of one table overlapped.
    windows = _step_windows(runs(dev), BACKFILL_TABLE)
    assert len(windows) == 2
    for (_, end, _), (start, _, _) in itertools.pairwise(windows):
        assert start >= end


def test_dg_dev_serves_the_project(tmp_path: Path):
    """``dg dev`` in the project folder (a dg project) loads the same definitions."""
    port = free_loopback_port()
    dg_cli = str(Path(sys.executable).with_name("dg"))
    empty_lake = tmp_path / "lake"  # nothing lands: the sensors find nothing to run
    empty_lake.mkdir()
    command = [dg_cli, "dev", "--host", LOOPBACK, "--port", str(port)]
    with serve(command, tmp_path, empty_lake, port) as dev:
        wait_for("dg dev's code location", dev, lambda: location_loaded(dev), timeout=180)
        nodes = dev.graphql("{ assetNodes { assetKey { path } } }")["assetNodes"]
        keys = {"/".join(node["assetKey"]["path"]) for node in nodes}
        assert {f"silver/{table}" for table in CONTRACTS.tables} <= keys
        assert {f"bronze/{table}" for table in CONTRACTS.tables} <= keys
