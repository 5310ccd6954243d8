"""End-to-end time of the README's main command, split by layer.

    .venv/bin/python benchmarks/end_to_end.py --scale 1 --days 7

In a fresh temp folder (embedded defaults: local lake, SQLite catalog, embedded
PostgreSQL; a temp DAGSTER_HOME), generate the demo and run

    dagster asset materialize -m lakehouse_assets.definitions --select '*' --partition-range <days>

as a subprocess, then read the run's event log and print, per layer (bronze,
silver, gold, marts, and the asset checks), the summed step time and the wall
time from its first step start to its last step end. ``--in-process`` runs
every step in one process (no per-step process start-up).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dagster as dg

from lakehouse_assets.postgres import stop_embedded_postgres

LAYERS = ("bronze", "silver", "gold", "marts")


def layer_of(step_key: str) -> str:
    if step_key.endswith(("_checks", "_freshness")):
        return "checks"
    for layer in LAYERS:
        if step_key == layer or step_key.startswith((f"{layer}__", f"{layer}_daily")):
            return layer
    return "checks"


def step_times(home: Path) -> tuple[dict[str, list[tuple[float, float]]], float]:
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        (run,) = instance.get_runs(limit=1)
        starts: dict[str, float] = {}
        spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None or entry.step_key is None:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                starts[entry.step_key] = entry.timestamp
            elif event.event_type in (
                dg.DagsterEventType.STEP_SUCCESS,
                dg.DagsterEventType.STEP_FAILURE,
            ):
                spans[layer_of(entry.step_key)].append((starts[entry.step_key], entry.timestamp))
        stats = instance.get_run_stats(run.run_id)
        return spans, (stats.end_time or 0) - (stats.start_time or 0)
    finally:
        instance.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--in-process", action="store_true", help="run all steps in one process")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lakehouse-e2e-"))
    home = work / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {name: value for name, value in os.environ.items() if not name.startswith("LAKEHOUSE_")}
    env.update(DAGSTER_HOME=str(home), DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    bin_dir = Path(sys.executable).parent
    start = date(2024, 1, 1)
    last = start + timedelta(days=args.days - 1)
    try:
        began = time.perf_counter()
        subprocess.run(
            [
                str(bin_dir / "lakehouse-demo"),
                "generate",
                "--scale",
                str(args.scale),
                "--days",
                str(args.days),
                "--seed",
                "42",
                "--start",
                start.isoformat(),
                "--out",
                "./.lakehouse/data-lake",
            ],
            cwd=work,
            env=env,
            check=True,
            capture_output=True,
        )
        generated = time.perf_counter() - began
        command = [
            str(bin_dir / "dagster"),
            "asset",
            "materialize",
            "-m",
            "lakehouse_assets.definitions",
            "--select",
            "*",
            "--partition-range",
            f"{start}...{last}",
        ]
        if args.in_process:
            command += ["--config-json", json.dumps({"execution": {"config": {"in_process": {}}}})]
        began = time.perf_counter()
        result = subprocess.run(
            command, cwd=work, env=env, capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - began
        if result.returncode != 0:
            print(result.stdout[-5000:], result.stderr[-5000:])
            return 1
        spans, run_seconds = step_times(home)
    finally:
        stop_embedded_postgres(work / ".lakehouse" / "postgres")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    executor = "in-process" if args.in_process else "multiprocess (default)"
    print(f"demo scale {args.scale}, {args.days} days, executor {executor}")
    print(f"generate demo DMS files: {generated:7.1f} s")
    print(f"dagster asset materialize --select '*': {wall:7.1f} s wall (run {run_seconds:.1f} s)")
    print(f"{'layer':8} {'steps':>5} {'step time s':>12} {'wall span s':>12}")
    for layer in (*LAYERS, "checks"):
        layer_spans = spans.get(layer, [])
        if not layer_spans:
            continue
        busy = sum(end - begin for begin, end in layer_spans)
        span = max(end for _, end in layer_spans) - min(begin for begin, _ in layer_spans)
        print(f"{layer:8} {len(layer_spans):5d} {busy:12.1f} {span:12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
