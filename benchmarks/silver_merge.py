"""Silver merge cost against the copy-on-write floor, with peak memory, in one run.

Writes a first load of --rows rows as DMS LOAD files (--load-files of them) into a lake in
a temporary folder and applies it (``apply_days``: the silver run the asset makes); then,
on that table state, change batches of each --changes size as one DMS CDC file (90%
updates of existing keys, spread over the key space or clustered at the newest keys, 10%
inserts), and times for each:

- merge: ``apply_days`` over the batch's day (reads the file, prunes data files by key
  bounds, rewrites the files holding changed keys, one commit);
- floor: reading the data files the merge rewrites and writing them once, nothing more
  (measured first, on the same table state): copy-on-write cannot cost less.

Every phase runs in a fresh process, so its peak RSS (``ru_maxrss``) is its own.

With ``--engine spark`` the Spark engine loads and merges the same DMS files into its own
copy of the table (local mode, Iceberg's copy-on-write ``MERGE INTO``), after the arrow
engine, in the same run.

    python benchmarks/silver_merge.py --rows 1000000 --changes 1000,100000
    python benchmarks/silver_merge.py --rows 10000000 --changes 1000,1000000
    python benchmarks/silver_merge.py --rows 1000000 --changes 100000 --engine spark
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.contracts import Column, DmsSettings, PartitionSpec, TableContract
from lakehouse_assets.dms import encode_dms_file
from lakehouse_assets.lake import open_lake
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for
from lakehouse_assets.silver.apply import apply_days
from lakehouse_assets.silver.merge import key_array
from lakehouse_assets.silver.pruning import may_hold, stored_files
from lakehouse_assets.silver.tables import read_data_files, table_identifier, write_data_files

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
PREFIX = "bronze/dms/public/bench_order/"
START = np.datetime64("2023-01-01T00:00:00", "us")
LOAD_DAY = date(2024, 1, 31)
STATUSES = np.array(["pending", "paid", "shipped", "cancelled"])


# --------------------------------------------------------------------------- DMS files


def rows_for(ids: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """Contract rows for ``ids``; created_at follows the id (~86K ids a month)."""
    n = len(ids)
    cents = rng.integers(100, 10_000_000, n)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "tenant_id": pa.array(ids % 97, pa.int64()),
            "status": pa.array(STATUSES[rng.integers(0, 4, n)]),
            # Cents as text with a decimal point: what DMS writes for numeric(12,2).
            "total": pc.binary_join_element_wise(
                pa.array(cents // 100).cast(pa.string()),
                pc.utf8_lpad(pa.array(cents % 100).cast(pa.string()), 2, "0"),
                ".",
            ),
            "created_at": pa.array(START + (ids * 30).astype("timedelta64[s]")),
        }
    )


def write_load(lake: Path, rows: int, files: int, rng: np.random.Generator) -> list[str]:
    keys, per_file = [], -(-rows // files)
    moment = datetime.combine(LOAD_DAY, datetime.min.time(), UTC)
    for index, start in enumerate(range(0, rows, per_file), start=1):
        ids = np.arange(start, min(rows, start + per_file))
        transfer = moment + timedelta(seconds=index)
        keys.append(write_file(lake, f"LOAD{index:08X}.csv", rows_for(ids, rng), "I", transfer))
    return keys


def write_changes(
    lake: Path, rows: int, size: int, clustered: bool, day: date, rng: np.random.Generator
) -> str:
    """``size`` changes in one CDC file: 90% updates of existing keys, 10% new keys."""
    updates = int(size * 0.9)
    pool = np.arange(max(0, rows - 50 * size), rows) if clustered else np.arange(rows)
    keys = np.sort(rng.choice(pool, updates, replace=False))
    first_new = rows + (day - LOAD_DAY).days * size  # each batch's new keys after the last's
    inserts = np.arange(first_new, first_new + size - updates)
    ids = np.concatenate([keys, inserts])
    ops = pa.array(["U"] * updates + ["I"] * (size - updates))
    moment = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)
    name = f"{day:%Y%m%d}-120000000.csv"
    return write_file(lake, name, rows_for(ids, rng), ops, moment)


def write_file(lake: Path, name: str, rows: pa.Table, ops, commit: datetime) -> str:
    key = PREFIX + name
    ops = pa.array([ops] * rows.num_rows) if isinstance(ops, str) else ops
    stamps = pa.array([commit] * rows.num_rows, pa.timestamp("us", tz="UTC"))
    data = encode_dms_file(rows, key, CONTRACT, DMS, ops=ops, commit_ts=stamps)
    # Written when DMS would have: a LOAD file's day is its last-modified date.
    open_lake(str(lake)).put(key, data, last_modified=commit)
    return key


# --------------------------------------------------------------------------- phases


def run_phase(phase: str, **arguments) -> dict:
    """Run one phase in a fresh process; its figures (seconds, peak RSS) as a dict."""
    command = [sys.executable, __file__, "_phase", phase, json.dumps(arguments)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"phase {phase} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _catalog(scratch: str, lake: str):
    """The catalog of ``scratch`` (its warehouse there too: each engine's copy apart)."""
    return open_catalog(sqlite_uri_for(Path(scratch, "catalog.db")), _warehouse(scratch))


def _warehouse(scratch: str) -> str:
    return Path(scratch, "warehouse").resolve().as_uri()


def phase_apply(scratch: str, lake: str, day: str, engine: str = "arrow") -> dict:
    catalog = _catalog(scratch, lake)
    store = open_lake(lake)
    run_engine = None
    if engine == "spark":
        from lakehouse_assets.silver.spark.engine import spark_engine
        from lakehouse_assets.silver.spark.session import lakehouse_spark_session

        spark = lakehouse_spark_session(
            sqlite_uri_for(Path(scratch, "catalog.db")), _warehouse(scratch)
        )
        spark.range(1).count()  # the JVM is up: its start is not the merge's cost
        run_engine = spark_engine(spark, store, lake)
    started = time.perf_counter()
    result = apply_days(
        catalog,
        store,
        CONTRACT,
        DMS,
        [date.fromisoformat(day)],
        datetime.now(UTC),
        engine=run_engine,
    )
    return {
        "seconds": time.perf_counter() - started,
        "changes": result.changes,
        "inserted": result.inserted,
        "updated": result.updated,
        "files_scanned": result.files_scanned,
        "files_rewritten": result.files_rewritten,
        "files_added": result.files_added,
    }


def phase_floor(scratch: str, lake: str, change_key: str) -> dict:
    """Read the data files holding the batch's keys and write them once (no commit)."""
    catalog = _catalog(scratch, lake)
    table = catalog.load_table(table_identifier(CONTRACT))
    store = open_lake(lake)
    from lakehouse_assets.dms import read_dms_file

    keys = pc.unique(read_dms_file(store.get(change_key), change_key, CONTRACT, DMS)["id"])
    keys = pc.cast(keys, pa.int64())
    keys = pc.take(keys, pc.sort_indices(keys))
    started = time.perf_counter()
    files = [f for f in stored_files(table, CONTRACT, None) if may_hold(f, keys)]
    held = 0
    for _, data in read_data_files(table, [f.task for f in files]):
        if pc.any(pc.is_in(key_array(data, CONTRACT.primary_key), value_set=keys)).as_py():
            held += 1
            write_data_files(table, data)
    return {"seconds": time.perf_counter() - started, "files": held}


PHASES = {"apply": phase_apply, "floor": phase_floor}


def phase_main(phase: str, arguments: str) -> None:
    figures = PHASES[phase](**json.loads(arguments))
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


# --------------------------------------------------------------------------- the run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--load-files", type=int, default=10, help="LOAD files of the first load")
    parser.add_argument("--changes", default="1000,100000", help="comma-separated batch sizes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--engine", choices=("arrow", "spark"), default="arrow")
    parser.add_argument("--scratch", help="folder for the lake and catalog (default: a temp one)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    sizes = [int(size) for size in args.changes.split(",")]
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        lake = str(Path(scratch, "lake"))
        write_load(Path(lake), args.rows, args.load_files, rng)
        load = run_phase("apply", scratch=scratch, lake=lake, day=LOAD_DAY.isoformat())
        table = _catalog(scratch, lake).load_table(table_identifier(CONTRACT))
        files = len(list(table.scan().plan_files()))
        print(
            f"first load: {args.rows:,} rows from {args.load_files} DMS LOAD files in "
            f"{load['seconds']:.2f} s, peak RSS {load['peak_rss_mb']:,.0f} MB; "
            f"{files} data files\n"
        )
        print(
            f"{'changes':>9} {'spread':<8}{'merge s':>9}{'floor s':>9}{'merge/floor':>13}"
            f"{'files rw/scanned':>18}{'merge RSS MB':>14}{'floor RSS MB':>14}"
        )
        day = LOAD_DAY
        for size in sizes:
            for clustered in (True, False):
                day += timedelta(days=1)
                key = write_changes(Path(lake), args.rows, size, clustered, day, rng)
                floor = run_phase("floor", scratch=scratch, lake=lake, change_key=key)
                merge = run_phase("apply", scratch=scratch, lake=lake, day=day.isoformat())
                spread = "recent" if clustered else "uniform"
                print(
                    f"{size:>9,} {spread:<8}{merge['seconds']:>9.2f}{floor['seconds']:>9.2f}"
                    f"{merge['seconds'] / max(floor['seconds'], 1e-9):>12.1f}x"
                    f"{merge['files_rewritten']:>10}/{merge['files_scanned']:<7}"
                    f"{merge['peak_rss_mb']:>14,.0f}{floor['peak_rss_mb']:>14,.0f}"
                )
        if args.engine == "spark":
            spark_scratch = Path(scratch, "spark")
            spark_scratch.mkdir()
            spark_lake = Path(scratch, "lake")  # the same DMS files, another catalog
            _catalog(str(spark_scratch), str(spark_lake))
            print("\nspark engine, its own copy of the table from the same DMS files:")
            started_day = LOAD_DAY
            for index in range(1 + 2 * len(sizes)):
                spark = run_phase(
                    "apply",
                    scratch=str(spark_scratch),
                    lake=str(spark_lake),
                    day=(started_day + timedelta(days=index)).isoformat(),
                    engine="spark",
                )
                print(
                    f"  day {index}: {spark['changes']:>10,} changes in {spark['seconds']:.2f} s, "
                    f"{spark['files_rewritten']} files rewritten, peak RSS "
                    f"{spark['peak_rss_mb']:,.0f} MB (driver)"
                )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_phase":
        phase_main(sys.argv[2], sys.argv[3])
    else:
        main()
