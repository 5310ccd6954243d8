"""``lakehouse-demo``: generate the demo DMS source into a lake (a folder or s3://bucket)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import date

from lakehouse_assets.contracts import load_contracts
from lakehouse_assets.demo.simulator import generate
from lakehouse_assets.demo.summary import Summary
from lakehouse_assets.lake.store import open_lake


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lakehouse-demo", description="Simulate the demo SaaS database as AWS DMS writes it."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "generate",
        help="write DMS full-load and CDC files, the expected final state and a manifest",
    )
    run.add_argument("--scale", type=float, default=1.0, help="row count multiplier (default 1)")
    run.add_argument("--days", type=int, default=7, help="days incl. the full-load day (default 7)")
    run.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    run.add_argument("--out", required=True, help="lake root: a folder or s3://bucket[/prefix]")
    run.add_argument(
        "--start",
        type=date.fromisoformat,
        default=date(2024, 1, 1),
        help="full-load day, YYYY-MM-DD (default 2024-01-01)",
    )
    run.add_argument("--gzip", action="store_true", help="write .csv.gz files")
    run.add_argument("--contracts", help="contract YAML (default: the packaged demo contracts)")
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be positive")
    if args.days < 1:
        parser.error("--days must be at least 1")

    began = time.perf_counter()
    summary = generate(
        open_lake(args.out),
        load_contracts(args.contracts),
        scale=args.scale,
        days=args.days,
        seed=args.seed,
        start=args.start,
        gzip=args.gzip,
    )
    print(report(summary, args.out, time.perf_counter() - began))
    return 0


def report(summary: Summary, out: str, seconds: float) -> str:
    lines = [
        (
            f"wrote {summary.files} files ({summary.bytes / 1e6:.1f} MB, "
            f"{summary.rows_written:,} rows) to {out} in {seconds:.1f} s"
        ),
        f"{'table':<20}{'files':>7}{'load rows':>12}{'cdc rows':>11}{'live rows':>12}",
    ]
    for name, table in summary.tables.items():
        lines.append(
            f"{name:<20}{table.files:>7}{table.load_rows:>12,}{table.cdc_rows:>11,}{table.live_rows:>12,}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
