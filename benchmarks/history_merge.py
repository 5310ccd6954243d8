"""History (SCD type 2) cost next to the current-state merge, for the same batches.

Builds two copies of a --rows table from the same first load, one without history and one
with ``history: true``, then merges the same change batches (--changes sizes; 90% updates
spread over the keys, 10% inserts) into both, and prints the merge time of each and what
history adds (``with - without``, and the ratio). Each batch is a new day, so history
grows by one version per changed key.

    python benchmarks/history_merge.py --rows 1000000 --changes 1000,100000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from silver_merge import CONTRACT, DMS, LOAD_DAY, rows_for  # noqa: E402

from lakehouse_assets.dms import encode_dms_file, read_dms_file  # noqa: E402
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for  # noqa: E402
from lakehouse_assets.silver.apply import merge_changes  # noqa: E402
from lakehouse_assets.silver.history import history_identifier  # noqa: E402

WITH_HISTORY = replace(CONTRACT, history=True)


def batch(ids: np.ndarray, ops: list[str], key: str, commit: datetime, rng) -> pa.Table:
    """A DMS file of ``ids`` as the reader returns it."""
    rows = rows_for(ids, rng)
    stamps = pa.array([commit] * len(ids), pa.timestamp("us", tz="UTC"))
    data = encode_dms_file(rows, key, CONTRACT, DMS, ops=pa.array(ops), commit_ts=stamps)
    return read_dms_file(data, key, CONTRACT, DMS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changes", default="1000,100000")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    prefix = "bronze/dms/public/bench_order/"
    with tempfile.TemporaryDirectory() as scratch:
        catalogs = {
            name: open_catalog(
                sqlite_uri_for(Path(scratch, f"{name}.db")), Path(scratch, name).as_uri()
            )
            for name in ("plain", "history")
        }
        contracts = {"plain": CONTRACT, "history": WITH_HISTORY}
        load_time = datetime.combine(LOAD_DAY, datetime.min.time(), UTC)
        load = batch(
            np.arange(args.rows), ["I"] * args.rows, prefix + "LOAD00000001.csv", load_time, rng
        )
        print(f"{'batch':>22}{'without history s':>19}{'with history s':>16}{'history adds':>14}")
        batches = [("first load", load)]
        day = LOAD_DAY
        next_id = args.rows
        for size in (int(size) for size in args.changes.split(",")):
            day += timedelta(days=1)
            updates = int(size * 0.9)
            ids = np.concatenate(
                [
                    np.sort(rng.choice(args.rows, updates, replace=False)),
                    np.arange(next_id, next_id + size - updates),
                ]
            )
            next_id += size - updates
            key = f"{prefix}{day:%Y%m%d}-120000000.csv"
            moment = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)
            ops = ["U"] * updates + ["I"] * (size - updates)
            batches.append((f"{size:,} changes", batch(ids, ops, key, moment, rng)))
        for name, raw in batches:
            seconds = {}
            for copy, catalog in catalogs.items():
                started = time.perf_counter()
                merge_changes(catalog, contracts[copy], DMS, raw, datetime.now(UTC))
                seconds[copy] = time.perf_counter() - started
            added = seconds["history"] - seconds["plain"]
            print(
                f"{name:>22}{seconds['plain']:>19.2f}{seconds['history']:>16.2f}"
                f"{added:>9.2f} s ({seconds['history'] / seconds['plain']:.1f}x)"
            )
        versions = len(
            catalogs["history"].load_table(history_identifier(WITH_HISTORY)).scan().to_arrow()
        )
        print(f"\nhistory: {versions:,} versions of {args.rows:,}+ keys")


if __name__ == "__main__":
    main()
