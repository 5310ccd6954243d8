"""Postgres IO manager against a real PostgreSQL server (pgserver, in a temp folder)."""

import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path

import dagster as dg
import psycopg2
import pyarrow as pa
import pytest
from psycopg2 import sql

from lakehouse_assets.io_managers.postgres import PostgresIOManager
from lakehouse_assets.postgres import (
    PostgresResource,
    dbt_environment,
    embedded_postgres_url,
    stop_embedded_postgres,
)
from lakehouse_assets.postgres.tables import (
    GoldSchemaError,
    PartitionFilter,
    ensure_table,
    fits,
    postgres_type,
    read_rows,
    replace_rows,
)


@contextmanager
def server_folder():
    """A temp folder for a PostgreSQL data directory, outside pytest's basetemp: as root,
    PostgreSQL runs as the user 'pgserver', and a pytest session starting meanwhile (in
    another shell) resets /tmp/pytest-of-<user> to mode 0700, locking that user out."""
    folder = Path(tempfile.mkdtemp(prefix="lakehouse-pg-test-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_url():
    with server_folder() as folder:
        pgdata = folder / "postgres"
        url = embedded_postgres_url(pgdata)
        yield url
        stop_embedded_postgres(pgdata)


@pytest.fixture
def connection(postgres_url: str):
    connection = psycopg2.connect(postgres_url)
    yield connection
    connection.close()


def _rows(connection, query: str, params: tuple = ()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        rows = cursor.fetchall()
    connection.rollback()
    return rows


# --------------------------------------------------------------------------- pure helpers


def test_postgres_types_and_lossless_fits():
    assert postgres_type(pa.int64()) == "bigint"
    assert postgres_type(pa.decimal128(18, 2)) == "numeric(18,2)"
    assert postgres_type(pa.timestamp("us", tz="UTC")) == "timestamp with time zone"
    assert postgres_type(pa.timestamp("us")) == "timestamp without time zone"
    assert fits("integer", "bigint") and not fits("bigint", "integer")
    assert fits("numeric(12,2)", "numeric(18,2)") and not fits("numeric(18,4)", "numeric(18,2)")
    assert not fits("text", "bigint") and not fits("bigint", "text")


def test_dbt_environment_from_url():
    env = dbt_environment("postgresql://ann:s3cret@db.example:6543/gold")
    assert env == {
        "DBT_LAKEHOUSE_HOST": "db.example",
        "DBT_LAKEHOUSE_PORT": "6543",
        "DBT_LAKEHOUSE_USER": "ann",
        "DBT_ENV_SECRET_LAKEHOUSE_PASSWORD": "s3cret",
        "DBT_LAKEHOUSE_DATABASE": "gold",
    }


# --------------------------------------------------------------------------- through Dagster


DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01")


class Version(dg.Config):
    version: int = 1
    with_extra: bool = False
    amount_as_text: bool = False


@dg.asset(
    key=["gold", "io_test_daily"],
    partitions_def=DAILY,
    io_manager_key="postgres_io_manager",
    metadata={"primary_key": ["day", "tenant_id"], "partition_column": "day"},
)
def io_test_daily(context: dg.AssetExecutionContext, config: Version) -> pa.Table:
    day = date.fromisoformat(context.partition_key)
    tenants = 3 if config.version == 1 else 2  # the rewrite drops a tenant: its row must go
    columns = {
        "day": pa.array([day] * tenants, pa.date32()),
        "tenant_id": pa.array(range(1, tenants + 1), pa.int64()),
        "amount": pa.array(
            [Decimal(config.version * 10 + t) for t in range(tenants)], pa.decimal128(12, 2)
        ),
    }
    if config.amount_as_text:
        columns["amount"] = pa.array([str(v) for v in range(tenants)])
    if config.with_extra:
        columns["note"] = pa.array([f"v{config.version}"] * tenants)
    return pa.table(columns)


@dg.asset(partitions_def=DAILY, ins={"daily": dg.AssetIn(key=["gold", "io_test_daily"])})
def io_test_reader(daily: pa.Table) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={
            "rows": daily.num_rows,
            "days": sorted({d.isoformat() for d in daily["day"].to_pylist()}),
        }
    )


def _materialize(
    url: str, partition: str, schema_name: str = "gold", **config
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [io_test_daily],
        partition_key=partition,
        resources={
            "postgres_io_manager": PostgresIOManager(
                postgres=PostgresResource(url=url), schema_name=schema_name
            )
        },
        run_config=dg.RunConfig({"gold__io_test_daily": Version(**config)}),
    )


def test_partition_replace_touches_only_its_partition_and_loads_filtered(postgres_url, connection):
    schema = "io_partition"
    assert _materialize(postgres_url, "2024-01-01", schema).success
    assert _materialize(postgres_url, "2024-01-02", schema).success
    result = _materialize(postgres_url, "2024-01-01", schema, version=2)
    assert result.success
    rows = _rows(
        connection, f'SELECT day, tenant_id, amount FROM "{schema}"."io_test_daily" ORDER BY 1, 2'
    )
    assert rows == [
        (date(2024, 1, 1), 1, Decimal("20.00")),
        (date(2024, 1, 1), 2, Decimal("21.00")),
        (date(2024, 1, 2), 1, Decimal("10.00")),
        (date(2024, 1, 2), 2, Decimal("11.00")),
        (date(2024, 1, 2), 3, Decimal("12.00")),
    ]
    metadata = result.asset_materializations_for_node("gold__io_test_daily")[0].metadata
    assert metadata["rows_written"].value == 2 and metadata["rows_replaced"].value == 3
    assert metadata["dagster/row_count"].value == 5
    assert [
        key
        for (key,) in _rows(
            connection,
            "\n        SELECT a.attname FROM pg_index i JOIN pg_attribute a"
            " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)\n"
            "        WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY a.attnum",
            (f"{schema}.io_test_daily",),
        )
    ] == ["day", "tenant_id"]

    # Loading an input returns Arrow for the requested partition only.
    loaded = dg.materialize(
        [io_test_daily.to_source_asset(), io_test_reader],
        partition_key="2024-01-02",
        resources={
            "postgres_io_manager": PostgresIOManager(
                postgres=PostgresResource(url=postgres_url), schema_name=schema
            ),
            "io_manager": dg.mem_io_manager,
        },
    )
    reader_metadata = loaded.asset_materializations_for_node("io_test_reader")[0].metadata
    assert reader_metadata["rows"].value == 3
    assert reader_metadata["days"].value == ["2024-01-02"]


def test_rows_outside_the_partition_are_refused(postgres_url, connection):
    data = pa.table({"day": pa.array([date(2024, 1, 1), date(2024, 1, 5)]), "v": [1, 2]})
    ensure_table(connection, "io_stray", "t", data.schema, ["day"])
    window = PartitionFilter("day", start=date(2024, 1, 1), end=date(2024, 1, 2))
    with pytest.raises(GoldSchemaError, match="1 of 2 output rows"):
        replace_rows(connection, "io_stray", "t", data, window)
    assert _rows(connection, 'SELECT count(*) FROM "io_stray"."t"') == [(0,)]


def test_new_column_is_added_and_old_rows_keep_null(postgres_url, connection):
    schema = "io_evolve"
    assert _materialize(postgres_url, "2024-01-01", schema).success
    result = _materialize(postgres_url, "2024-01-02", schema, with_extra=True)
    assert result.success
    assert result.asset_materializations_for_node("gold__io_test_daily")[0].metadata[
        "added_columns"
    ].value == ["note"]
    rows = _rows(
        connection, f'SELECT day, note FROM "{schema}"."io_test_daily" ORDER BY day, tenant_id'
    )
    assert rows == [(date(2024, 1, 1), None)] * 3 + [(date(2024, 1, 2), "v1")] * 3


def test_incompatible_type_change_is_a_clear_error_and_changes_nothing(postgres_url, connection):
    schema = "io_retype"
    assert _materialize(postgres_url, "2024-01-01", schema).success
    with pytest.raises(GoldSchemaError) as error:
        _materialize(postgres_url, "2024-01-02", schema, amount_as_text=True)
    message = str(error.value)
    assert "'amount' is numeric(12,2) in the table but the output has text" in message
    assert "ALTER TABLE" in message
    assert _rows(connection, f'SELECT count(*) FROM "{schema}"."io_test_daily"') == [(3,)]
    assert _rows(
        connection,
        """SELECT format_type(atttypid, atttypmod) FROM pg_attribute
        WHERE attrelid = %s::regclass AND attname = 'amount'""",
        (f'"{schema}"."io_test_daily"',),
    ) == [("numeric(12,2)",)]


def test_identifiers_that_need_quotes(postgres_url, connection):
    schema, table = 'Gold "Weird" Schema', "Order Items; DROP TABLE x"
    data = pa.table(
        {
            "select": pa.array([1, 2], pa.int64()),
            "Mixed Case": ["it's", 'say "hi"'],
            "from": pa.array([None, ""], pa.string()),
            "a,b\nc": pa.array([1.5, None]),
        }
    )
    ensure_table(connection, schema, table, data.schema, ["select"])
    replace_rows(connection, schema, table, data, None)
    loaded = read_rows(connection, schema, table)
    assert loaded.column_names == data.column_names
    assert loaded.sort_by("select").to_pylist() == data.to_pylist()  # NULL and '' stay apart
    assert _rows(connection, "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)) == [
        (1,)
    ]


def test_unpartitioned_swap_is_atomic_under_a_concurrent_reader(postgres_url, connection):
    schema, table = "io_swap", "snapshot"
    old_rows, new_rows = 150_000, 120_000

    def version(number: int, rows: int) -> pa.Table:
        return pa.table(
            {
                "id": pa.array(range(rows), pa.int64()),
                "version": pa.array([number] * rows, pa.int32()),
                "payload": pa.array([f"row {i} of version {number}" for i in range(rows)]),
            }
        )

    ensure_table(connection, schema, table, version(1, 1).schema, ["id"])
    replace_rows(connection, schema, table, version(1, old_rows), None)
    new_version = version(2, new_rows)

    seen: list[tuple[int, int, int]] = []
    errors: list[BaseException] = []
    writer_done = threading.Event()

    def read_until_done() -> None:
        reader = psycopg2.connect(postgres_url)
        reader.autocommit = True  # every query its own snapshot, as a dashboard does
        query = sql.SQL("SELECT count(*), min(version), max(version) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        try:
            with reader.cursor() as cursor:
                extra = 0
                while extra < 3:  # keep reading a little after the writer commits
                    cursor.execute(query)
                    seen.append(cursor.fetchone())
                    extra += writer_done.is_set()
        except Exception as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
        finally:
            reader.close()

    thread = threading.Thread(target=read_until_done)
    thread.start()
    time.sleep(0.05)
    writer = psycopg2.connect(postgres_url)
    try:
        result = replace_rows(writer, schema, table, new_version, None)
    finally:
        writer.close()
        writer_done.set()
    thread.join(timeout=60)
    assert not errors
    assert result.deleted == old_rows and result.inserted == new_rows
    assert set(seen) <= {(old_rows, 1, 1), (new_rows, 2, 2)}, set(seen)
    assert seen[0] == (old_rows, 1, 1) and seen[-1] == (new_rows, 2, 2)
    assert len(seen) > 3


def test_embedded_server_is_shared_and_restartable():
    with server_folder() as folder:
        _shared_and_restartable(folder / "pg")


def _shared_and_restartable(pgdata: Path):
    first = embedded_postgres_url(pgdata)
    assert embedded_postgres_url(pgdata) == first
    connection = psycopg2.connect(first)
    connection.close()
    assert stop_embedded_postgres(pgdata)
    assert not stop_embedded_postgres(pgdata)
    again = embedded_postgres_url(pgdata)  # a stopped server starts again on the same data
    connection = psycopg2.connect(again)
    connection.close()
    stop_embedded_postgres(pgdata)


def test_embedded_server_started_once_by_concurrent_processes():
    """Like the step processes of one Dagster run: all start at once, one server serves them."""
    with server_folder() as folder:
        _started_once(folder / "pg")


def _started_once(pgdata: Path):
    import subprocess
    import sys

    script = (
        "import sys, psycopg2\n"
        "from lakehouse_assets.postgres import embedded_postgres_url\n"
        "url = embedded_postgres_url(sys.argv[1])\n"
        "connection = psycopg2.connect(url)\n"
        "cursor = connection.cursor(); cursor.execute('SELECT pg_postmaster_start_time()::text')\n"
        "print(url, cursor.fetchone()[0])\n"
    )
    try:
        processes = [
            subprocess.Popen(
                [sys.executable, "-W", "ignore", "-c", script, str(pgdata)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        outputs = [process.communicate(timeout=120) for process in processes]
        assert all(process.returncode == 0 for process in processes), outputs
        assert (
            len({stdout.strip() for stdout, _ in outputs}) == 1
        )  # same URL, same server start time
    finally:
        stop_embedded_postgres(pgdata)
