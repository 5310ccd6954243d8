"""Silver over the demo landing equals the demo's oracle, through the real `dagster` CLI."""

import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse_assets.bronze.files import list_partition_files, read_partition_files
from lakehouse_assets.contracts import load_contracts
from lakehouse_assets.demo.simulator import generate
from lakehouse_assets.lake import open_lake
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for, warehouse_for_lake
from lakehouse_assets.silver.apply import apply_days, merge_changes
from lakehouse_assets.silver.tables import table_identifier

CONTRACTS = load_contracts()
START = date(2024, 1, 1)
DAYS = 4


def live_rows(catalog, table: str) -> pa.Table:
    contract = CONTRACTS.table(table)
    rows = (
        catalog.load_table(table_identifier(contract))
        .scan(row_filter="_is_deleted = false")
        .to_arrow()
    )
    return rows.select(contract.column_names).sort_by(
        [(k, "ascending") for k in contract.primary_key]
    )


def assert_equals_oracle(catalog, lake: Path) -> None:
    for name, contract in CONTRACTS.tables.items():
        expected = pq.read_table(lake / "demo" / "expected" / f"{name}.parquet")
        expected = expected.select(contract.column_names).sort_by(
            [(k, "ascending") for k in contract.primary_key]
        )
        actual = live_rows(catalog, name)
        assert actual.num_rows == expected.num_rows, name
        for column in contract.column_names:
            got, want = actual[column].to_pylist(), expected[column].to_pylist()
            if got != want:
                first = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
                pytest.fail(
                    f"{name}.{column} row {first}: silver {got[first]!r} != oracle {want[first]!r}"
                )


@pytest.fixture(scope="module")
def demo_landing(tmp_path_factory) -> Path:
    lake = tmp_path_factory.mktemp("demo") / "lake"
    generate(
        open_lake(str(lake)), CONTRACTS, scale=0.02, days=DAYS, seed=42, start=START, gzip=False
    )
    return lake


@pytest.fixture
def demo_lake(demo_landing, tmp_path) -> Path:
    """A private copy of the landing, so each test's warehouse starts empty."""
    lake = tmp_path / "lake"
    shutil.copytree(demo_landing, lake)
    return lake


def materialize(
    lake: Path, catalog_db: Path, selection: str, first: date, last: date
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "LAKEHOUSE_LAKE_URI": str(lake),
        "LAKEHOUSE_CATALOG_URI": sqlite_uri_for(catalog_db),
    }
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("dagster")),
            "asset",
            "materialize",
            "-m",
            "lakehouse_assets.definitions",
            "--select",
            selection,
            "--partition-range",
            f"{first}...{last}",
            # One process for every step: the CLI path is what this tests, not the executor.
            "--config-json",
            '{"execution": {"config": {"in_process": {}}}}',
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.cli
def test_cli_partition_range_builds_silver_equal_to_the_oracle(demo_lake, tmp_path):
    catalog_db = tmp_path / "catalog.db"
    last = START + timedelta(days=DAYS - 1)
    result = materialize(demo_lake, catalog_db, "group:bronze or group:silver", START, last)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "RUN_SUCCESS" in result.stdout + result.stderr
    catalog = open_catalog(sqlite_uri_for(catalog_db), warehouse_for_lake(str(demo_lake)))
    assert_equals_oracle(catalog, demo_lake)


def test_days_in_reverse_and_repeated_give_the_oracle(demo_lake, tmp_path):
    """In process (the CLI path is covered above): each day is its own merge, newest first."""
    store = open_lake(str(demo_lake))
    catalog = open_catalog(
        sqlite_uri_for(tmp_path / "catalog.db"), warehouse_for_lake(str(demo_lake))
    )
    days = [START + timedelta(days=offset) for offset in range(DAYS)]
    for day in [*reversed(days), days[1], days[0]]:
        for contract in CONTRACTS.tables.values():
            files = list_partition_files(store, CONTRACTS.dms, contract, [day])
            raw = read_partition_files(store, CONTRACTS.dms, contract, files)
            merge_changes(catalog, contract, CONTRACTS.dms, raw, datetime.now(UTC))
    assert_equals_oracle(catalog, demo_lake)


@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_a_live_full_load_and_a_reload_give_the_oracle_in_any_order(tmp_path, order):
    """The demo's source keeps writing during the full load, and a table is reloaded on day 3
    (keys deleted while the task was stopped): silver runs (ledger, generations, sweep) over
    the days, in either order, equal the source."""
    lake = tmp_path / "lake"
    store = open_lake(str(lake))
    generate(
        store, CONTRACTS, scale=0.02, days=DAYS, seed=5, start=START, live_load=True, reload_day=3
    )
    catalog = open_catalog(sqlite_uri_for(tmp_path / "catalog.db"), warehouse_for_lake(str(lake)))
    days = [START + timedelta(days=offset) for offset in range(DAYS)]
    # LOAD files are partitioned by their write day: the reload's files on day 3.
    for day in days if order == "forward" else list(reversed(days)):
        for contract in CONTRACTS.tables.values():
            apply_days(catalog, store, contract, CONTRACTS.dms, [day], datetime.now(UTC))
    assert_equals_oracle(catalog, lake)
