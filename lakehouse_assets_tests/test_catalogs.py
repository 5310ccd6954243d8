"""The catalog ``lakehouse`` from pyiceberg's own configuration: AWS Glue end to end on the
Glue API of the moto server, a SQL catalog given as ``PYICEBERG_CATALOG__LAKEHOUSE__*``,
``LAKEHOUSE_CATALOG_URI`` winning over it (and saying so), and a REST catalog's
configuration against a small HTTP server of this file (there is no REST catalog server to
install here: it answers only a catalog's first requests, ``GET /v1/config`` and the OAuth2
token ``POST``), and the Spark engine's settings for Glue and REST.

Every Dagster run is the real ``dagster`` CLI in a subprocess.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import boto3
import psycopg2
import pytest
from pyiceberg.catalog.glue import GlueCatalog
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.catalog.sql import SqlCatalog

from lakehouse_assets.demo.simulator import generate
from lakehouse_assets.gold.exports import export_identifier
from lakehouse_assets.gold.summaries import summaries_for
from lakehouse_assets.lake import open_lake
from lakehouse_assets.lake.catalog import (
    CatalogSource,
    CatalogUnavailable,
    open_catalog,
    resolve_catalog,
    sqlite_uri_for,
    warehouse_for_lake,
)
from lakehouse_assets.names import CATALOG_NAME
from lakehouse_assets.silver.spark.session import (
    GLUE_CATALOG_IMPL,
    SparkNotInstalled,
    lakehouse_spark_conf,
)
from lakehouse_assets.silver.tables import table_identifier
from lakehouse_assets_tests.conftest import LOOPBACK, free_loopback_port
from lakehouse_assets_tests.test_dg_cli import (
    BRONZE_AND_SILVER,
    materialize_command,
    oracle_rows,
    run,
    silver_rows,
)
from lakehouse_assets_tests.test_dg_cli import demo_landing as demo_landing
from lakehouse_assets_tests.test_dg_cli import project as project
from lakehouse_assets_tests.test_e2e_s3 import (
    CONTRACTS,
    DAYS,
    START,
    assert_silver_equals_oracle,
    cli_env,
    materialize_all,
)
from lakehouse_assets_tests.test_e2e_s3 import postgres_url as postgres_url
from lakehouse_assets_tests.test_e2e_s3 import workdirs as workdirs

PYICEBERG = "PYICEBERG_CATALOG__LAKEHOUSE__"
CHOSEN_FROM_PYICEBERG = f"Iceberg catalog {CATALOG_NAME!r}: %s, from the pyiceberg configuration"


@pytest.fixture(autouse=True)
def no_pyiceberg_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pyiceberg also reads ``.pyiceberg.yaml`` from ``$PYICEBERG_HOME``: an empty folder."""
    home = tmp_path / "pyiceberg-home"
    home.mkdir()
    monkeypatch.setenv("PYICEBERG_HOME", str(home))


def set_pyiceberg(monkeypatch: pytest.MonkeyPatch, **properties: str) -> None:
    """``PYICEBERG_CATALOG__LAKEHOUSE__<NAME>`` for each property (``GLUE__REGION`` ...)."""
    for name, value in properties.items():
        monkeypatch.setenv(f"{PYICEBERG}{name}", value)


# --------------------------------------------------------------------------- AWS Glue


@pytest.fixture
def glue(s3_server: str) -> Iterator:
    """A boto3 Glue client on the moto server; the databases the run creates are dropped."""
    client = boto3.client("glue", endpoint_url=s3_server, region_name="us-east-1")
    yield client
    for database in ("silver", "gold"):
        try:
            for page in client.get_paginator("get_tables").paginate(DatabaseName=database):
                for table in page["TableList"]:
                    client.delete_table(DatabaseName=database, Name=table["Name"])
            client.delete_database(Name=database)
        except client.exceptions.EntityNotFoundException:
            pass


