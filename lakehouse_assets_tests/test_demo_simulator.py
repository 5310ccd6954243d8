"""The demo DMS source simulator: reproducible, replayable, and full of the DMS quirks.

The replay here is deliberately independent of the simulator and of silver: files
are read with the project's DMS reader, changes are ordered by DESIGN.md's rule (a
full load ranks as of its start) and applied last-writer-wins, and the raw strings
are typed by a small parser of our own before they are compared with the oracle
Parquet the simulator wrote.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import struct
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from lakehouse_assets.contracts import (
    Contracts,
    DmsSettings,
    TableContract,
    demo_contracts_path,
    load_contracts,
    parse_contracts,
)
from lakehouse_assets.demo import EXPECTED_PREFIX, MANIFEST_KEY, generate
from lakehouse_assets.demo.cli import main
from lakehouse_assets.dms import FileKind, parse_object_key, read_dms_file, table_prefix
from lakehouse_assets.lake.store import LakeStore, open_lake

CONTRACTS = load_contracts()
DMS = CONTRACTS.dms
START = date(2024, 1, 1)
SMALL = {"scale": 0.02, "days": 4, "seed": 7, "start": START}
# Edge cases must be there at every scale and seed once there are three days.
VARIANTS = [
    {"scale": 0.02, "days": 4, "seed": 7},
    {"scale": 0.001, "days": 3, "seed": 1},
    {"scale": 0.005, "days": 3, "seed": 12345},
]


# ------------------------------------------------------------------------ helpers


def make_lake(root: Path, contracts: Contracts = CONTRACTS, **arguments: Any) -> LakeStore:
    store = open_lake(str(root))
    generate(store, contracts, **{"start": START, **arguments})
    return store


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> LakeStore:
    return make_lake(tmp_path_factory.mktemp("small"), **SMALL)


@pytest.fixture(
    scope="module",
    params=VARIANTS,
    ids=lambda v: f"scale{v['scale']}-days{v['days']}-seed{v['seed']}",
)
def variant_lake(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> LakeStore:
    return make_lake(tmp_path_factory.mktemp("variant"), **request.param)


def digests(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@dataclass(frozen=True)
class Change:
    """One row of one DMS file, with what orders it."""

    key: str
    kind: FileKind
    order: tuple
    row: int
    op: str
    commit_ts: datetime
    change_seq: str
    values: dict[str, str | None]

    def sort_key(self) -> tuple:
        return (self.commit_ts, self.change_seq, self.order, self.row)


def read_changes(store: LakeStore, contract: TableContract, dms: DmsSettings = DMS) -> list[Change]:
    """Every row of every file of the table, in file listing order."""
    changes = []
    for info in store.list_objects(table_prefix(dms, contract.schema, contract.name)):
        parsed = parse_object_key(info.key, dms)
        table = read_dms_file(store.get(info.key), info.key, contract, dms)
        for record in table.to_pylist():
            changes.append(
                Change(
                    key=info.key,
                    kind=parsed.kind,
                    order=parsed.order,
                    row=record["_source_row"],
                    op=record["_op"],
                    commit_ts=record["_commit_ts"],
                    change_seq=record["_change_seq"] or "",
                    values={name: record[name] for name in contract.column_names},
                )
            )
    return changes


def primary_key(contract: TableContract, values: dict[str, str | None]) -> tuple:
    return tuple(values[name] for name in contract.primary_key)


# DMS records no load start; a load began at most this long before its first transfer
# (as the pipeline assumes: the contract's load_start_margin_seconds default).
LOAD_START_MARGIN = timedelta(seconds=60)


def load_start(changes: list[Change]) -> datetime:
    """When the table's full load began, as its LOAD files show it (only the latest load's
    files are left: a reload rewrites them)."""
    transfers = [c.commit_ts for c in changes if c.kind is FileKind.FULL_LOAD]
    return min(transfers) - LOAD_START_MARGIN if transfers else datetime.min.replace(tzinfo=UTC)


def apply(state: dict[tuple, dict[str, str | None]], changes, contract: TableContract) -> None:
    """Last writer wins per key, in the given order; a D removes the key."""
    for change in changes:
        key = primary_key(contract, change.values)
        if change.op == "D":
            state.pop(key, None)
        else:
            state[key] = change.values


def replay(changes: list[Change], contract: TableContract) -> dict[tuple, dict[str, str | None]]:
    """DESIGN.md's order: the LOAD files are the table as of the load's start (a snapshot,
    so a reload's keys are all there is: the ones it lacks are gone), then every CDC
    change committed at or after that start, by (commit timestamp, change seq, file, row).
    Changes before the start are in the snapshot already."""
    start = load_start(changes)
    state = {
        primary_key(contract, c.values): c.values for c in changes if c.kind is FileKind.FULL_LOAD
    }
    later = [c for c in changes if c.kind is FileKind.CDC and c.commit_ts >= start]
    apply(state, sorted(later, key=Change.sort_key), contract)
    return state


def replay_by_own_timestamps(
    changes: list[Change], contract: TableContract
) -> dict[tuple, dict[str, str | None]]:
    """The naive order: every row by its own timestamp, LOAD rows by their transfer time,
    and a load only upserts. Right for a load of a quiet source, wrong for a live load or
    a reload."""
    state: dict[tuple, dict[str, str | None]] = {}
    apply(state, sorted(changes, key=Change.sort_key), contract)
    return state


_TIME = r"(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?"
_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2}) " + _TIME)
_TIME_ONLY = re.compile(_TIME)
_BOOLEANS = {"t": True, "true": True, "f": False, "false": False}


def _clock(
    hours: str, minutes: str, seconds: str, fraction: str | None
) -> tuple[int, int, int, int]:
    return int(hours), int(minutes), int(seconds), int((fraction or "").ljust(6, "0"))


def parse_value(text: str | None, type_name: str) -> Any:
    """Type one raw DMS string the way the oracle Parquet holds it."""
    if text is None:
        return None
    if type_name in ("smallint", "int", "bigint"):
        return int(text)
    if type_name.startswith("decimal"):
        return Decimal(text)
    if type_name == "real":
        return struct.unpack("f", struct.pack("f", float(text)))[0]
    if type_name == "double":
        return float(text)
    if type_name == "boolean":
        return _BOOLEANS[text]
    if type_name == "date":
        return date.fromisoformat(text)
    if type_name == "time":
        return time(*_clock(*_TIME_ONLY.fullmatch(text).groups()))
    if type_name in ("timestamp", "timestamptz"):
        year, month, day, *clock = _TIMESTAMP.fullmatch(text).groups()
        moment = datetime(int(year), int(month), int(day), *_clock(*clock))
        return moment.replace(tzinfo=UTC) if type_name == "timestamptz" else moment
    if type_name == "json":
        return json.loads(text)
    if type_name == "uuid":
        assert str(uuid.UUID(text)) == text, f"{text!r} is not a lowercase canonical UUID"
        return text
    assert type_name == "string", type_name
    return text


def expected_rows(store: LakeStore, contract: TableContract) -> list[dict[str, Any]]:
    table = pq.read_table(io.BytesIO(store.get(f"{EXPECTED_PREFIX}{contract.name}.parquet")))
    assert table.schema == contract.arrow_schema
    return table.to_pylist()


def all_changes(store: LakeStore) -> dict[str, list[Change]]:
    return {name: read_changes(store, contract) for name, contract in CONTRACTS.tables.items()}


def cdc_day(change: Change) -> date:
    return parse_object_key(change.key, DMS).date


def has_subsequence(ops: list[str], wanted: list[str]) -> bool:
    remaining = iter(ops)
    return all(op in remaining for op in wanted)


def churned_keys(changes: list[Change], contract: TableContract) -> dict[tuple, list[Change]]:
    """Per key that went I, U, D, I: its CDC changes in DMS order, redeliveries left out."""
    by_key: dict[tuple, list[Change]] = defaultdict(list)
    seen: set[tuple] = set()
    for change in sorted((c for c in changes if c.kind is FileKind.CDC), key=Change.sort_key):
        fingerprint = (change.op, change.commit_ts, tuple(change.values.items()))
        if fingerprint not in seen:
            seen.add(fingerprint)
            by_key[primary_key(contract, change.values)].append(change)
    return {
        key: rows
        for key, rows in by_key.items()
        if has_subsequence([c.op for c in rows], list("IUDI"))
    }


# ------------------------------------------------------------------------ reproducibility


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    arguments = {"scale": 0.02, "days": 3, "seed": 11}
    make_lake(tmp_path / "a", **arguments)
    make_lake(tmp_path / "b", **arguments)
    make_lake(tmp_path / "c", **{**arguments, "seed": 12})
    first, second, other = (digests(tmp_path / name) for name in "abc")
    assert first == second
    assert any(key.endswith(".csv") for key in first)
    assert f"{EXPECTED_PREFIX}core_order.parquet" in first and MANIFEST_KEY in first
    shared = set(first) & set(other)
    assert sum(first[key] != other[key] for key in shared) > len(shared) // 2


# ------------------------------------------------------------------------ the oracle


def typed_state(
    state: dict[tuple, dict[str, str | None]], contract: TableContract
) -> list[dict[str, Any]]:
    """A replayed state's rows typed as the oracle holds them (JSON parsed), by key."""
    return sorted(
        (
            {c.name: parse_value(values[c.name], c.type) for c in contract.columns}
            for values in state.values()
        ),
        key=lambda row: tuple(row[k] for k in contract.primary_key),
    )


def oracle_state(store: LakeStore, contract: TableContract) -> list[dict[str, Any]]:
    """The oracle's rows, JSON parsed like ``typed_state``'s."""
    json_columns = [c.name for c in contract.columns if c.type == "json"]
    rows = expected_rows(store, contract)
    for row in rows:
        for name in json_columns:
            row[name] = None if row[name] is None else json.loads(row[name])
    return rows


def assert_replay_matches_oracle(
    store: LakeStore, contract: TableContract, changes: list[Change]
) -> None:
    replayed = typed_state(replay(changes, contract), contract)
    expected = oracle_state(store, contract)
    assert len(replayed) == len(expected), contract.name
    for got, want in zip(replayed, expected):
        for column in contract.columns:
            assert got[column.name] == want[column.name], (contract.name, want["id"], column.name)


def assert_manifest_counts_the_lake(
    store: LakeStore, changes: dict[str, list[Change]] | None = None
) -> dict[str, Any]:
    """The manifest's files, rows written and live rows are what the lake holds
    (``changes``: the lake's, when already read)."""
    manifest = json.loads(store.get(MANIFEST_KEY))
    changes = changes or all_changes(store)
    for name, contract in CONTRACTS.tables.items():
        counts = manifest["tables"][name]
        files = list(store.list_objects(table_prefix(DMS, contract.schema, name)))
        assert counts["files"] == len(files), name
        assert counts["bytes"] == sum(info.size for info in files), name
        assert counts["rows_written"] == len(changes[name]), name
        assert counts["live_rows"] == len(expected_rows(store, contract)), name
    return manifest


def test_the_oracle_equals_replaying_the_files(variant_lake: LakeStore) -> None:
    for contract in CONTRACTS.tables.values():
        assert_replay_matches_oracle(variant_lake, contract, read_changes(variant_lake, contract))


def test_files_follow_other_dms_settings_and_still_replay_to_the_oracle(tmp_path: Path) -> None:
    """Delimiter, Op in the full load, AR_H_CHANGE_SEQ, bucket folder and hourly date
    folders all come from the contract's dms: block."""
    document = yaml.safe_load(demo_contracts_path().read_text(encoding="utf-8"))
    document["dms"] = {
        "bucket_folder": "raw/dms-task",
        "include_op_for_full_load": True,
        "change_seq_column": True,
        "delimiter": ";",
        "date_partition": {"enabled": True, "sequence": "YYYYMMDDHH", "delimiter": "DASH"},
    }
    contracts = parse_contracts(document, "other-settings.yaml")
    store = make_lake(tmp_path, contracts=contracts, scale=0.01, days=3, seed=2)
    for contract in contracts.tables.values():
        changes = read_changes(store, contract, contracts.dms)
        assert changes and all(c.key.startswith("raw/dms-task/public/") for c in changes)
        for change in changes:
            if change.kind is FileKind.CDC:
                assert re.fullmatch(r"\d{35}", change.change_seq)
                assert re.search(r"/2024-01-0[23]-\d{2}/\d{8}-\d{9}\.csv$", change.key)
        load_key = next(c.key for c in changes if c.kind is FileKind.FULL_LOAD)
        assert store.get(load_key).startswith(b"I;2024-01-01 23:")
        assert_replay_matches_oracle(store, contract, changes)


def test_the_oracle_holds_no_empty_strings(small_lake: LakeStore) -> None:
    for contract in CONTRACTS.tables.values():
        for row in expected_rows(small_lake, contract):
            for column in contract.columns:
                if column.type in ("string", "json", "uuid"):
                    assert row[column.name] != "", (contract.name, row["id"], column.name)


def test_the_manifest_counts_what_was_written(small_lake: LakeStore) -> None:
    manifest = assert_manifest_counts_the_lake(small_lake)
    assert manifest["arguments"] == {
        "scale": 0.02,
        "days": 4,
        "seed": 7,
        "start": "2024-01-01",
        "gzip": False,
    }


# ------------------------------------------------------------------------ the DMS layout


def test_files_are_named_and_placed_as_dms_does(small_lake: LakeStore) -> None:
    for contract in CONTRACTS.tables.values():
        prefix = table_prefix(DMS, contract.schema, contract.name)
        for info in small_lake.list_objects(prefix):
            parsed = parse_object_key(info.key, DMS)
            if parsed.kind is FileKind.FULL_LOAD:
                assert re.fullmatch(r"LOAD[0-9A-F]{8}\.csv", parsed.file_name)
                assert info.key == prefix + parsed.file_name
                assert parsed.partition_date(info.last_modified) == START
            else:
                assert re.fullmatch(r"\d{8}-\d{9}\.csv", parsed.file_name)
                assert info.key.startswith(f"{prefix}{parsed.date:%Y/%m/%d}/{parsed.date:%Y%m%d}-")
                assert parsed.date > START


def test_load_files_count_in_hex_past_nine(small_lake: LakeStore) -> None:
    names = [
        info.key.rsplit("/", 1)[1]
        for info in small_lake.list_objects(table_prefix(DMS, "public", "core_event"))
    ]
    assert "LOAD00000009.csv" in names and "LOAD0000000A.csv" in names


def test_csv_is_rfc4180_with_minimal_quoting(small_lake: LakeStore) -> None:
    """Parsing with Python's csv module and writing back with the minimal-quoting rule
    gives the file's exact bytes: no header, LF line ends, quotes only where needed."""

    def field(text: str) -> str:
        needs_quotes = any(char in text for char in (DMS.delimiter, '"', "\r", "\n"))
        return '"' + text.replace('"', '""') + '"' if needs_quotes else text

    for contract in CONTRACTS.tables.values():
        for info in small_lake.list_objects(table_prefix(DMS, contract.schema, contract.name)):
            text = small_lake.get(info.key).decode("utf-8")
            rows = list(
                csv.reader(io.StringIO(text, newline=""), delimiter=DMS.delimiter, strict=True)
            )
            parsed = parse_object_key(info.key, DMS)
            width = len(contract.columns) + (2 if parsed.kind is FileKind.CDC else 1)
            assert {len(row) for row in rows} == {width}, info.key
            assert "".join(DMS.delimiter.join(field(f) for f in row) + "\n" for row in rows) == text


def test_commits_increase_within_a_file_and_precede_its_flush(small_lake: LakeStore) -> None:
    for changes in all_changes(small_lake).values():
        by_file: dict[str, list[Change]] = defaultdict(list)
        for change in changes:
            by_file[change.key].append(change)
        for key, rows in by_file.items():
            stamps = [c.commit_ts for c in rows]
            assert stamps == sorted(stamps), key
            if rows[0].kind is FileKind.CDC:
                flushed = datetime.strptime(key.rsplit("/", 1)[1][:18], "%Y%m%d-%H%M%S%f")
                assert max(stamps) < flushed.replace(tzinfo=UTC), key
            else:
                assert len(set(stamps)) == 1, f"{key}: one transfer time per LOAD file"


# ------------------------------------------------------------------------ edge cases


def test_a_key_goes_insert_update_delete_insert_within_one_file(variant_lake: LakeStore) -> None:
    found = []
    for name, changes in all_changes(variant_lake).items():
        contract = CONTRACTS.table(name)
        by_file: dict[tuple, list[Change]] = defaultdict(list)
        for change in changes:
            by_file[(change.key, primary_key(contract, change.values))].append(change)
        for (file_key, _), rows in by_file.items():
            if [c.op for c in rows][:4] == list("IUDI"):
                first, second = rows[0].values, rows[3].values
                assert first != second, "the re-insert carries other values"
                assert len({c.commit_ts for c in rows[:4]}) == 4, "four transactions"
                found.append(file_key)
    assert found


def test_a_key_goes_insert_update_delete_insert_across_files_and_days(
    variant_lake: LakeStore,
) -> None:
    found = []
    for name, changes in all_changes(variant_lake).items():
        contract = CONTRACTS.table(name)
        for key, rows in churned_keys(changes, contract).items():
            if len({c.key for c in rows}) >= 3 and len({cdc_day(c) for c in rows}) >= 2:
                inserts = [c.values for c in rows if c.op == "I"]
                assert inserts[0] != inserts[-1]
                found.append((name, key))
    assert found


def test_a_task_restart_redelivers_rows_verbatim(variant_lake: LakeStore) -> None:
    """A later CDC file repeats rows (Op, commit time and values) of an earlier one."""
    redelivered = []
    for name, contract in CONTRACTS.tables.items():
        first_seen: dict[tuple[str, ...], str] = {}
        for info in variant_lake.list_objects(table_prefix(DMS, contract.schema, name)):
            if parse_object_key(info.key, DMS).kind is not FileKind.CDC:
                continue
            text = variant_lake.get(info.key).decode("utf-8")
            for row in csv.reader(io.StringIO(text, newline=""), delimiter=DMS.delimiter):
                earlier = first_seen.setdefault(tuple(row), info.key)
                if earlier != info.key:
                    earlier_order = parse_object_key(earlier, DMS).order
                    assert earlier_order < parse_object_key(info.key, DMS).order
                    redelivered.append((name, info.key))
    assert redelivered


def test_the_full_load_overlaps_cdc(variant_lake: LakeStore) -> None:
    """Day 2's first CDC files carry commits from before the load's transfer time,
    and the load already holds their result."""
    overlapping = 0
    for name, changes in all_changes(variant_lake).items():
        contract = CONTRACTS.table(name)
        loaded = {
            primary_key(contract, c.values): c for c in changes if c.kind is FileKind.FULL_LOAD
        }
        load_began = min(c.commit_ts for c in loaded.values())
        for change in changes:
            if change.kind is FileKind.CDC and change.commit_ts < load_began:
                assert cdc_day(change) == date(2024, 1, 2)
                assert change.op in ("I", "U")
                assert loaded[primary_key(contract, change.values)].values == change.values
                overlapping += 1
    assert overlapping >= 2


def test_deletes_carry_the_key_only_or_the_before_image(variant_lake: LakeStore) -> None:
    key_only, before_image = set(), set()
    for name, changes in all_changes(variant_lake).items():
        contract = CONTRACTS.table(name)
        for change in changes:
            if change.op != "D":
                continue
            others = [
                v for column, v in change.values.items() if column not in contract.primary_key
            ]
            (key_only if all(v is None for v in others) else before_image).add(name)
    assert key_only and before_image
    assert not key_only & before_image


def test_awkward_values_are_present(small_lake: LakeStore) -> None:
    values = []
    booleans = set()
    json_objects = []
    nulls = 0
    for name, changes in all_changes(small_lake).items():
        contract = CONTRACTS.table(name)
        types = {c.name: c.type for c in contract.columns}
        for change in changes:
            if change.op == "D":
                continue
            for column, value in change.values.items():
                if value is None:
                    nulls += 1
                elif types[column] == "boolean":
                    booleans.add(value)
                elif types[column] == "json":
                    json_objects.append(json.loads(value))
                elif types[column] == "string":
                    values.append(value)
    text = "\n".join(values)
    for needle in (",", '"', "\r\n", "é", "ü", "山田", "🎌"):
        assert needle in text, needle
    assert any("\n" in v and "\r\n" not in v for v in values)
    assert booleans == {"t", "f", "true", "false"}
    assert nulls
    assert any(
        isinstance(v, dict) and any(isinstance(x, dict) for x in v.values()) for v in json_objects
    )
    assert any('"' in json.dumps(v, ensure_ascii=False).replace('\\"', "") for v in json_objects)
    assert any(
        any(ord(ch) > 0x3000 for ch in json.dumps(v, ensure_ascii=False)) for v in json_objects
    )


def test_commit_timestamps_vary_their_fraction_digits(small_lake: LakeStore) -> None:
    widths = set()
    for contract in CONTRACTS.tables.values():
        for info in small_lake.list_objects(table_prefix(DMS, contract.schema, contract.name)):
            text = small_lake.get(info.key).decode("utf-8")
            for row in csv.reader(io.StringIO(text, newline=""), delimiter=DMS.delimiter):
                stamp = row[1] if parse_object_key(info.key, DMS).kind is FileKind.CDC else row[0]
                assert _TIMESTAMP.fullmatch(stamp), stamp
                widths.add(len(stamp.partition(".")[2]))
    assert {0, 6} <= widths and widths - {0, 6}


# ------------------------------------------------------------------------ live load and reload


@pytest.fixture(scope="module")
def live_lake(tmp_path_factory: pytest.TempPathFactory) -> LakeStore:
    return make_lake(tmp_path_factory.mktemp("live"), **{**SMALL, "days": 2}, live_load=True)


@pytest.fixture(scope="module")
def reload_lake(tmp_path_factory: pytest.TempPathFactory) -> LakeStore:
    return make_lake(tmp_path_factory.mktemp("reload"), **SMALL, reload_day=3)


def test_a_live_load_reads_each_table_in_a_snapshot_while_the_source_commits(
    live_lake: LakeStore,
) -> None:
    """Each table's snapshot comes shortly before its first transfer; meanwhile the source
    updates and deletes loaded keys and inserts new ones, and those commits land in a
    CDC file after the load although they are older than rows of the load."""
    loads = json.loads(live_lake.get(MANIFEST_KEY))["edge_cases"]["live_load"]
    changes = all_changes(live_lake)
    last_transfer = max(
        c.commit_ts for rows in changes.values() for c in rows if c.kind is FileKind.FULL_LOAD
    )
    during: dict[str, set[str]] = defaultdict(set)
    for name, rows in changes.items():
        contract = CONTRACTS.table(name)
        loaded = [c for c in rows if c.kind is FileKind.FULL_LOAD]
        first = min(c.commit_ts for c in loaded)
        snapshot = datetime.fromisoformat(loads[name]["snapshot"]).replace(tzinfo=UTC)
        assert first - LOAD_START_MARGIN <= snapshot < first, name
        loaded_keys = {primary_key(contract, c.values) for c in loaded}
        for change in rows:
            if change.kind is FileKind.CDC and snapshot <= change.commit_ts < last_transfer:
                assert parse_object_key(change.key, DMS).date == START, "lands after the load"
                in_load = primary_key(contract, change.values) in loaded_keys
                during[name].add(change.op + ("" if change.op == "I" else "/loaded" * in_load))
    ops = set().union(*during.values())
    assert {"I", "U/loaded", "D/loaded"} <= ops, during
    assert sum(loads[name]["changes_during_load"] for name in loads) > 0


def test_a_live_load_replays_to_the_oracle_only_by_the_loads_start(live_lake: LakeStore) -> None:
    naive_differs = False
    for name, changes in all_changes(live_lake).items():
        contract = CONTRACTS.table(name)
        assert_replay_matches_oracle(live_lake, contract, changes)
        naive = typed_state(replay_by_own_timestamps(changes, contract), contract)
        naive_differs |= naive != oracle_state(live_lake, contract)
    assert naive_differs, "ranking load rows by their transfer time must get the live load wrong"


def test_a_reload_rewrites_the_load_files_and_drops_keys_deleted_unseen(
    small_lake: LakeStore, reload_lake: LakeStore
) -> None:
    case = json.loads(reload_lake.get(MANIFEST_KEY))["edge_cases"]["reload"]
    contract = CONTRACTS.table(case["table"])
    changes = read_changes(reload_lake, contract)
    prefix = table_prefix(DMS, contract.schema, contract.name)

    def load_files(store: LakeStore) -> dict[str, bytes]:
        return {i.key: store.get(i.key) for i in store.list_objects(prefix) if "LOAD" in i.key}

    plain, reloaded = load_files(small_lake), load_files(reload_lake)
    assert sorted(reloaded) == sorted(plain) and reloaded != plain, "same names, new rows"
    reload_day = date.fromisoformat(case["day"])
    for info in reload_lake.list_objects(prefix):
        if "LOAD" in info.key:
            assert parse_object_key(info.key, DMS).partition_date(info.last_modified) == reload_day
    loaded = [c for c in changes if c.kind is FileKind.FULL_LOAD]
    assert {c.commit_ts.date() for c in loaded} == {reload_day}

    stopped, snapshot = (
        datetime.fromisoformat(case[k]).replace(tzinfo=UTC) for k in ("stopped", "snapshot")
    )
    cdc = [c for c in changes if c.kind is FileKind.CDC]
    assert not [c for c in cdc if stopped <= c.commit_ts < snapshot], "nothing captured"
    deleted = {(str(key),) for key in case["deleted_while_stopped"]}
    assert deleted
    assert not deleted & {primary_key(contract, c.values) for c in loaded}
    assert not [c for c in cdc if c.op == "D" and primary_key(contract, c.values) in deleted]
    seen_before = {primary_key(contract, c.values) for c in cdc if c.commit_ts < stopped}
    assert deleted & seen_before, "a key only the reload's sweep removes"
    assert_replay_matches_oracle(reload_lake, contract, changes)
    naive = typed_state(replay_by_own_timestamps(changes, contract), contract)
    assert naive != oracle_state(reload_lake, contract)


def test_the_other_tables_of_a_reload_day_replay_to_the_oracle(reload_lake: LakeStore) -> None:
    changes = all_changes(reload_lake)
    for name, rows in changes.items():
        assert_replay_matches_oracle(reload_lake, CONTRACTS.table(name), rows)
    assert_manifest_counts_the_lake(reload_lake, changes)


def test_the_last_day_can_be_today_and_ends_at_the_moment_of_the_run(tmp_path: Path) -> None:
    out = tmp_path / "lake"
    arguments = ["generate", "--scale", "0.01", "--days", "3", "--seed", "4", "--out", str(out)]
    main([*arguments, "--end", "today"])
    ran = datetime.now(UTC)
    store = open_lake(str(out))
    manifest = json.loads(store.get(MANIFEST_KEY))
    today = ran.date()
    assert manifest["arguments"]["start"] == (today - timedelta(days=2)).isoformat()
    assert manifest["arguments"]["cutoff"] <= ran.strftime("%Y-%m-%d %H:%M:%S.%f")
    days = set()
    for name, changes in all_changes(store).items():
        for change in changes:
            assert change.commit_ts < ran
            if change.kind is FileKind.CDC:
                days.add(cdc_day(change))
                stamp = datetime.strptime(change.key.rsplit("/", 1)[1][:18], "%Y%m%d-%H%M%S%f")
                assert stamp.replace(tzinfo=UTC) < ran, change.key
        assert_replay_matches_oracle(store, CONTRACTS.table(name), changes)
    assert max(days) == today or ran.hour < 1  # just after midnight, today may have no commits
    with pytest.raises(SystemExit):
        main([*arguments, "--end", "today", "--start", "2024-01-01"])


# ------------------------------------------------------------------------ gzip and the CLI


def test_gzip_output_reads_back_to_the_same_rows(tmp_path: Path) -> None:
    arguments = {"scale": 0.01, "days": 3, "seed": 5}
    plain = make_lake(tmp_path / "plain", **arguments)
    packed = make_lake(tmp_path / "packed", **arguments, gzip=True)
    for contract in CONTRACTS.tables.values():
        prefix = table_prefix(DMS, contract.schema, contract.name)
        plain_keys = [info.key for info in plain.list_objects(prefix)]
        packed_keys = [info.key for info in packed.list_objects(prefix)]
        assert sorted(packed_keys) == sorted(f"{key}.gz" for key in plain_keys)
        for key in plain_keys:
            compressed = packed.get(f"{key}.gz")
            assert gzip.decompress(compressed) == plain.get(key)
            got = read_dms_file(compressed, f"{key}.gz", contract, DMS).drop_columns(
                ["_source_file"]
            )
            assert got.equals(
                read_dms_file(plain.get(key), key, contract, DMS).drop_columns(["_source_file"])
            )
        name = f"{EXPECTED_PREFIX}{contract.name}.parquet"
        assert packed.get(name) == plain.get(name)


def test_the_cli_generates_and_prints_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lake"
    assert (
        main(
            [
                "generate",
                "--scale",
                "0.01",
                "--days",
                "2",
                "--seed",
                "3",
                "--out",
                str(out),
                "--start",
                "2024-03-01",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert re.search(r"wrote \d+ files .* in [\d.]+ s", printed)
    assert "core_event" in printed
    manifest = json.loads((out / MANIFEST_KEY).read_text())
    assert manifest["arguments"]["start"] == "2024-03-01"
    assert (out / "bronze/dms/public/core_order/2024/03/02").is_dir()


# ------------------------------------------------------------------------ scale 1 (the slow one)


def test_scale_one_full_load_has_the_seed_counts(tmp_path: Path) -> None:
    store = make_lake(tmp_path / "lake", scale=1, days=7, seed=42)
    expected = {
        "core_tenant": 8,
        "core_customer": 6_400,
        "core_product": 800,
        "core_order": 47_750,
        "core_event": 293_339,
        "core_subscription": 1_920,
        "core_invoice": 10_000,
    }
    loaded = {}
    for name, contract in CONTRACTS.tables.items():
        rows = 0
        for info in store.list_objects(table_prefix(DMS, contract.schema, name)):
            if parse_object_key(info.key, DMS).kind is FileKind.FULL_LOAD:
                rows += read_dms_file(store.get(info.key), info.key, contract, DMS).num_rows
        loaded[name] = rows
    assert {name: loaded[name] for name in expected} == expected
    assert abs(loaded["core_orderitem"] - 153_600) < 153_600 * 0.01
    event_loads = [
        i.key
        for i in store.list_objects(table_prefix(DMS, "public", "core_event"))
        if "LOAD" in i.key
    ]
    assert len(event_loads) > 10 and any(key.endswith("LOAD0000000A.csv") for key in event_loads)
