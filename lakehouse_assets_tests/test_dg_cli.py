"""The project is a ``dg`` project: ``dg check defs``, ``dg list defs`` and ``dg launch`` of a
partition range work (the real CLI, a subprocess), and ``dagster asset materialize`` still
does, giving the same silver tables.

Every command runs from an empty temp folder with ``--target-path`` (dg) or ``-m`` (dagster)
naming the project, on a demo lake in a temp folder; DAGSTER_HOME is conftest's temp one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lakehouse_assets.contracts import load_contracts
from lakehouse_assets.demo.simulator import generate
from lakehouse_assets.lake import open_lake
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for, warehouse_for_lake
from lakehouse_assets.silver.tables import table_identifier

pytestmark = pytest.mark.cli

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = load_contracts()
START = date(2024, 1, 1)
DAYS = 2
RANGE = f"{START}...{START + timedelta(days=DAYS - 1)}"
IN_PROCESS = json.dumps({"execution": {"config": {"in_process": {}}}})
BRONZE_AND_SILVER = "group:bronze or group:silver"
BACKFILL_POLICY_WARNING = "Parameter `backfill_policy` of function `asset` is currently in beta"


def cli(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


@pytest.fixture(scope="module")
def demo_landing(tmp_path_factory) -> Path:
    lake = tmp_path_factory.mktemp("dg-demo") / "lake"
    generate(
        open_lake(str(lake)), CONTRACTS, scale=0.02, days=DAYS, seed=42, start=START, gzip=False
    )
    return lake


@pytest.fixture
def project(demo_landing, tmp_path) -> dict[str, Path]:
    """A private copy of the landing, a catalog file and an empty working folder."""
    lake = tmp_path / "lake"
    shutil.copytree(demo_landing, lake)
    work = tmp_path / "work"
    work.mkdir()
    return {"lake": lake, "catalog": tmp_path / "catalog.db", "work": work}


def materialize_command(selection: str) -> list[str]:
    """``dagster asset materialize`` of ``selection`` over RANGE, in one process."""
    return [
        cli("dagster"),
        "asset",
        "materialize",
        "-m",
        "lakehouse_assets.definitions",
        "--select",
        selection,
        "--partition-range",
        RANGE,
        "--config-json",
        IN_PROCESS,
    ]


def run(
    command: list[str], project: dict[str, Path], extra_env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``command`` in the project's empty working folder on its lake and catalog file;
    ``extra_env`` is applied last (an empty value is an unset setting)."""
    env = {
        **os.environ,
        "LAKEHOUSE_LAKE_URI": str(project["lake"]),
        "LAKEHOUSE_CATALOG_URI": sqlite_uri_for(project["catalog"]),
        "LAKEHOUSE_START_DATE": START.isoformat(),
        # The demo's commits are from 2024; this test is not about freshness.
        "LAKEHOUSE_FRESHNESS_MAX_LAG_MINUTES": "100000000",
        **(extra_env or {}),
    }
    return subprocess.run(
        command,
        cwd=project["work"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def silver_rows(project: dict[str, Path]) -> dict[str, list[dict]]:
    catalog = open_catalog(
        sqlite_uri_for(project["catalog"]), warehouse_for_lake(str(project["lake"]))
    )
    rows = {}
    for name, contract in CONTRACTS.tables.items():
        table = catalog.load_table(table_identifier(contract))
        live = table.scan(row_filter="_is_deleted = false").to_arrow().select(contract.column_names)
        rows[name] = live.sort_by([(key, "ascending") for key in contract.primary_key]).to_pylist()
    return rows


def oracle_rows(lake: Path) -> dict[str, list[dict]]:
    rows = {}
    for name, contract in CONTRACTS.tables.items():
        expected = pq.read_table(lake / "demo" / "expected" / f"{name}.parquet")
        expected = expected.select(contract.column_names)
        rows[name] = expected.sort_by(
            [(key, "ascending") for key in contract.primary_key]
        ).to_pylist()
    return rows


def test_dg_check_defs_and_list_defs(project):
    checked = run([cli("dg"), "check", "defs", "--target-path", str(ROOT)], project)
    output = checked.stdout + checked.stderr
    assert checked.returncode == 0, output[-4000:]
    assert "All definitions loaded successfully" in output
    assert BACKFILL_POLICY_WARNING not in output

    listed = run([cli("dg"), "list", "defs", "--json", "--target-path", str(ROOT)], project)
    assert listed.returncode == 0, (listed.stdout + listed.stderr)[-4000:]
    keys = {asset["asset_key"] for asset in json.loads(listed.stdout)["assets"]}
    assert {"bronze/core_order", "silver/core_order", "gold/daily_revenue"} <= keys, keys


def test_dg_launch_of_a_partition_range_and_dagster_asset_materialize_agree(project, tmp_path):
    launched = run(
        [
            cli("dg"),
            "launch",
            "--assets",
            BRONZE_AND_SILVER,
            "--partition-range",
            RANGE,
            "--config-json",
            IN_PROCESS,
            "--target-path",
            str(ROOT),
        ],
        project,
    )
    output = launched.stdout + launched.stderr
    assert launched.returncode == 0, output[-4000:]
    assert "RUN_SUCCESS" in output
    # The project's own choice (single-run backfills) warns no more; nothing else is hidden.
    assert BACKFILL_POLICY_WARNING not in output
    expected = oracle_rows(project["lake"])
    assert silver_rows(project) == expected

    # The same range through the classic CLI, into a catalog of its own.
    classic = {**project, "catalog": tmp_path / "classic.db", "lake": tmp_path / "classic-lake"}
    shutil.copytree(project["lake"] / "bronze", classic["lake"] / "bronze")
    shutil.copytree(project["lake"] / "demo", classic["lake"] / "demo")
    materialized = run(
        materialize_command(BRONZE_AND_SILVER),
        classic,
    )
    output = materialized.stdout + materialized.stderr
    assert materialized.returncode == 0, output[-4000:]
    assert BACKFILL_POLICY_WARNING not in output
    assert silver_rows(classic) == expected
    # Neither CLI wrote into its working folder.
    assert list(project["work"].iterdir()) == []
