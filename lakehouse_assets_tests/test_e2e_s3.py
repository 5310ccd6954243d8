"""End to end on S3: the demo in a bucket of a real S3 API server, every layer built by the
real ``dagster`` CLI, with PostgreSQL for both gold and the Iceberg catalog.

* ``s3_lake_uri`` (conftest) is a fresh bucket on a ``moto.server`` subprocess on
  127.0.0.1; ``AWS_ENDPOINT_URL`` points there.
* One real PostgreSQL server (pgserver, in a temp folder outside pytest's basetemp)
  holds the gold/marts schemas and the pyiceberg SQL catalog.
* The CLI runs from an empty temp working folder, which must stay empty: nothing of the
  lake, the catalog or the gold database may fall back to ``./.lakehouse``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import psycopg2
import pyarrow.parquet as pq
import pytest

from lakehouse_assets.contracts import load_contracts
from lakehouse_assets.demo.simulator import generate
from lakehouse_assets.lake import open_lake
from lakehouse_assets.lake.catalog import open_catalog, warehouse_for_lake
from lakehouse_assets.postgres import embedded_postgres_url, stop_embedded_postgres
from lakehouse_assets.silver.tables import table_identifier

pytestmark = pytest.mark.dbt

CONTRACTS = load_contracts()
TODAY = datetime.now(UTC).date()
START = TODAY - timedelta(days=2)  # full-load files take their upload date (today) as partition
DAYS = 3
GOLD_TABLES = {
    "gold.daily_revenue",
    "gold.mrr",
    "gold.event_funnel",
    "gold.product_daily",
    "gold.customer_lifetime_value",
    "gold.tenants",
    "marts.tenant_kpis",
    "marts.customer_segments",
}


@pytest.fixture(scope="module")
def postgres_url():
    """A real PostgreSQL server; not under pytest's basetemp (see test_postgres_io_manager)."""
    folder = Path(tempfile.mkdtemp(prefix="lakehouse-e2e-s3-pg-"))
    pgdata = folder / "postgres"
    try:
        yield embedded_postgres_url(pgdata)
    finally:
        stop_embedded_postgres(pgdata)
        shutil.rmtree(folder, ignore_errors=True)


def sqlalchemy_url(libpq_url: str) -> str:
    scheme, rest = libpq_url.split("://", 1)
    assert scheme in ("postgres", "postgresql"), libpq_url
    return f"postgresql+psycopg2://{rest}"


@pytest.fixture
def workdirs():
    """(empty working folder, DAGSTER_HOME); both outside pytest's basetemp."""
    root = Path(tempfile.mkdtemp(prefix="lakehouse-e2e-s3-"))
    work, home = root / "work", root / "dagster-home"
    work.mkdir()
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    try:
        yield work, home
    finally:
        shutil.rmtree(root, ignore_errors=True)


def cli_env(home: Path, lake_uri: str, postgres_url: str, **aws: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("LAKEHOUSE_")}
    env.update(
        DAGSTER_HOME=str(home),
        LAKEHOUSE_LAKE_URI=lake_uri,
        LAKEHOUSE_START_DATE=START.isoformat(),
        LAKEHOUSE_CATALOG_URI=sqlalchemy_url(postgres_url),
        LAKEHOUSE_POSTGRES_URL=postgres_url,
        # The demo's commit times are synthetic; this test is not about freshness.
        LAKEHOUSE_FRESHNESS_MAX_LAG_MINUTES="100000000",
    )
    env.update(aws)
    return env


def materialize_all(work: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("dagster")),
            "asset",
            "materialize",
            "-m",
            "lakehouse_assets.definitions",
            "--select",
            "*",
            "--partition-range",
            f"{START}...{TODAY}",
            "--config-json",
            json.dumps({"execution": {"config": {"in_process": {}}}}),
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _query(url: str, text: str) -> list[tuple]:
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(text)
            return cursor.fetchall()
    finally:
        connection.close()


