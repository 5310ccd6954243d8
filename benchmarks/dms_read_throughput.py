"""DMS read throughput: the project's reader against pyarrow's plain CSV read of the same files.

Generates the demo landing (or uses --lake), loads every DMS file into memory,
then times, in the same run and on the same bytes:

- baseline: ``pyarrow.csv.read_csv`` with default options except
  ``newlines_in_values`` (without it the files' quoted newlines do not parse);
- dms reader: ``read_dms_file`` (contract names, string columns, Op check,
  commit-timestamp parsing, metadata columns).

Prints MB/s and rows/s for each and the reader/baseline ratio (best of --repeat).

    python benchmarks/dms_read_throughput.py --scale 1 --days 7
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from collections.abc import Callable
from datetime import date

import pyarrow.csv as pcsv

from lakehouse_assets.contracts import load_contracts
from lakehouse_assets.demo import generate
from lakehouse_assets.dms import DmsKeyError, parse_object_key, read_dms_file
from lakehouse_assets.lake import open_lake


def load_files(lake_uri: str) -> list[tuple[str, str, bytes]]:
    """(table, key, bytes) of every DMS file in the lake."""
    contracts = load_contracts()
    store = open_lake(lake_uri)
    files = []
    for info in store.list_objects(contracts.dms.bucket_folder + "/"):
        try:
            parsed = parse_object_key(info.key, contracts.dms)
        except DmsKeyError:
            continue
        files.append((parsed.table, info.key, store.get(info.key)))
    return files


def best_of(repeat: int, run: Callable[[], int]) -> tuple[float, int]:
    timings, rows = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        rows = run()
        timings.append(time.perf_counter() - started)
    return min(timings), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--lake", help="an existing lake with a DMS landing (skips generation)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    contracts = load_contracts()
    with tempfile.TemporaryDirectory() as scratch:
        lake = args.lake or scratch
        if not args.lake:
            generate(
                open_lake(lake),
                contracts,
                scale=args.scale,
                days=args.days,
                seed=args.seed,
                start=date(2024, 1, 1),
                gzip=False,
            )
        files = load_files(lake)
    total_bytes = sum(len(data) for _, _, data in files)

    def baseline() -> int:
        options = pcsv.ParseOptions(newlines_in_values=True)
        read_options = pcsv.ReadOptions(autogenerate_column_names=True)
        return sum(
            pcsv.read_csv(
                io.BytesIO(data), read_options=read_options, parse_options=options
            ).num_rows
            for _, _, data in files
        )

    def dms_reader() -> int:
        return sum(
            read_dms_file(data, key, contracts.table(table), contracts.dms).num_rows
            for table, key, data in files
        )

    base_s, base_rows = best_of(args.repeat, baseline)
    ours_s, our_rows = best_of(args.repeat, dms_reader)
    if base_rows != our_rows:
        raise SystemExit(f"row counts differ: baseline {base_rows}, dms reader {our_rows}")

    megabytes = total_bytes / 1e6
    print(
        f"files: {len(files)}  bytes: {total_bytes:,}  rows: {our_rows:,}  (best of {args.repeat})"
    )
    print(f"{'reader':<26}{'seconds':>9}{'MB/s':>9}{'rows/s':>13}")
    for name, seconds in (("pyarrow read_csv (plain)", base_s), ("dms reader", ours_s)):
        print(f"{name:<26}{seconds:>9.3f}{megabytes / seconds:>9.1f}{our_rows / seconds:>13,.0f}")
    print(f"dms reader / plain read time: {ours_s / base_s:.2f}x")


if __name__ == "__main__":
    main()
