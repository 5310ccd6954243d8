"""Gold's read of silver: pyiceberg scans to Arrow then DuckDB (today), against DuckDB's own
iceberg extension reading the same tables (``iceberg_scan`` of the table's metadata file).

    .venv/bin/python benchmarks/duckdb_iceberg.py --scale 1 --days 7 --duckdb-site DIR

The extension is not installable into this project's environment: the PyPI builds
(``duckdb-extension-iceberg``, ``duckdb-ext-iceberg``) are for duckdb 1.5.x / 1.4.x and the
project pins duckdb 2.0.0. So DIR is a folder with duckdb and the extensions of one
version, installed apart from the project, e.g.

    .venv/bin/pip install --no-deps --target /tmp/duckdb-155 duckdb==1.5.5 \\
        duckdb-extension-iceberg==1.5.5 duckdb-extension-avro==1.5.5

and the extension side runs in a subprocess with DIR first on its path. Both sides answer
the same gold-shaped questions over live rows (``NOT _is_deleted``) of the same silver
tables, built from the demo in a temp folder; the script checks the answers are equal and
prints the median time of each (a fresh DuckDB connection per query on both sides, as gold
opens one per summary; the extension's load time is printed apart).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

START = date(2024, 1, 1)


@dataclass(frozen=True)
class Question:
    """One read of silver: the rows a gold summary needs, and an aggregate over them."""

    name: str
    table: str
    columns: tuple[str, ...]
    day_column: str | None  # None: the whole table
    aggregate: str  # SQL select list over the rows (relation ``rows``)


QUESTIONS = (
    Question(
        "orders created on one day",
        "core_order",
        ("id", "tenant_id", "status", "total", "created_at"),
        "created_at",
        "count(*), sum(total), count(DISTINCT tenant_id)",
    ),
    Question(
        "events of one day",
        "core_event",
        ("id", "tenant_id", "session_id", "event_type", "occurred_at"),
        "occurred_at",
        "count(*), count(DISTINCT session_id), count(DISTINCT event_type)",
    ),
    Question(
        "every live order (lifetime value)",
        "core_order",
        ("id", "customer_id", "status", "total"),
        None,
        "count(*), sum(total), count(DISTINCT customer_id)",
    ),
)


def answer_text(row: tuple) -> list[str]:
    return [str(value) for value in row]


# --------------------------------------------------------------------------- arrow side


def build_silver(root: Path, scale: float, days: int):
    from lakehouse_assets.bronze.files import list_partition_files, read_partition_files
    from lakehouse_assets.contracts import load_contracts
    from lakehouse_assets.demo.simulator import generate
    from lakehouse_assets.lake import open_lake
    from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for, warehouse_for_lake
    from lakehouse_assets.silver.apply import merge_changes

    contracts = load_contracts()
    lake = root / "lake"
    store = open_lake(str(lake))
    generate(store, contracts, scale=scale, days=days, seed=42, start=START)
    catalog = open_catalog(sqlite_uri_for(root / "catalog.db"), warehouse_for_lake(str(lake)))
    tables = {question.table for question in QUESTIONS}
    for offset in range(days):
        day = START + timedelta(days=offset)
        for name in sorted(tables):
            contract = contracts.table(name)
            files = list_partition_files(store, contracts.dms, contract, [day])
            raw = read_partition_files(store, contracts.dms, contract, files)
            merge_changes(catalog, contract, contracts.dms, raw, datetime.now(UTC))
    return catalog


def sql_bounds(day: date) -> tuple[str, str]:
    return f"TIMESTAMP '{day.isoformat()} 00:00:00'", f"TIMESTAMP '{day + timedelta(days=1)}'"


def arrow_side(catalog, question: Question, day: date) -> tuple[float, list[str]]:
    import duckdb

    from lakehouse_assets.gold.silver_scans import days_filter, live_schema, scan_live

    started = time.perf_counter()
    row_filter = None
    if question.day_column:
        schema = live_schema(catalog, question.table)
        row_filter = days_filter(schema, question.day_column, day, day + timedelta(days=1))
    rows = scan_live(catalog, question.table, question.columns, row_filter)
    connection = duckdb.connect(config={"threads": 2})
    try:
        connection.register("rows", rows)
        result = connection.sql(f"SELECT {question.aggregate} FROM rows").fetchall()[0]
    finally:
        connection.close()
    return time.perf_counter() - started, answer_text(result)


# --------------------------------------------------------------------------- extension side


def extension_worker(request: dict) -> dict:
    """Runs in the subprocess whose path starts with the other duckdb (--worker)."""
    import duckdb

    site = Path(request["site"])
    extensions = {path.name.split(".")[0]: path for path in site.rglob("*.duckdb_extension")}
    timings: list[dict] = []
    for item in request["questions"]:
        started = time.perf_counter()
        connection = duckdb.connect(config={"threads": 2, "allow_unsigned_extensions": True})
        for name in ("avro", "iceberg"):
            connection.execute(f"LOAD '{extensions[name]}'")
        loaded = time.perf_counter()
        where = "NOT _is_deleted"
        if item["day_column"]:
            where += (
                f" AND {item['day_column']} >= {item['low']} AND {item['day_column']} < "
                f"{item['high']}"
            )
        row = connection.execute(
            f"SELECT {item['aggregate']} FROM iceberg_scan('{item['metadata']}') WHERE {where}"
        ).fetchone()
        plan = connection.execute(
            f"EXPLAIN SELECT {item['aggregate']} FROM iceberg_scan('{item['metadata']}') "
            f"WHERE {where}"
        ).fetchall()
        connection.close()
        timings.append(
            {
                "seconds": time.perf_counter() - loaded,
                "load_seconds": loaded - started,
                "answer": answer_text(row),
                "pushed_filters": "Filters:" in str(plan) or "File Filters" in str(plan),
            }
        )
    return {"version": duckdb.__version__, "timings": timings}


def extension_side(site: Path, requests: list[dict]) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(Path.cwd())])}
    request = {"site": str(site), "questions": requests}
    result = subprocess.run(
        [sys.executable, __file__, "--worker"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        raise SystemExit(f"the extension side failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout)


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--duckdb-site", type=Path, help="duckdb + iceberg extension folder")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(extension_worker(json.loads(sys.stdin.read()))))
        return
    if args.duckdb_site is None:
        parser.error("--duckdb-site is required (see the module docstring)")
    import duckdb

    with tempfile.TemporaryDirectory(prefix="duckdb-iceberg-bench-") as folder:
        started = time.perf_counter()
        catalog = build_silver(Path(folder), args.scale, args.days)
        print(f"silver built in {time.perf_counter() - started:.1f} s (scale {args.scale})")
        day = START + timedelta(days=args.days // 2)
        low, high = sql_bounds(day)
        requests = [
            {
                "metadata": catalog.load_table(f"silver.{question.table}").metadata_location,
                "day_column": question.day_column,
                "low": low,
                "high": high,
                "aggregate": question.aggregate,
            }
            for question in QUESTIONS
        ]
        arrow_runs = {question.name: [] for question in QUESTIONS}
        extension_runs = {question.name: [] for question in QUESTIONS}
        arrow_answers: dict[str, list[str]] = {}
        extension_answers: dict[str, list[str]] = {}
        version = ""
        pushed: dict[str, bool] = {}
        loads: list[float] = []
        for _ in range(args.repeat):
            for question in QUESTIONS:
                seconds, answer = arrow_side(catalog, question, day)
                arrow_runs[question.name].append(seconds)
                arrow_answers[question.name] = answer
            other = extension_side(args.duckdb_site, requests)
            version = other["version"]
            for question, timing in zip(QUESTIONS, other["timings"]):
                extension_runs[question.name].append(timing["seconds"])
                extension_answers[question.name] = timing["answer"]
                pushed[question.name] = timing["pushed_filters"]
                loads.append(timing["load_seconds"])
        print(
            f"pyiceberg {__import__('pyiceberg').__version__} + duckdb {duckdb.__version__} "
            f"against duckdb {version} iceberg_scan; median of {args.repeat}, day {day}"
        )
        print("| question | arrow path s | iceberg_scan s | ratio | same answer | filter pushed |")
        print("|---|---|---|---|---|---|")
        for question in QUESTIONS:
            arrow = statistics.median(arrow_runs[question.name])
            native = statistics.median(extension_runs[question.name])
            same = arrow_answers[question.name] == extension_answers[question.name]
            print(
                f"| {question.name} | {arrow:.3f} | {native:.3f} | {arrow / native:.2f}x | "
                f"{'yes' if same else 'NO: ' + str(arrow_answers[question.name]) + ' vs ' + str(extension_answers[question.name])} | "  # noqa: E501
                f"{'yes' if pushed[question.name] else 'no'} |"
            )
        print(f"extension LOAD per connection: median {statistics.median(loads):.3f} s")


if __name__ == "__main__":
    main()