def assert_silver_equals_oracle(catalog, store) -> None:
    for name, contract in CONTRACTS.tables.items():
        keys = [(k, "ascending") for k in contract.primary_key]
        expected = pq.read_table(io.BytesIO(store.get(f"demo/expected/{name}.parquet")))
        expected = expected.select(contract.column_names).sort_by(keys)
        actual = (
            catalog.load_table(table_identifier(contract))
            .scan(row_filter="_is_deleted = false")
            .to_arrow()
            .select(contract.column_names)
            .sort_by(keys)
        )
        assert actual.num_rows == expected.num_rows, (name, actual.num_rows, expected.num_rows)
        assert actual.num_rows > 0, name
        for column in contract.column_names:
            got, want = actual[column].to_pylist(), expected[column].to_pylist()
            if got != want:
                first = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
                pytest.fail(
                    f"{name}.{column} row {first}: silver {got[first]!r} != oracle {want[first]!r}"
                )


def test_cli_builds_every_layer_on_s3_and_postgres(
    s3_lake_uri, s3_server, s3_client, postgres_url, workdirs
):
    work, home = workdirs
    bucket = urlparse(s3_lake_uri).netloc
    store = open_lake(s3_lake_uri)
    generate(store, CONTRACTS, scale=0.02, days=DAYS, seed=42, start=START, gzip=False)

    env = cli_env(home, s3_lake_uri, postgres_url)
    assert env["AWS_ENDPOINT_URL"] == s3_server
    result = materialize_all(work, env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "RUN_SUCCESS" in output

    # Silver equals the simulator's oracle, read through the PostgreSQL catalog.
    catalog = open_catalog(sqlalchemy_url(postgres_url), warehouse_for_lake(s3_lake_uri))
    assert warehouse_for_lake(s3_lake_uri) == f"s3://{bucket}/warehouse"
    assert_silver_equals_oracle(catalog, store)

    # Gold and marts are in PostgreSQL, with rows.
    found = {
        row[0]
        for row in _query(
            postgres_url,
            (
                "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                "WHERE table_schema IN ('gold', 'marts')"
            ),
        )
    }
    assert GOLD_TABLES <= found, found
    for table in sorted(GOLD_TABLES):
        (count,) = _query(postgres_url, f"SELECT count(*) FROM {table}")[0]
        assert count > 0, table

    # The Iceberg warehouse (metadata and data files) is in the bucket.
    keys = [
        item["Key"]
        for page in s3_client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="warehouse/"
        )
        for item in page.get("Contents", [])
    ]
    assert any(key.endswith(".metadata.json") for key in keys), keys[:20]
    assert any(key.endswith(".parquet") for key in keys), keys[:20]

    # Nothing fell back to the working folder (no ./.lakehouse, no dbt target, no logs).
    assert sorted(p.name for p in work.iterdir()) == []


def test_cli_with_a_bad_secret_key_fails_naming_endpoint_and_bucket(
    s3_auth_server, postgres_url, workdirs
):
    work, home = workdirs
    # A valid access key id, a wrong secret: the first S3 request of bronze is refused.
    env = cli_env(
        home,
        f"s3://{s3_auth_server.bucket}/",
        postgres_url,
        AWS_ENDPOINT_URL=s3_auth_server.endpoint,
        AWS_ACCESS_KEY_ID=s3_auth_server.access_key_id,
        AWS_SECRET_ACCESS_KEY="wrong",
    )
    result = materialize_all(work, env)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-6000:]
    assert "RUN_SUCCESS" not in output
    # One clear message naming both the endpoint and the bucket.
    lines = [
        line
        for line in output.splitlines()
        if "LakeError" in line
        and s3_auth_server.endpoint in line
        and f"'{s3_auth_server.bucket}'" in line
    ]
    assert lines, output[-6000:]
    assert all("SignatureDoesNotMatch" in line for line in lines), lines[:3]
    assert sorted(p.name for p in work.iterdir()) == []
