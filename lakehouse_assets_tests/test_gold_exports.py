"""Gold exports (``gold.<name>`` Iceberg tables): a run replaces exactly its days in one
commit, and a reader scanning the table meanwhile never sees half a partition.

``export_rows`` is what a gold asset's run calls with the rows it also writes to
PostgreSQL; the asset wiring (``LAKEHOUSE_GOLD_EXPORTS``, the same rows as PostgreSQL, in
Glue) is covered by ``test_catalogs.test_glue_catalog_end_to_end_on_moto``. The catalog
here is the embedded default's kind: SQLite, warehouse in a local folder.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse_assets.gold.exports import (
    GoldExportError,
    GoldExportsResource,
    export_identifier,
    export_rows,
)
from lakehouse_assets.gold.summaries import DAY_COLUMN
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for, warehouse_for_lake

ROOT = Path(__file__).resolve().parents[1]
WAREHOUSE_PREFIX = "warehouse/"  # warehouse_for_lake: <lake>/warehouse
DAYS = [date(2024, 1, 1) + timedelta(days=offset) for offset in range(4)]
SUMMARY = "daily_revenue"


def open_test_catalog(root: Path):
    return open_catalog(sqlite_uri_for(root / "catalog.db"), warehouse_for_lake(str(root / "lake")))


def day_rows(days: list[date], version: int) -> pa.Table:
    """``version``'s rows of ``days``: a row count that differs from version to version
    (10 + version % 7 per day), so a half-replaced day cannot pass for a whole one."""
    per_day = 10 + version % 7
    return pa.table(
        {
            DAY_COLUMN: pa.array([day for day in days for _ in range(per_day)], pa.date32()),
            "tenant_id": pa.array([row for _ in days for row in range(per_day)], pa.int64()),
            "version": pa.array([version] * (per_day * len(days)), pa.int64()),
        }
    )


def versions_by_day(rows: pa.Table) -> dict[date, list[int]]:
    seen: dict[date, list[int]] = defaultdict(list)
    for day, version in zip(rows[DAY_COLUMN].to_pylist(), rows["version"].to_pylist()):
        seen[day].append(version)
    return seen


def whole_partition_problems(rows: pa.Table) -> list[str]:
    """What is wrong with ``rows`` as the union of whole days, each of one version."""
    problems = []
    for day, versions in versions_by_day(rows).items():
        if len(set(versions)) != 1:
            problems.append(f"{day}: versions {sorted(set(versions))} mixed")
        elif len(versions) != 10 + versions[0] % 7:
            problems.append(f"{day}: {len(versions)} rows of version {versions[0]}")
    return problems


def test_a_run_replaces_exactly_its_days(tmp_path):
    catalog = open_test_catalog(tmp_path)
    first = export_rows(
        catalog, SUMMARY, day_rows(DAYS, 0), (DAY_COLUMN, DAYS[0], DAYS[-1] + timedelta(days=1))
    )
    assert first.identifier == "gold.daily_revenue" and first.rows == 4 * 10
    commits = len(catalog.load_table(export_identifier(SUMMARY)).metadata.metadata_log)
    # A late change refreshes days 2 and 3 only: one commit, the other days untouched.
    second = export_rows(catalog, SUMMARY, day_rows(DAYS[1:3], 5), (DAY_COLUMN, DAYS[1], DAYS[3]))
    table = catalog.load_table(export_identifier(SUMMARY))
    assert second.snapshot_id == table.current_snapshot().snapshot_id
    # One commit per run: one new metadata file, whose snapshots (pyiceberg's overwrite is a
    # delete and an append) readers get together or not at all.
    assert len(table.metadata.metadata_log) == commits + 1
    versions = versions_by_day(table.scan().to_arrow())
    assert {day: sorted(set(v)) for day, v in versions.items()} == {
        DAYS[0]: [0],
        DAYS[1]: [5],
        DAYS[2]: [5],
        DAYS[3]: [0],
    }
    assert [len(versions[day]) for day in DAYS] == [10, 15, 15, 10]
    # Partitioned by day: the replaced days' old files are gone from the current snapshot.
    files = table.inspect.files().to_pylist()
    assert {file["partition"][DAY_COLUMN] for file in files} == set(DAYS)
    assert len(files) == len(DAYS)
    # A day whose rows all went (e.g. its orders were deleted) is emptied, not kept.
    export_rows(catalog, SUMMARY, day_rows([], 1), (DAY_COLUMN, DAYS[3], DAYS[3] + timedelta(1)))
    remaining = versions_by_day(catalog.load_table(export_identifier(SUMMARY)).scan().to_arrow())
    assert set(remaining) == set(DAYS[:3])


def test_an_unpartitioned_summary_is_replaced_whole(tmp_path):
    catalog = open_test_catalog(tmp_path)
    export_rows(catalog, "tenants", pa.table({"tenant_id": [1, 2, 3]}), None)
    export_rows(catalog, "tenants", pa.table({"tenant_id": [2, 4]}), None)
    table = catalog.load_table(export_identifier("tenants"))
    assert sorted(table.scan().to_arrow()["tenant_id"].to_pylist()) == [2, 4]
    assert table.spec().is_unpartitioned()


def test_a_new_summary_column_is_added_to_the_export(tmp_path):
    catalog = open_test_catalog(tmp_path)
    window = (DAY_COLUMN, DAYS[0], DAYS[1])
    export_rows(catalog, SUMMARY, day_rows(DAYS[:1], 0), window)
    wider = day_rows(DAYS[:1], 1).append_column("revenue", pa.array([1.5] * 11))
    export_rows(catalog, SUMMARY, wider, window)
    rows = catalog.load_table(export_identifier(SUMMARY)).scan().to_arrow()
    assert rows["revenue"].to_pylist() == [1.5] * 11


def test_a_concurrent_reader_never_sees_a_partial_partition(tmp_path):
    writer_catalog = open_test_catalog(tmp_path)
    end = DAYS[-1] + timedelta(days=1)
    export_rows(writer_catalog, SUMMARY, day_rows(DAYS, 0), (DAY_COLUMN, DAYS[0], end))
    done = threading.Event()
    problems: list[str] = []
    errors: list[BaseException] = []
    scans: list[dict[date, int]] = []

    def read_until_done() -> None:
        reader_catalog = open_test_catalog(tmp_path)  # a reader of its own, as Athena is
        try:
            while not done.is_set():
                rows = reader_catalog.load_table(export_identifier(SUMMARY)).scan().to_arrow()
                problems.extend(whole_partition_problems(rows))
                if set(versions_by_day(rows)) != set(DAYS):
                    problems.append(f"days missing: {sorted(versions_by_day(rows))}")
                scans.append({day: v[0] for day, v in versions_by_day(rows).items()})
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    reader = threading.Thread(target=read_until_done)
    reader.start()
    try:
        for version in range(1, 25):
            # Alternately one day and a range of two days: a range is one commit too.
            first = DAYS[version % len(DAYS)]
            days = (
                [first] if version % 2 else [d for d in DAYS if first <= d < first + timedelta(2)]
            )
            export_rows(
                writer_catalog,
                SUMMARY,
                day_rows(days, version),
                (DAY_COLUMN, days[0], days[-1] + timedelta(days=1)),
            )
    finally:
        done.set()
        reader.join(timeout=120)
    assert not errors, errors[0]
    assert not problems, problems[:5]
    # The reader really read while the days were being replaced, not only before or after.
    assert len(scans) >= 5, len(scans)
    assert len({tuple(sorted(scan.items())) for scan in scans}) >= 3, scans[:5]
    final = writer_catalog.load_table(export_identifier(SUMMARY)).scan().to_arrow()
    assert not whole_partition_problems(final)


def test_the_setting_names_all_some_or_none_of_the_summaries():
    known = frozenset({"daily_revenue", "mrr"})
    assert GoldExportsResource(summaries="all").exported("mrr", known)
    assert GoldExportsResource(summaries=" mrr ").exported("mrr", known)
    assert not GoldExportsResource(summaries="mrr").exported("daily_revenue", known)
    assert not GoldExportsResource(summaries="").exported("mrr", known)
    with pytest.raises(GoldExportError, match="gold exports revenue: no such summary"):
        GoldExportsResource(summaries="mrr,revenue").exported("mrr", known)


def test_no_bucket_lifecycle_rule_expires_files_of_the_iceberg_warehouse():
    """Exports (and silver) are Iceberg tables in <lake>/warehouse: a lifecycle rule there
    would delete files that tables still reference. Their retention is snapshot expiry."""
    rules = json.loads((ROOT / "minio" / "lifecycle.json").read_text())["Rules"]
    assert rules  # the scan below has something to look at
    for rule in rules:
        prefix = rule.get("Filter", {}).get("Prefix", "")
        assert not WAREHOUSE_PREFIX.startswith(prefix), rule
        assert not prefix.startswith(WAREHOUSE_PREFIX), rule
