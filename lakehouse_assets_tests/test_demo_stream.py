"""``lakehouse-demo stream``: the demo source live, continuing a landing or starting one.

In process, a clock that moves only when waited for runs a stream at once and at fixed
times; the CLI runs as a subprocess against the real clock, for a duration or until a
signal. Either way, replaying every file of the lake (test_demo_simulator's replay, which
follows DESIGN.md's order) must give the oracle the stream wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time as wall
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from lakehouse_assets.demo import MANIFEST_KEY, generate
from lakehouse_assets.demo.stream import StreamSettings, WallClock, stream
from lakehouse_assets.demo.volumes import KEY_ONLY_DELETES
from lakehouse_assets.dms import FileKind
from lakehouse_assets.lake.store import LakeStore, open_lake
from lakehouse_assets_tests.test_demo_simulator import (
    CONTRACTS,
    Change,
    all_changes,
    assert_manifest_counts_the_lake,
    assert_replay_matches_oracle,
    digests,
)

LANDING = {"scale": 0.02, "days": 2, "seed": 7, "start": date(2024, 1, 1)}
# About a quarter of a day's activity per interval: every kind of change in a few intervals.
BUSY = {"interval_s": 10.0, "rate": 2000.0}
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class SteppingClock:
    """Time that passes only when waited for: a stream runs at once, at fixed times."""

    def __init__(self, start: datetime):
        self.now = int(start.timestamp()) * 1_000_000

    def now_us(self) -> int:
        return self.now

    def wait_until(self, at_us: int) -> bool:
        self.now = max(self.now, at_us)
        return True


def at_us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def landing(root: Path) -> LakeStore:
    store = open_lake(str(root))
    generate(store, CONTRACTS, **LANDING)
    return store


def streamed(store: LakeStore, start: datetime, intervals: int, **settings) -> list[str]:
    lines: list[str] = []
    stream(
        store,
        CONTRACTS,
        StreamSettings(**{**BUSY, "intervals": intervals, **settings}),
        SteppingClock(start),
        report=lines.append,
    )
    return lines


def new_changes(before: dict[str, list[Change]], after: dict[str, list[Change]]):
    """Per table, the rows of the files that were not there before."""
    keys = {c.key for rows in before.values() for c in rows}
    return {name: [c for c in rows if c.key not in keys] for name, rows in after.items()}


def assert_lake_replays_to_its_oracle(store: LakeStore) -> None:
    changes = all_changes(store)
    for name, rows in changes.items():
        assert_replay_matches_oracle(store, CONTRACTS.table(name), rows)
    assert_manifest_counts_the_lake(store, changes)


# ------------------------------------------------------------------------ in process


def test_a_stream_continues_a_generated_landing(tmp_path: Path) -> None:
    store = landing(tmp_path / "lake")
    before = all_changes(store)
    start = datetime.now(UTC).replace(microsecond=0)
    lines = streamed(store, start, intervals=4)
    assert len(lines) == 4 and all("interval" in line for line in lines)

    added = new_changes(before, all_changes(store))
    ops: Counter = Counter()
    for name, rows in added.items():
        contract = CONTRACTS.table(name)
        previous_ids = {int(c.values["id"]) for c in before[name]}
        for change in rows:
            assert change.kind is FileKind.CDC
            assert start <= change.commit_ts < start + timedelta(seconds=40), change.key
            ops[change.op] += 1
            if change.op == "I":
                assert int(change.values["id"]) > max(previous_ids), "the sequence goes on"
            else:
                assert int(change.values["id"]) in previous_ids | {
                    int(c.values["id"]) for c in rows if c.op == "I"
                }
            if change.op == "D":
                others = [v for k, v in change.values.items() if k not in contract.primary_key]
                assert all(v is None for v in others) == (name in KEY_ONLY_DELETES), name
    assert min(ops["I"], ops["U"], ops["D"]) > 0, ops
    assert {name for name, rows in added.items() if rows} >= {"core_order", "core_event"}
    assert_lake_replays_to_its_oracle(store)

    manifest = json.loads(store.get(MANIFEST_KEY))
    assert manifest["arguments"]["days"] == 2, "the generated landing's arguments stay"
    (run,) = manifest["streams"]
    assert run["intervals"] == 4 and not run["full_load"]
    assert run["files"] == sum(len({c.key for c in rows}) for rows in added.values())


def test_a_stream_is_deterministic_given_a_seed(tmp_path: Path) -> None:
    base = landing(tmp_path / "base")
    start = datetime(2030, 5, 4, 12, tzinfo=UTC)
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        shutil.copytree(tmp_path / "base", tmp_path / name)
        streamed(open_lake(str(tmp_path / name)), start, intervals=3, seed=seed)
    first, second, other = (digests(tmp_path / name) for name in "abc")
    assert first == second
    new = set(first) - set(digests(tmp_path / "base"))
    assert new and any(first[key] != other.get(key) for key in new)
    assert base.get(MANIFEST_KEY) != open_lake(str(tmp_path / "a")).get(MANIFEST_KEY)


def test_a_stream_continues_a_stream(tmp_path: Path) -> None:
    store = landing(tmp_path / "lake")
    start = datetime.now(UTC).replace(microsecond=0)
    streamed(store, start, intervals=2)
    first = all_changes(store)
    streamed(store, start + timedelta(minutes=1), intervals=2, seed=8)
    second = new_changes(first, all_changes(store))
    for name, rows in second.items():
        old_ids = {int(c.values["id"]) for c in first[name]}
        for change in rows:
            assert change.commit_ts >= start + timedelta(minutes=1)
            if change.op == "I":
                assert int(change.values["id"]) > max(old_ids)
    manifest = json.loads(store.get(MANIFEST_KEY))
    assert [run["seed"] for run in manifest["streams"]] == [42, 8]
    assert_lake_replays_to_its_oracle(store)


def test_a_stream_without_a_landing_starts_with_a_full_load(tmp_path: Path) -> None:
    store = open_lake(str(tmp_path / "lake"))
    start = datetime.now(UTC).replace(microsecond=0)
    lines = streamed(store, start, intervals=2, scale=0.01)
    assert lines[0].startswith("full load: ")
    changes = all_changes(store)
    for rows in changes.values():
        loaded = [c for c in rows if c.kind is FileKind.FULL_LOAD]
        assert loaded and {c.commit_ts for c in loaded} == {start}
        assert all(c.commit_ts >= start for c in rows if c.kind is FileKind.CDC)
    manifest = json.loads(store.get(MANIFEST_KEY))
    assert manifest["arguments"]["scale"] == 0.01 and manifest["streams"][0]["full_load"]
    assert_lake_replays_to_its_oracle(store)


def test_a_stream_refuses_a_landing_with_commits_after_now(tmp_path: Path) -> None:
    store = open_lake(str(tmp_path / "lake"))
    today = datetime.now(UTC).date()
    generate(store, CONTRACTS, scale=0.01, days=2, seed=1, start=today - timedelta(days=1))
    with pytest.raises(ValueError, match="later than now"):
        streamed(store, datetime.now(UTC), intervals=1)
    with pytest.raises(ValueError, match="rate x interval"):
        StreamSettings(interval_s=10, rate=10_000)


# ------------------------------------------------------------------------ the CLI, real time


def stream_process(out: Path, *arguments: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lakehouse_assets.demo.cli", "stream", "--out", str(out)]
        + ["--interval", "1", "--rate", "20000", "--seed", "5", *arguments],
        cwd=PACKAGE_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_cli_streams_changes_of_now_for_its_duration(tmp_path: Path) -> None:
    store = landing(tmp_path / "lake")
    before = all_changes(store)
    began = datetime.now(UTC)
    process = stream_process(tmp_path / "lake", "--duration", "3")
    stdout, stderr = process.communicate(timeout=30)
    ended = datetime.now(UTC)
    assert process.returncode == 0, stderr
    assert [line for line in stdout.splitlines() if " interval " in line][-1].count("interval 3")
    assert "stopped after 3 intervals" in stdout
    assert ended - began < timedelta(seconds=3 + 6)
    added = new_changes(before, all_changes(store))
    ops = Counter(c.op for rows in added.values() for c in rows)
    assert min(ops["I"], ops["U"], ops["D"]) > 0, ops
    for rows in added.values():
        for change in rows:
            named = datetime.strptime(change.key.rsplit("/", 1)[1][:18], "%Y%m%d-%H%M%S%f")
            assert began <= change.commit_ts < named.replace(tzinfo=UTC) <= ended, change.key
    assert_lake_replays_to_its_oracle(store)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_stream_cleanly(tmp_path: Path, signum: signal.Signals) -> None:
    process = stream_process(tmp_path / "lake", "--scale", "0.01")
    assert process.stdout is not None
    flushed = 0
    deadline = wall.monotonic() + 20
    while flushed < 2 and wall.monotonic() < deadline:
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else ""
        flushed += " interval " in line
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "stopped after" in stdout and "Traceback" not in stderr
    store = open_lake(str(tmp_path / "lake"))
    (run,) = json.loads(store.get(MANIFEST_KEY))["streams"]
    assert run["full_load"] and run["intervals"] >= 2
    assert_lake_replays_to_its_oracle(store)


def test_the_wall_clock_stops_waiting_when_stopped() -> None:
    clock = WallClock()
    assert clock.wait_until(clock.now_us() + 1_000)
    clock.stop()
    began = wall.monotonic()
    assert not clock.wait_until(clock.now_us() + 60_000_000)
    assert wall.monotonic() - began < 1
