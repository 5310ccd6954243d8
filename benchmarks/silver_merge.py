"""Silver merge cost: does it follow the size of the change, not of the table?

Builds a silver table of --rows rows (one full load), then, in the same run and
on the same table state, applies change batches of several sizes (updates of
existing keys, spread over the key space or clustered at recent keys, plus new
inserts) and times:

- merge: ``merge_changes`` (prunes data files by key bounds, rewrites only the
  files holding changed keys, one commit);
- baseline: the naive full rewrite (read the whole table, apply the changes in
  memory, overwrite the table), which costs the same whatever the change.

With ``--engine spark``, the same batches are also written as DMS CSV files and
merged by the Spark engine (local mode, Iceberg's copy-on-write ``MERGE INTO``)
into its own copy of the table, loaded from the same rows: both engines, same
data, same run. Spark's time is split into its phases (read and type the files,
plan against the stored rows, MERGE commit, rejects), and a one-row merge shows
its fixed cost per run.

    python benchmarks/silver_merge.py --rows 1000000 --changes 1000,100000
    python benchmarks/silver_merge.py --rows 1000000 --changes 1000,100000 --engine spark
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.contracts import Column, DmsSettings, PartitionSpec, TableContract
from lakehouse_assets.dms import encode_dms_file, raw_schema
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for
from lakehouse_assets.silver.apply import merge_changes
from lakehouse_assets.silver.casting import cast_changes
from lakehouse_assets.silver.merge import KEY, newest_per_key, with_position
from lakehouse_assets.silver.tables import table_identifier

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


def raw_batch(
    ids: np.ndarray, op: str, file_key: str, commit: str, rng: np.random.Generator
) -> pa.Table:
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
        "_commit_ts": pa.array(np.full(n, np.datetime64(commit, "us"))).cast(
            pa.timestamp("us", tz="UTC")
        ),
        "_change_seq": pa.nulls(n, pa.string()),
        "_source_file": pa.array([file_key] * n),
        "_source_row": pa.array(np.arange(1, n + 1, dtype=np.int64)),
    }
    return pa.table(columns, schema=raw_schema(CONTRACT))


def change_batch(
    rows: int, size: int, clustered: bool, rng: np.random.Generator, day: int
) -> pa.Table:
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
    changes = newest_per_key(
        with_position(cast_changes(raw, CONTRACT).typed, CONTRACT.primary_key, DMS)
    )
    changed = changes[KEY].combine_chunks()
    kept = current.filter(pc.invert(pc.is_in(current["id"], value_set=changed)))
    schema = table.schema().as_arrow()
    new = changes.append_column(
        "_ingested_at", pa.repeat(pa.scalar(datetime.now(UTC)), changes.num_rows)
    )
    new = (
        new.append_column("_is_deleted", pc.equal(new["_op"], "D"))
        .select(schema.names)
        .cast(schema)
    )
    table.overwrite(pa.concat_tables([kept.cast(schema), new]).sort_by("id"))


def write_dms_csv(lake: Path, raw: pa.Table) -> str:
    """Write a bronze batch as the DMS CSV file it came from; its key."""
    key = raw["_source_file"][0].as_py()
    path = lake / key
    path.parent.mkdir(parents=True, exist_ok=True)
    data = encode_dms_file(raw, key, CONTRACT, DMS, ops=raw["_op"], commit_ts=raw["_commit_ts"])
    path.write_bytes(data)
    return key


class SparkBench:
    """The Spark engine on its own catalog and copy of the table, fed the same rows as CSV."""

    def __init__(self, scratch: Path):
        from lakehouse_assets.silver.spark.session import lakehouse_spark_session

        self.lake = scratch / "spark-lake"
        self.catalog_uri = sqlite_uri_for(scratch / "spark-catalog.db")
        warehouse = (self.lake / "warehouse").as_uri()
        self.catalog = open_catalog(self.catalog_uri, warehouse)
        started = time.perf_counter()
        self.spark = lakehouse_spark_session(self.catalog_uri, warehouse)
        self.spark.range(1).count()  # the JVM and the executor are up
        self.session_s = time.perf_counter() - started

    def merge(self, raw: pa.Table) -> tuple[float, dict, object]:
        from lakehouse_assets.silver.spark.engine import spark_merge_changes
        from lakehouse_assets.silver.spark.reader import BronzeFileRef, spark_uri

        key = write_dms_csv(self.lake, raw)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        result = spark_merge_changes(
            self.spark,
            self.catalog,
            CONTRACT,
            DMS,
            [BronzeFileRef(key, spark_uri(str(self.lake), key))],
            datetime.now(UTC),
            timings=timings,
        )
        return time.perf_counter() - started, timings, result


def _phases(timings: dict) -> str:
    return " ".join(
        f"{name} {timings.get(name, 0.0):.1f}" for name in ("read", "plan", "merge", "rejects")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changes", default="1000,100000", help="comma-separated batch sizes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--engine",
        choices=("arrow", "spark"),
        default="arrow",
        help="spark: also merge the same batches with the Spark engine (local mode)",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    sizes = [int(size) for size in args.changes.split(",")]

    with tempfile.TemporaryDirectory() as scratch:
        catalog = open_catalog(
            sqlite_uri_for(Path(scratch, "catalog.db")), Path(scratch, "wh").as_uri()
        )
        load = raw_batch(
            np.arange(args.rows),
            "I",
            "bronze/dms/public/bench_order/LOAD00000001.csv",
            "2024-01-31T00:00:00",
            rng,
        )
        started = time.perf_counter()
        merge_changes(catalog, CONTRACT, DMS, load, datetime.now(UTC))
        print(f"initial load of {args.rows:,} rows: {time.perf_counter() - started:.2f} s")
        table = catalog.load_table(table_identifier(CONTRACT))
        files = len(list(table.scan().plan_files()))
        print(f"table: {args.rows:,} rows in {files} data files\n")
        spark = None
        if args.engine == "spark":
            spark = SparkBench(Path(scratch))
            print(f"spark: session start (JVM, local[2]) {spark.session_s:.2f} s")
            load_s, timings, _ = spark.merge(load)
            spark_files = len(
                list(spark.catalog.load_table(table_identifier(CONTRACT)).scan().plan_files())
            )
            print(
                f"spark: initial load of the same {args.rows:,} rows from DMS CSV: {load_s:.2f} s "
                f"({_phases(timings)}); {spark_files} data files"
            )
            warm_s, timings, _ = spark.merge(
                change_batch(args.rows, 1, False, np.random.default_rng(0), 28)
            )
            print(
                f"spark: one-row merge (fixed cost of a run): {warm_s:.2f} s ({_phases(timings)})\n"
            )
        header = (
            f"{'changes':>9} {'spread':<10}{'merge s':>9}"
            f"{'files rw':>10}{'rewrite s':>11}{'rewrite/merge':>15}"
        )
        if spark:
            header += f"{'spark s':>9}{'spark/merge':>13}{'files rw':>10}  spark phases s"
        print(header)
        day = 1
        for size in sizes:
            for clustered in (True, False):
                batch = change_batch(args.rows, size, clustered, rng, day)
                day += 1
                started = time.perf_counter()
                result = merge_changes(catalog, CONTRACT, DMS, batch, datetime.now(UTC))
                merge_s = time.perf_counter() - started
                # The same changes again through the baseline (stale for the merge, but the
                # baseline does not know that and pays the full price regardless).
                started = time.perf_counter()
                full_rewrite(catalog, batch)
                rewrite_s = time.perf_counter() - started
                spread = "recent" if clustered else "uniform"
                line = (
                    f"{size:>9,} {spread:<10}{merge_s:>9.2f}"
                    f"{result.files_rewritten:>5}/{result.files_scanned:<4}"
                    f"{rewrite_s:>11.2f}{rewrite_s / merge_s:>14.1f}x"
                )
                if spark:
                    spark_s, timings, spark_result = spark.merge(batch)
                    assert (spark_result.inserted, spark_result.updated) == (
                        result.inserted,
                        result.updated,
                    )
                    line += (
                        f"{spark_s:>9.2f}{spark_s / merge_s:>12.1f}x"
                        f"{spark_result.files_rewritten:>10}"
                        f"  {_phases(timings)}"
                    )
                print(line)


if __name__ == "__main__":
    main()
