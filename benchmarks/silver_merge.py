"""Silver merge cost: does it follow the size of the change, not of the table?

Builds a silver table of --rows rows (one full load), then, in the same run and
on the same table state, applies change batches of several sizes (updates of
existing keys, spread over the key space or clustered at recent keys, plus new
inserts) and times:

- merge: ``merge_changes`` (prunes data files by key bounds, rewrites only the
  files holding changed keys, one commit);
- baseline: the naive full rewrite (read the whole table, apply the changes in
  memory, overwrite the table), which costs the same whatever the change.

    python benchmarks/silver_merge.py --rows 1000000 --changes 1000,100000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.contracts import Column, DmsSettings, PartitionSpec, TableContract
from lakehouse_assets.dms import raw_schema
from lakehouse_assets.silver.catalog import open_catalog, sqlite_uri_for
from lakehouse_assets.silver.merge import KEY, newest_per_key, with_position
from lakehouse_assets.silver.casting import cast_changes
from lakehouse_assets.silver.tables import table_identifier
from lakehouse_assets.silver.writer import merge_changes

CONTRACT = TableContract(
    name="bench_order",
    schema="public",
    primary_key=("id",),
    columns=(
        Column("id", "bigint", nullable=False),
        Column("tenant_id", "bigint"),
        Column("status", "string"),
        Column("total", "decimal(12,2)"),
        Column("created_at", "timestamp"),
    ),
    partition_by=PartitionSpec(column="created_at", transform="month"),
)
DMS = DmsSettings(bucket_folder="bronze/dms")
START = np.datetime64("2023-01-01T00:00:00", "us")


def raw_batch(ids: np.ndarray, op: str, file_key: str, commit: str, rng: np.random.Generator) -> pa.Table:
    """A bronze batch (DMS reader output) for ``ids``; created_at follows the id."""
    n = len(ids)
    created = START + (ids * 30).astype("timedelta64[s]")  # ~1 row per 30 s: months hold ~86K ids
    statuses = np.array(["pending", "paid", "shipped", "cancelled"])[rng.integers(0, 4, n)]
    cents = rng.integers(100, 10_000_000, n)
    columns = {
        "id": pa.array(ids).cast(pa.string()),
        "tenant_id": pa.array(ids % 97).cast(pa.string()),
        "status": pa.array(statuses),
        "total": pc.binary_join_element_wise(
            pa.array(cents // 100).cast(pa.string()),
            pc.utf8_lpad(pa.array(cents % 100).cast(pa.string()), 2, "0"),
            ".",
        ),
        "created_at": pc.strftime(pa.array(created), format="%Y-%m-%d %H:%M:%S"),
        "_op": pa.array([op] * n),
        "_commit_ts": pa.array(np.full(n, np.datetime64(commit, "us"))).cast(pa.timestamp("us", tz="UTC")),
        "_change_seq": pa.nulls(n, pa.string()),
        "_source_file": pa.array([file_key] * n),
        "_source_row": pa.array(np.arange(1, n + 1, dtype=np.int64)),
    }
    return pa.table(columns, schema=raw_schema(CONTRACT))


def change_batch(rows: int, size: int, clustered: bool, rng: np.random.Generator, day: int) -> pa.Table:
    """``size`` changes: 90% updates of existing keys, 10% new keys."""
    updates = int(size * 0.9)
    if clustered:
        keys = rng.choice(np.arange(max(0, rows - 50 * size), rows), updates, replace=False)
    else:
        keys = rng.choice(rows, updates, replace=False)
    inserts = np.arange(rows + day * size, rows + day * size + size - updates)
    key = f"bronze/dms/public/bench_order/2024/02/{day:02d}/202402{day:02d}-120000000.csv"
    return pa.concat_tables(
        [
            raw_batch(np.sort(keys), "U", key, f"2024-02-{day:02d}T12:00:00", rng),
            raw_batch(inserts, "I", key, f"2024-02-{day:02d}T12:00:01", rng),
        ]
    )


def full_rewrite(catalog, raw: pa.Table) -> None:
    """Baseline: the whole table through memory and back."""
    table = catalog.load_table(table_identifier(CONTRACT))
    current = table.scan().to_arrow()
    changes = newest_per_key(with_position(cast_changes(raw, CONTRACT).typed, CONTRACT.primary_key, DMS))
    changed = changes[KEY].combine_chunks()
    kept = current.filter(pc.invert(pc.is_in(current["id"], value_set=changed)))
    schema = table.schema().as_arrow()
    new = changes.append_column("_ingested_at", pa.repeat(pa.scalar(datetime.now(timezone.utc)), changes.num_rows))
    new = new.append_column("_is_deleted", pc.equal(new["_op"], "D")).select(schema.names).cast(schema)
    table.overwrite(pa.concat_tables([kept.cast(schema), new]).sort_by("id"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changes", default="1000,100000", help="comma-separated batch sizes")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    sizes = [int(size) for size in args.changes.split(",")]

    with tempfile.TemporaryDirectory() as scratch:
        catalog = open_catalog(sqlite_uri_for(Path(scratch, "catalog.db")), Path(scratch, "wh").as_uri())
        load = raw_batch(np.arange(args.rows), "I", "bronze/dms/public/bench_order/LOAD00000001.csv", "2024-01-31T00:00:00", rng)
        started = time.perf_counter()
        merge_changes(catalog, CONTRACT, DMS, load, datetime.now(timezone.utc))
        print(f"initial load of {args.rows:,} rows: {time.perf_counter() - started:.2f} s")
        table = catalog.load_table(table_identifier(CONTRACT))
        files = len(list(table.scan().plan_files()))
        print(f"table: {args.rows:,} rows in {files} data files\n")
        print(f"{'changes':>9} {'spread':<10}{'merge s':>9}{'files rw':>10}{'rewrite s':>11}{'rewrite/merge':>15}")
        day = 1
        for size in sizes:
            for clustered in (True, False):
                batch = change_batch(args.rows, size, clustered, rng, day)
                day += 1
                started = time.perf_counter()
                result = merge_changes(catalog, CONTRACT, DMS, batch, datetime.now(timezone.utc))
                merge_s = time.perf_counter() - started
                # The same changes again through the baseline (stale for the merge, but the
                # baseline does not know that and pays the full price regardless).
                started = time.perf_counter()
                full_rewrite(catalog, batch)
                rewrite_s = time.perf_counter() - started
                spread = "recent" if clustered else "uniform"
                print(
                    f"{size:>9,} {spread:<10}{merge_s:>9.2f}{result.files_rewritten:>5}/{result.files_scanned:<4}"
                    f"{rewrite_s:>11.2f}{rewrite_s / merge_s:>14.1f}x"
                )


if __name__ == "__main__":
    main()
