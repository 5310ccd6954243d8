"""``lakehouse-demo``: the demo DMS source in a lake (a folder or s3://bucket).

``generate`` writes a batch landing (a full load, then days of CDC); ``stream`` keeps the
source alive, writing CDC files in real time until Ctrl-C, SIGTERM or ``--duration``.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from lakehouse_assets.contracts import load_contracts
from lakehouse_assets.demo.simulator import generate
from lakehouse_assets.demo.stream import StreamSettings, WallClock, stream
from lakehouse_assets.demo.summary import Summary
from lakehouse_assets.lake.store import open_lake

DEFAULT_START = date(2024, 1, 1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lakehouse-demo", description="Simulate the demo SaaS database as AWS DMS writes it."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    batch = commands.add_parser(
        "generate",
        help="write DMS full-load and CDC files, the expected final state and a manifest",
    )
    batch.add_argument("--scale", type=float, default=1.0, help="row count multiplier (default 1)")
    batch.add_argument(
        "--days", type=int, default=7, help="days incl. the full-load day (default 7)"
    )
    batch.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    batch.add_argument("--out", required=True, help="lake root: a folder or s3://bucket[/prefix]")
    when = batch.add_mutually_exclusive_group()
    when.add_argument(
        "--start",
        type=date.fromisoformat,
        help=f"full-load day, YYYY-MM-DD (default {DEFAULT_START})",
    )
    when.add_argument(
        "--end",
        type=end_day,
        help="last day, YYYY-MM-DD or 'today' (UTC; today's commits stop at the moment of the run)",
    )
    batch.add_argument("--gzip", action="store_true", help="write .csv.gz files")
    batch.add_argument(
        "--live-load",
        action="store_true",
        help="the source keeps committing while the full load runs (per-table snapshots)",
    )
    batch.add_argument(
        "--reload-day",
        type=int,
        metavar="N",
        help="on day N (2 to --days) the task stops and reloads core_customer",
    )
    batch.add_argument("--contracts", help="contract YAML (default: the packaged demo contracts)")

    live = commands.add_parser(
        "stream",
        help="write CDC files in real time, continuing the lake's landing (or starting one)",
    )
    live.add_argument("--out", required=True, help="lake root: a folder or s3://bucket[/prefix]")
    live.add_argument(
        "--interval", type=float, default=10.0, help="seconds per CDC file and table (default 10)"
    )
    live.add_argument(
        "--rate",
        type=float,
        default=60.0,
        help="activity as a multiple of the batch demo's daily pace (default 60: a day's "
        "changes every 24 minutes)",
    )
    live.add_argument(
        "--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)"
    )
    live.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    live.add_argument("--scale", type=float, help="a new landing's row count multiplier (1)")
    live.add_argument(
        "--gzip", action="store_true", default=None, help="a new landing writes .csv.gz files"
    )
    live.add_argument("--contracts", help="contract YAML (default: the packaged demo contracts)")

    args = parser.parse_args(argv)
    try:
        return run_generate(args) if args.command == "generate" else run_stream(args)
    except ValueError as exc:
        (batch if args.command == "generate" else live).error(str(exc))


def end_day(text: str) -> date:
    return datetime.now(UTC).date() if text == "today" else date.fromisoformat(text)


def run_generate(args: argparse.Namespace) -> int:
    if args.end is not None:
        start = args.end - timedelta(days=args.days - 1)
    else:
        start = args.start or DEFAULT_START
    began = time.perf_counter()
    summary = generate(
        open_lake(args.out),
        load_contracts(args.contracts),
        scale=args.scale,
        days=args.days,
        seed=args.seed,
        start=start,
        gzip=args.gzip,
        live_load=args.live_load,
        reload_day=args.reload_day,
        now=datetime.now(UTC),
    )
    print(report(summary, args.out, time.perf_counter() - began))
    return 0


def run_stream(args: argparse.Namespace) -> int:
    settings = StreamSettings(
        interval_s=args.interval,
        rate=args.rate,
        intervals=None if args.duration is None else math.ceil(args.duration / args.interval),
        seed=args.seed,
        scale=args.scale,
        gzip=args.gzip,
    )
    clock = WallClock()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Stop between intervals (the one under way is dropped): the oracle then holds
        # exactly what the files hold.
        signal.signal(signum, lambda *_: clock.stop())
    summary = stream(
        open_lake(args.out),
        load_contracts(args.contracts),
        settings,
        clock,
        report=lambda line: print(line, flush=True),
    )
    run = summary.streams[-1]
    print(
        f"stopped after {run['intervals']} intervals: wrote {run['files']} files "
        f"({run['rows']:,} rows); oracle and manifest updated in {args.out}",
        flush=True,
    )
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