@pytest.mark.dbt  # the build runs every layer, marts included
def test_glue_catalog_end_to_end_on_moto(
    s3_lake_uri,
    s3_server,
    s3_client,
    glue,
    postgres_url,
    workdirs,
    monkeypatch,
):
    work, home = workdirs
    bucket = urlparse(s3_lake_uri).netloc
    store = open_lake(s3_lake_uri)
    generate(store, CONTRACTS, scale=0.02, days=DAYS, seed=42, start=START, gzip=False)
    # Glue as pyiceberg users configure it: no LAKEHOUSE_CATALOG_URI, no warehouse (the
    # lake's s3://<bucket>/warehouse), the S3 endpoint from AWS_ENDPOINT_URL.
    set_pyiceberg(
        monkeypatch,
        TYPE="glue",
        GLUE__ENDPOINT=s3_server,
        GLUE__REGION="us-east-1",
        GLUE__ACCESS_KEY_ID="testing",
        GLUE__SECRET_ACCESS_KEY="testing",
    )
    env = cli_env(home, s3_lake_uri, postgres_url, LAKEHOUSE_GOLD_EXPORTS="all")
    env["LAKEHOUSE_CATALOG_URI"] = ""  # empty is unset
    result = materialize_all(work, env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "RUN_SUCCESS" in output
    assert CHOSEN_FROM_PYICEBERG % "glue" in output
    assert "glue.secret-access-key=***" in output  # the secret itself is never logged

    warehouse = f"s3://{bucket}/warehouse"
    catalog = open_catalog("", warehouse_for_lake(s3_lake_uri))
    assert isinstance(catalog, GlueCatalog)
    assert_silver_equals_oracle(catalog, store)

    # Glue has every silver table, as an Iceberg table whose metadata file is in the bucket
    # and is the one pyiceberg reads.
    for name, contract in CONTRACTS.tables.items():
        found = glue.get_table(DatabaseName="silver", Name=name)["Table"]
        assert found["Parameters"]["table_type"] == "ICEBERG", found["Parameters"]
        location = found["Parameters"]["metadata_location"]
        assert location.startswith(f"{warehouse}/silver.db/{name}/metadata/"), location
        assert location == catalog.load_table(table_identifier(contract)).metadata_location
        s3_client.head_object(Bucket=bucket, Key=location.removeprefix(f"s3://{bucket}/"))
        # Athena reads the columns Glue lists: the contract's, lower case.
        columns = [column["Name"] for column in found["StorageDescriptor"]["Columns"]]
        assert columns[: len(contract.column_names)] == contract.column_names, columns

    # Gold exports are Iceberg tables in Glue too, with PostgreSQL's rows.
    connection = psycopg2.connect(postgres_url)
    try:
        for summary in summaries_for(frozenset(CONTRACTS.tables)):
            found = glue.get_table(DatabaseName="gold", Name=summary.name)["Table"]
            assert found["Parameters"]["metadata_location"].startswith(
                f"{warehouse}/gold.db/{summary.name}/metadata/"
            )
            exported = catalog.load_table(export_identifier(summary.name)).scan().to_arrow()
            with connection.cursor() as cursor:
                # Identifiers from the project's own summary list, quoted.
                cursor.execute(f'SELECT count(*) FROM gold."{summary.name}"')
                (in_postgres,) = cursor.fetchone()
            assert exported.num_rows == in_postgres > 0, summary.name
    finally:
        connection.close()
    # Neither an embedded SQLite catalog nor anything else fell back to the working folder.
    assert sorted(path.name for path in work.iterdir()) == []


def test_spark_on_glue_names_glue_catalog_and_the_missing_aws_jars(monkeypatch):
    set_pyiceberg(monkeypatch, TYPE="glue", GLUE__REGION="eu-west-1")
    conf = lakehouse_spark_conf("", "s3://data-lake/warehouse", local_jars=False)
    prefix = f"spark.sql.catalog.{CATALOG_NAME}"
    assert conf[f"{prefix}.catalog-impl"] == GLUE_CATALOG_IMPL
    assert conf[f"{prefix}.client.region"] == "eu-west-1"
    assert conf[f"{prefix}.warehouse"] == "s3://data-lake/warehouse"
    assert f"{prefix}.type" not in conf  # catalog-impl and type exclude each other
    # The local jars (scripts/install_spark.sh) have no AWS SDK: refused, saying what to add.
    with pytest.raises(SparkNotInstalled, match="iceberg-aws-bundle") as refused:
        lakehouse_spark_conf("", "s3://data-lake/warehouse", local_jars=True)
    assert "org.apache.iceberg:iceberg-aws-bundle" in str(refused.value)


# --------------------------------------------------------------------------- SQL via pyiceberg


@pytest.mark.cli
def test_sql_catalog_from_pyiceberg_environment_variables(project):
    """``PYICEBERG_CATALOG__LAKEHOUSE__*`` alone: the run's tables are in that catalog."""
    catalog_db = project["catalog"]
    result = run(
        materialize_command(BRONZE_AND_SILVER),
        project,
        {
            "LAKEHOUSE_CATALOG_URI": "",
            f"{PYICEBERG}TYPE": "sql",
            f"{PYICEBERG}URI": sqlite_uri_for(catalog_db),
        },
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert CHOSEN_FROM_PYICEBERG % "sql" in output
    assert "LAKEHOUSE_CATALOG_URI is set" not in output
    # silver_rows opens the same SQLite file: the tables are there and equal the oracle.
    assert silver_rows(project) == oracle_rows(project["lake"])
    # The embedded default (./.lakehouse/catalog.db) was not used.
    assert list(project["work"].iterdir()) == []


@pytest.mark.cli
def test_catalog_uri_wins_over_pyiceberg_config_and_the_run_logs_it(project, tmp_path):
    ignored_db = tmp_path / "pyiceberg.db"
    result = run(
        materialize_command("silver/core_tenant"),
        project,  # LAKEHOUSE_CATALOG_URI: the project's catalog file
        {
            f"{PYICEBERG}TYPE": "sql",
            f"{PYICEBERG}URI": sqlite_uri_for(ignored_db),
        },
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert (
        f"LAKEHOUSE_CATALOG_URI is set, so it wins over the catalog {CATALOG_NAME!r} (sql) "
        "of pyiceberg's configuration"
    ) in output
    assert f"Iceberg catalog {CATALOG_NAME!r}: sql, from the LAKEHOUSE_CATALOG_URI" in output
    catalog = SqlCatalog(CATALOG_NAME, uri=sqlite_uri_for(project["catalog"]))
    assert catalog.table_exists("silver.core_tenant")
    assert not ignored_db.exists()  # the shadowed catalog was never opened


def test_precedence_in_process(monkeypatch, tmp_path):
    warehouse = warehouse_for_lake(str(tmp_path / "lake"))
    assert resolve_catalog("", warehouse).source is CatalogSource.EMBEDDED_DEFAULT
    set_pyiceberg(monkeypatch, URI=sqlite_uri_for(tmp_path / "configured.db"))
    configured = resolve_catalog("", warehouse)  # changed after import: still seen
    assert configured.source is CatalogSource.PYICEBERG_CONFIG
    assert configured.type == "sql"  # inferred from the uri, as pyiceberg does
    assert configured.warehouse == warehouse  # the lake's, since the config sets none
    chosen = resolve_catalog(sqlite_uri_for(tmp_path / "explicit.db"), warehouse)
    assert chosen.source is CatalogSource.CATALOG_URI
    assert chosen.properties["uri"].endswith("explicit.db")
    assert "configured.db" not in chosen.describe()


# --------------------------------------------------------------------------- REST


class RestEndpoint(BaseHTTPRequestHandler):
    """The first requests of the Iceberg REST protocol (``GET /v1/config``, ``POST`` of an
    OAuth token): records each, answers with the class's ``status`` and ``body`` (set per
    test). Header names are recorded lower case (HTTP's are case-insensitive)."""

    status = 200
    body: dict | list = {}
    requests: list[dict] = []

    def _answer(self) -> None:
        parsed = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        type(self).requests.append(
            {
                "method": self.command,
                "path": parsed.path,
                "query": parse_qs(parsed.query),
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "form": parse_qs(self.rfile.read(length).decode()) if length else {},
            }
        )
        payload = json.dumps(type(self).body).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer  # noqa: N815 (the stdlib's names)

    def log_message(self, *args) -> None:  # quiet: pytest shows failures, not access logs
        pass


@pytest.fixture
def rest_server() -> Iterator[tuple[str, type[RestEndpoint]]]:
    handler = type("Endpoint", (RestEndpoint,), {"requests": []})
    server = ThreadingHTTPServer((LOOPBACK, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}/api/catalog", handler
    finally:
        server.shutdown()
        server.server_close()


def test_rest_properties_reach_pyiceberg_rest_catalog(rest_server, monkeypatch, tmp_path):
    uri, endpoint = rest_server
    endpoint.body = {"defaults": {}, "overrides": {"prefix": "lakehouse-prefix"}}
    set_pyiceberg(
        monkeypatch,
        TYPE="rest",
        URI=uri,
        WAREHOUSE="analytics",
        TOKEN="very-secret-token",
        HEADER__X_ICEBERG_ACCESS_DELEGATION="vended-credentials",
    )
    choice = resolve_catalog("", warehouse_for_lake(str(tmp_path / "lake")))
    assert choice.warehouse == "analytics"  # the server's name for it, not <lake>/warehouse
    catalog = open_catalog("", warehouse_for_lake(str(tmp_path / "lake")))
    assert isinstance(catalog, RestCatalog)
    assert catalog.properties["prefix"] == "lakehouse-prefix"  # the server's override
    (request,) = endpoint.requests
    assert (request["method"], request["path"]) == ("GET", "/api/catalog/v1/config")
    assert request["query"] == {"warehouse": ["analytics"]}
    assert request["headers"]["authorization"] == "Bearer very-secret-token"
    assert request["headers"]["x-iceberg-access-delegation"] == "vended-credentials"
    # The Spark engine's REST catalog gets the same settings.
    conf = lakehouse_spark_conf("", warehouse_for_lake(str(tmp_path / "lake")), local_jars=False)
    prefix = f"spark.sql.catalog.{CATALOG_NAME}"
    assert conf[f"{prefix}.type"] == "rest"
    assert conf[f"{prefix}.uri"] == uri
    assert conf[f"{prefix}.warehouse"] == "analytics"
    assert conf[f"{prefix}.header.x-iceberg-access-delegation"] == "vended-credentials"


def test_rest_refusal_names_catalog_and_uri_and_hides_the_secrets(
    rest_server, monkeypatch, tmp_path
):
    uri, endpoint = rest_server
    endpoint.status = 401
    endpoint.body = {"error": "invalid_client", "error_description": "unknown client secret"}
    set_pyiceberg(
        monkeypatch,
        TYPE="rest",
        URI=uri,
        CREDENTIAL="lakehouse-client:hush-hush",
        OAUTH2_SERVER_URI=f"{uri}/v1/oauth/tokens",
        SCOPE="PRINCIPAL_ROLE:ALL",
    )
    with pytest.raises(CatalogUnavailable) as refused:
        open_catalog("", warehouse_for_lake(str(tmp_path / "lake")))
    # The client credentials went to the token endpoint, as OAuth2 client credentials.
    (request,) = endpoint.requests
    assert (request["method"], request["path"]) == ("POST", "/api/catalog/v1/oauth/tokens")
    assert request["form"]["client_id"] == ["lakehouse-client"]
    assert request["form"]["scope"] == ["PRINCIPAL_ROLE:ALL"]
    message = str(refused.value)
    assert f"Iceberg catalog {CATALOG_NAME!r}: rest" in message
    assert f"uri={uri}" in message
    assert "unknown client secret" in message  # the server's reason
    assert "hush-hush" not in message and "credential=***" in message


def test_unreachable_rest_catalog_names_its_uri(monkeypatch, tmp_path):
    uri = f"http://{LOOPBACK}:{free_loopback_port()}/catalog"  # nothing listens there
    set_pyiceberg(monkeypatch, TYPE="rest", URI=uri)
    with pytest.raises(CatalogUnavailable, match=f"uri={uri}"):
        open_catalog("", warehouse_for_lake(str(tmp_path / "lake")))


def test_a_server_that_is_no_rest_catalog_is_named(rest_server, monkeypatch, tmp_path):
    uri, endpoint = rest_server
    endpoint.body = ["not", "a", "catalog", "configuration"]  # 200, but not the protocol's
    set_pyiceberg(monkeypatch, TYPE="rest", URI=uri)
    with pytest.raises(CatalogUnavailable, match=f"uri={uri}.*cannot open it"):
        open_catalog("", warehouse_for_lake(str(tmp_path / "lake")))
