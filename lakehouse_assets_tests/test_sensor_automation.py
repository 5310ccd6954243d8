"""Automation conditions, silver freshness checks, concurrency pools, run-failure alerts,
and how definitions.py registers them."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import dagster as dg
import pytest

from lakehouse_assets.automation import (
    AUTOMATION_SENSOR_NAME,
    FRESHNESS_CHECK,
    AutomationSettings,
    build_automation_sensor,
    build_freshness_checks,
    follow_upstream,
    silver_freshness,
)
from lakehouse_assets.bronze.assets import bronze_asset_key, build_bronze_assets
from lakehouse_assets.contracts import load_contracts
from lakehouse_assets.definitions import lake_resources
from lakehouse_assets.dms import read_dms_file
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for, warehouse_for_lake
from lakehouse_assets.names import (
    CHECK_FAILURE_SENSOR_NAME,
    QUARANTINE_CHECK,
    silver_asset_key,
    silver_pool,
)
from lakehouse_assets.names import LANDING_SENSOR_NAME as SENSOR_NAME
from lakehouse_assets.sensors.check_failure import build_check_failure_sensor
from lakehouse_assets.sensors.run_failure import build_run_failure_sensor, failure_payload
from lakehouse_assets.silver.apply import merge_changes
from lakehouse_assets.silver.assets import build_silver_assets
from lakehouse_assets.silver.checks import build_silver_checks
from lakehouse_assets.silver.quarantine import QuarantinedFile, update_quarantine

CONTRACTS = load_contracts()
TENANT = CONTRACTS.table("core_tenant")
DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)
TENANT_CDC = (
    b"I,2024-01-02 09:00:00.5,3,Initech,initech,pro,{},true,,2024-01-02 09:00:00,\n"
    b"U,2024-01-02 09:30:00,3,Initech,initech,enterprise,{},t,,"
    b"2024-01-02 09:00:00,2024-01-02 09:30:00\n"
)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def _resources(tmp_path) -> dict:
    return lake_resources(str(tmp_path / "lake"), sqlite_uri_for(tmp_path / "catalog.db"))


# --------------------------------------------------------------------------- follow_upstream


def test_silver_follows_bronze_runs_but_leaves_sensor_reports_to_the_sensor(tmp_path, instance):
    assets = [
        *build_bronze_assets(CONTRACTS, DAILY),
        *build_silver_assets(CONTRACTS, DAILY, automation_condition=follow_upstream()),
    ]
    defs = dg.Definitions(assets=assets, resources=_resources(tmp_path))
    silver = silver_asset_key("core_tenant")
    at = datetime(2024, 1, 10, 12, tzinfo=UTC)

    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=at)
    assert result.total_requested == 0  # nothing upstream: nothing to follow

    # The landing sensor's runless bronze report: the sensor requests silver itself.
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=bronze_asset_key("core_tenant"), partition="2024-01-02")
    )
    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=at, cursor=result.cursor
    )
    assert result.total_requested == 0

    # Bronze materialized by a run (e.g. a backfill of bronze): silver follows, that day only.
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.execute_in_process(
        instance=instance,
        partition_key="2024-01-05",
        asset_selection=[bronze_asset_key("core_tenant")],
    ).success
    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=at, cursor=result.cursor
    )
    assert result.get_requested_partitions(silver) == {"2024-01-05"}
    assert result.total_requested == 1

    # Requested once: the next evaluation does not ask again.
    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=at, cursor=result.cursor
    )
    assert result.total_requested == 0


# --------------------------------------------------------------------------- freshness


def _silver_table(tmp_path):
    catalog = open_catalog(
        sqlite_uri_for(tmp_path / "catalog.db"), warehouse_for_lake(str(tmp_path / "lake"))
    )
    raw = read_dms_file(
        TENANT_CDC,
        "bronze/dms/public/core_tenant/2024/01/02/20240102-093000000.csv",
        TENANT,
        CONTRACTS.dms,
    )
    merge_changes(
        catalog, TENANT, CONTRACTS.dms, raw, ingested_at=datetime(2024, 1, 2, 9, 31, tzinfo=UTC)
    )
    return catalog


def test_freshness_is_the_lag_of_the_newest_applied_commit(tmp_path):
    catalog = open_catalog(
        sqlite_uri_for(tmp_path / "catalog.db"), warehouse_for_lake(str(tmp_path / "lake"))
    )
    missing = silver_freshness(catalog, TENANT, timedelta(minutes=5), datetime.now(UTC))
    assert not missing.passed and "does not exist" in missing.reason

    catalog = _silver_table(tmp_path)
    newest = datetime(2024, 1, 2, 9, 30, tzinfo=UTC)
    fresh = silver_freshness(catalog, TENANT, timedelta(minutes=5), newest + timedelta(minutes=4))
    assert fresh.passed and fresh.max_commit_ts == newest and fresh.lag == timedelta(minutes=4)
    stale = silver_freshness(catalog, TENANT, timedelta(minutes=5), newest + timedelta(minutes=6))
    assert not stale.passed and stale.lag == timedelta(minutes=6) and "over 5m" in stale.reason
    relaxed = silver_freshness(catalog, TENANT, timedelta(hours=1), newest + timedelta(minutes=6))
    assert relaxed.passed


def test_freshness_check_runs_as_an_asset_check(tmp_path, instance):
    _silver_table(tmp_path)
    checks = build_freshness_checks(
        CONTRACTS, AutomationSettings(freshness_max_lag=timedelta(minutes=5))
    )
    assert {next(iter(c.check_keys)).asset_key for c in checks} == {
        silver_asset_key(t) for t in CONTRACTS.tables
    }
    tenant_check = next(
        c for c in checks if next(iter(c.check_keys)).asset_key == silver_asset_key("core_tenant")
    )
    result = dg.materialize(
        [
            *build_bronze_assets(CONTRACTS, DAILY),
            *build_silver_assets(CONTRACTS, DAILY),
            tenant_check,
        ],
        selection=dg.AssetSelection.checks(tenant_check),
        resources=_resources(tmp_path),
        instance=instance,
    )
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == FRESHNESS_CHECK
    assert not evaluation.passed  # the commit is from 2024
    assert evaluation.metadata["max_commit_ts"].value == "2024-01-02T09:30:00+00:00"
    assert evaluation.metadata["lag_seconds"].value > 86400 * 300
    assert evaluation.metadata["max_lag_seconds"].value == 300


def test_freshness_checks_are_requested_on_their_cron_schedule(tmp_path, instance):
    checks = build_freshness_checks(CONTRACTS, AutomationSettings(freshness_cron="*/5 * * * *"))
    defs = dg.Definitions(
        assets=[*build_bronze_assets(CONTRACTS, DAILY), *build_silver_assets(CONTRACTS, DAILY)],
        asset_checks=checks,
        resources=_resources(tmp_path),
    )

    def requested_checks(result) -> set:
        return {
            r.key
            for r in result.results
            if isinstance(r.key, dg.AssetCheckKey) and r.true_subset.size
        }

    t0 = datetime(2024, 1, 10, 10, 1, tzinfo=UTC)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=t0)
    assert requested_checks(result) == set()
    result = dg.evaluate_automation_conditions(
        defs=defs,
        instance=instance,
        evaluation_time=t0 + timedelta(minutes=2),
        cursor=result.cursor,
    )
    assert requested_checks(result) == set()  # no 5-minute boundary passed yet
    result = dg.evaluate_automation_conditions(
        defs=defs,
        instance=instance,
        evaluation_time=t0 + timedelta(minutes=5),
        cursor=result.cursor,
    )
    assert requested_checks(result) == {
        dg.AssetCheckKey(silver_asset_key(t), FRESHNESS_CHECK) for t in CONTRACTS.tables
    }
    result = dg.evaluate_automation_conditions(
        defs=defs,
        instance=instance,
        evaluation_time=t0 + timedelta(minutes=6),
        cursor=result.cursor,
    )
    assert requested_checks(result) == set()  # once per tick


def test_automation_settings_from_environment():
    assert AutomationSettings.from_env({}) == AutomationSettings()
    settings = AutomationSettings.from_env(
        {
            "LAKEHOUSE_FRESHNESS_MAX_LAG_MINUTES": "2.5",
            "LAKEHOUSE_AUTOMATION_INTERVAL_SECONDS": "5",
            "LAKEHOUSE_FRESHNESS_CRON": "*/1 * * * *",
        }
    )
    assert settings == AutomationSettings(timedelta(seconds=150), "*/1 * * * *", 5)
    with pytest.raises(ValueError, match="LAKEHOUSE_FRESHNESS_MAX_LAG_MINUTES"):
        AutomationSettings.from_env({"LAKEHOUSE_FRESHNESS_MAX_LAG_MINUTES": "soon"})


# --------------------------------------------------------------------------- the definitions


def test_definitions_register_sensors_conditions_checks_and_pools():
    from lakehouse_assets.definitions import defs as load_defs

    defs = load_defs()
    sensors = {sensor.name: sensor for sensor in defs.sensors}
    assert {SENSOR_NAME, "lakehouse_run_failure_alert", AUTOMATION_SENSOR_NAME} <= set(sensors)
    for name in (SENSOR_NAME, "lakehouse_run_failure_alert", AUTOMATION_SENSOR_NAME):
        assert sensors[name].default_status == dg.DefaultSensorStatus.RUNNING

    graph = defs.resolve_asset_graph()
    pools = set()
    for table in CONTRACTS.tables:
        node = graph.get(silver_asset_key(table))
        assert node.automation_condition is not None
        assert node.automation_condition.get_label() == "follow_upstream"
        assert node.backfill_policy == dg.BackfillPolicy.single_run()
        assets_def = defs.resolve_assets_def(silver_asset_key(table))
        [op_pool] = {op.pool for op in assets_def.node_def.iterate_op_defs()}
        assert op_pool == silver_pool(table)
        pools.add(op_pool)
        check = dg.AssetCheckKey(silver_asset_key(table), FRESHNESS_CHECK)
        assert check in graph.asset_check_keys
    assert len(pools) == len(CONTRACTS.tables)  # one pool per table: tables run in parallel

    # The landing sensor may request every silver asset; the automation sensor sees every
    # asset and check.
    landing = sensors[SENSOR_NAME]
    job = defs.resolve_job_def(landing.targets[0].job_name)
    assert set(job.asset_layer.executable_asset_keys) == {
        silver_asset_key(t) for t in CONTRACTS.tables
    }
    automation = build_automation_sensor()
    assert silver_asset_key("core_order") in automation.asset_selection.resolve(graph)
    assert dg.AssetCheckKey(silver_asset_key("core_order"), FRESHNESS_CHECK) in (
        automation.asset_selection.resolve_checks(graph)
    )


# --------------------------------------------------------------------------- run-failure alerts


class _Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(
            {"content_type": self.headers["Content-Type"], "body": json.loads(body)}
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Recorder.received = []
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", _Recorder.received
    finally:
        server.shutdown()
        server.server_close()


@dg.asset(partitions_def=DAILY)
def exploding(context) -> None:
    raise RuntimeError("merge blew up: core_order line 7")


def _failed_run_context(instance: dg.DagsterInstance, sensor_name: str):
    result = dg.materialize(
        [exploding],
        instance=instance,
        raise_on_error=False,
        tags={
            "dagster/asset_partition_range_start": "2024-01-03",
            "dagster/asset_partition_range_end": "2024-01-03",
        },
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    run = instance.get_run_by_id(result.run_id)
    return dg.build_run_status_sensor_context(
        sensor_name=sensor_name, dagster_event=failure, dagster_instance=instance, dagster_run=run
    ).for_run_failure()


def test_run_failure_posts_to_the_webhook(instance, webhook):
    url, received = webhook
    sensor = build_run_failure_sensor(url)
    context = _failed_run_context(instance, sensor.name)
    sensor(context)
    [message] = received
    assert message["content_type"] == "application/json"
    body = message["body"]
    assert body["run_id"] == context.dagster_run.run_id
    assert body["assets"] == ["exploding"]
    assert body["partition"] == "2024-01-03...2024-01-03"
    assert "merge blew up: core_order line 7" in body["text"]
    assert any("merge blew up" in error for error in body["step_errors"].values())


def test_run_failure_without_webhook_is_logged(instance, capfd):
    sensor = build_run_failure_sensor("")
    context = _failed_run_context(instance, sensor.name)
    capfd.readouterr()
    sensor(context)
    logged = [line for line in capfd.readouterr().err.splitlines() if " - ERROR - " in line]
    assert len(logged) == 1
    assert f"Dagster run {context.dagster_run.run_id} failed: exploding" in logged[0]
    assert "RuntimeError: merge blew up: core_order line 7" in logged[0]
    assert "LAKEHOUSE_ALERT_WEBHOOK not set" in logged[0]


def test_unreachable_webhook_fails_the_tick_so_the_alert_is_retried(instance):
    sensor = build_run_failure_sensor("http://127.0.0.1:9/unreachable")
    context = _failed_run_context(instance, sensor.name)
    with pytest.raises(OSError):  # URLError: connection refused
        sensor(context)


def test_failure_payload_names_job_when_no_assets():
    run = dg.DagsterRun(job_name="my_job", run_id="abc", tags={"dagster/partition": "2024-01-01"})
    payload = failure_payload(run, "boom\nstack")
    assert payload["text"] == "Dagster run abc failed: my_job [2024-01-01]: boom"
    assert payload["tags"] == {"dagster/partition": "2024-01-01"}


# --------------------------------------------------------------------------- failed-check alerts

QUARANTINE_CHECK_KEY = dg.AssetCheckKey(silver_asset_key("core_tenant"), QUARANTINE_CHECK)


def _check_alert_tick(sensor: dg.SensorDefinition, instance, defs, cursor: str | None) -> str:
    """One tick of the check-failure alert as the daemon runs it; the cursor it saves."""
    context = dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor)
    return sensor(context).cursor


def test_failed_quarantine_check_posts_one_alert_naming_the_files(tmp_path, instance, webhook):
    url, received = webhook
    catalog = _silver_table(tmp_path)
    bad_key = "bronze/dms/public/core_tenant/2024/01/02/20240102-100000000.csv"
    error = f"{bad_key}, line 3: expected 11 fields (Op + timestamp + 9 contract columns), found 2"
    seen = datetime(2024, 1, 2, 10, 1, tzinfo=UTC)
    entry = QuarantinedFile(bad_key, 120, "etag-1", "cdc", error, seen, seen)
    update_quarantine(catalog, TENANT, {}, [entry], [])
    [tenant_checks] = [
        checks
        for checks in build_silver_checks(CONTRACTS)
        if QUARANTINE_CHECK_KEY in checks.check_keys
    ]
    sensor = build_check_failure_sensor(url)
    defs = dg.Definitions(
        assets=[*build_bronze_assets(CONTRACTS, DAILY), *build_silver_assets(CONTRACTS, DAILY)],
        asset_checks=[tenant_checks],
        sensors=[sensor],
        resources=_resources(tmp_path),
    )
    cursor = _check_alert_tick(sensor, instance, defs, None)
    assert received == []  # nothing evaluated yet

    # The silver checks run (as in every silver run): quarantine_empty fails, the others pass.
    result = dg.materialize(
        [*defs.assets, tenant_checks],
        selection=dg.AssetSelection.checks(tenant_checks),
        resources=_resources(tmp_path),
        instance=instance,
    )
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [e.asset_check_key for e in failed] == [QUARANTINE_CHECK_KEY]

    cursor = _check_alert_tick(sensor, instance, defs, cursor)
    [message] = received
    assert message["content_type"] == "application/json"
    body = message["body"]
    assert body["text"].startswith("Asset check quarantine_empty failed on silver/core_tenant: ")
    assert bad_key in body["text"] and "line 3" in body["text"]
    assert (body["check"], body["asset"], body["severity"]) == (
        "quarantine_empty",
        "silver/core_tenant",
        "ERROR",
    )
    assert body["files"] == {bad_key: error}
    assert body["run_id"] == result.run_id

    # The next tick: the same evaluation, no second alert.
    _check_alert_tick(sensor, instance, defs, cursor)
    assert len(received) == 1


@dg.asset(
    check_specs=[
        dg.AssetCheckSpec("quarantine_empty", asset="landing_table"),
        dg.AssetCheckSpec("row_count", asset="landing_table"),
    ]
)
def landing_table():
    """Checks defined with their asset (as dbt tests are): the alert covers them too."""


def _report(instance, check: str, *, passed: bool, files=None, severity=None) -> None:
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("landing_table"),
            check_name=check,
            passed=passed,
            metadata={"files": dg.MetadataValue.json(files)} if files is not None else None,
            severity=severity or dg.AssetCheckSeverity.ERROR,
        )
    )


def test_check_alerts_follow_the_failure_not_every_evaluation(instance, webhook):
    url, received = webhook
    sensor = build_check_failure_sensor(url)
    defs = dg.Definitions(assets=[landing_table], sensors=[sensor])

    def tick_texts(cursor):
        before = len(received)
        cursor = _check_alert_tick(sensor, instance, defs, cursor)
        return cursor, [message["body"]["text"] for message in received[before:]]

    _report(instance, "quarantine_empty", passed=False, files={"a.csv": "line 1: bad"})
    cursor, texts = tick_texts(None)
    assert texts == ["Asset check quarantine_empty failed on landing_table: files a.csv"]
    # Evaluated again by the next run, failing the same way: no new alert.
    _report(instance, "quarantine_empty", passed=False, files={"a.csv": "line 1: bad"})
    cursor, texts = tick_texts(cursor)
    assert texts == []
    # Another file quarantined: alerted, naming both.
    _report(instance, "quarantine_empty", passed=False, files={"a.csv": "x", "b.csv": "y"})
    cursor, texts = tick_texts(cursor)
    assert texts == ["Asset check quarantine_empty failed on landing_table: files a.csv, b.csv"]
    # A WARN failure is not alerted; passing ends the failure, so the next one alerts again.
    _report(instance, "row_count", passed=False, severity=dg.AssetCheckSeverity.WARN)
    _report(instance, "quarantine_empty", passed=True)
    cursor, texts = tick_texts(cursor)
    assert texts == []
    _report(instance, "quarantine_empty", passed=False, files={"a.csv": "line 1: bad"})
    cursor, texts = tick_texts(cursor)
    assert texts == ["Asset check quarantine_empty failed on landing_table: files a.csv"]
    assert all(message["body"]["run_id"] is None for message in received)  # runless reports


def test_unreachable_webhook_fails_the_check_alert_tick_so_it_is_retried(instance, webhook):
    url, received = webhook
    defs = dg.Definitions(assets=[landing_table])
    _report(instance, "quarantine_empty", passed=False, files={"a.csv": "line 1: bad"})
    unreachable = build_check_failure_sensor("http://127.0.0.1:9/unreachable")
    with pytest.raises(OSError):  # URLError: connection refused
        _check_alert_tick(unreachable, instance, defs, None)
    # The failed tick saved no cursor: the next tick (the webhook back) posts the alert.
    _check_alert_tick(build_check_failure_sensor(url), instance, defs, None)
    assert len(received) == 1


def test_check_alert_without_webhook_is_logged(instance, capfd):
    defs = dg.Definitions(assets=[landing_table])
    _report(instance, "quarantine_empty", passed=False, files={"a.csv": "line 1: bad"})
    capfd.readouterr()
    _check_alert_tick(build_check_failure_sensor(""), instance, defs, None)
    logged = [line for line in capfd.readouterr().err.splitlines() if " - ERROR - " in line]
    assert len(logged) == 1
    assert "Asset check quarantine_empty failed on landing_table: files a.csv" in logged[0]
    assert "LAKEHOUSE_ALERT_WEBHOOK not set" in logged[0]


def test_definitions_register_the_check_failure_alert():
    from lakehouse_assets.definitions import defs as load_defs

    sensors = {sensor.name: sensor for sensor in load_defs().sensors}
    assert sensors[CHECK_FAILURE_SENSOR_NAME].default_status == dg.DefaultSensorStatus.RUNNING
