"""The DuckDB query of silver that README.md shows ("DuckDB on Iceberg") runs as written,
from the working folder of the embedded defaults, and answers what the demo's oracle says.

The code block is taken from the README itself, so the documented query and the tested
one cannot drift apart.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from lakehouse_assets.contracts import load_contracts
from lakehouse_assets.demo.simulator import generate
from lakehouse_assets.dms.writer import cdc_key, encode_dms_file
from lakehouse_assets.lake import open_lake
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for, warehouse_for_lake
from lakehouse_assets.settings import DEFAULT_LAKE_URI
from lakehouse_assets.silver.apply import apply_days
from lakehouse_assets_tests.test_gold_demo import PAID

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = load_contracts()
START = date(2024, 1, 1)
DAYS = 2
QUERIED_DAY = date(2024, 1, 1)  # the day the README's query asks for
SECTION = "## DuckDB on Iceberg"


def readme_query() -> str:
    """The first Python code block of the README's DuckDB section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION) :]
    section = section[: section.find("\n## ", len(SECTION))]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, f"no python block in the README's {SECTION!r} section"
    return match.group(1)


@pytest.fixture
def embedded_silver(tmp_path, monkeypatch) -> tuple[Path, int]:
    """A working folder with the embedded defaults' lake and catalog, holding the demo's
    silver.core_order merged from two days of DMS files, one more of which deletes a paid
    order of the queried day at the source (a key-only ``D`` row): (lake, that order's id)."""
    monkeypatch.chdir(tmp_path)
    lake = tmp_path / DEFAULT_LAKE_URI
    store = open_lake(str(lake))
    generate(store, CONTRACTS, scale=0.02, days=DAYS, seed=42, start=START, gzip=False)
    order = CONTRACTS.table("core_order")
    oracle = pq.read_table(lake / "demo" / "expected" / "core_order.parquet")
    deleted = next(
        row["id"]
        for row in oracle.to_pylist()
        if row["created_at"].date() == QUERIED_DAY and row["status"] in PAID
    )
    # DMS's delete carries the row as it was (its before-image).
    before = oracle.filter(pc.equal(oracle["id"], deleted))
    key = cdc_key(CONTRACTS.dms, order.schema, order.dms_name, datetime(2024, 1, 2, 23, 59, 59))
    store.put(
        key,
        encode_dms_file(
            before,
            key,
            order,
            CONTRACTS.dms,
            ops=pa.array(["D"]),
            commit_ts=pa.array([datetime(2024, 1, 2, 23, 59, 59)], pa.timestamp("us")),
        ),
    )
    catalog = open_catalog(
        sqlite_uri_for(tmp_path / ".lakehouse" / "catalog.db"), warehouse_for_lake(str(lake))
    )
    days = [START + timedelta(days=offset) for offset in range(DAYS)]
    apply_days(catalog, store, order, CONTRACTS.dms, days, datetime.now(UTC))
    tombstone = catalog.load_table("silver.core_order").scan(row_filter=f"id = {deleted}")
    assert tombstone.to_arrow()["_is_deleted"].to_pylist() == [True]
    return lake, deleted


def test_readme_duckdb_query_answers_as_the_oracle(embedded_silver):
    namespace: dict = {}
    exec(compile(readme_query(), "README.md", "exec"), namespace)  # the README's code, as is
    revenue = namespace["revenue"]
    lake, deleted = embedded_silver

    expected: dict[int, list] = defaultdict(lambda: [0, Decimal("0")])
    oracle = pq.read_table(lake / "demo" / "expected" / "core_order.parquet")
    for order in oracle.to_pylist():
        if order["id"] == deleted:  # deleted at the source after the oracle was written
            continue
        if order["created_at"].date() == QUERIED_DAY and order["status"] in PAID:
            expected[order["tenant_id"]][0] += 1
            expected[order["tenant_id"]][1] += order["total"]
    assert expected, "the demo has no paid orders that day: the query would prove nothing"
    assert revenue == [
        (tenant, count, total) for tenant, (count, total) in sorted(expected.items())
    ]
