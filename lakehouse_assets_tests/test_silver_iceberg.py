"""The silver merge on real Iceberg tables (SQLite catalog, local warehouse under tmp_path).

Changes are small DMS CSV texts read with ``read_dms_file``, so keys, file
order and row positions are the real ones. The properties proven here are the
ones DESIGN.md promises: idempotent, independent of the order days are applied
in, one commit per run (a crash leaves the table as it was), concurrent runs
both land, cost follows the change (pruning), additive schema evolution, and
rejects replaced per source file.
"""

from __future__ import annotations

import csv
import io
import tempfile
import threading
import zlib
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog

from lakehouse_assets.contracts import (
    Column,
    DatePartitioning,
    DmsSettings,
    PartitionSpec,
    TableContract,
    load_contracts,
)
from lakehouse_assets.dms import parse_object_key, read_dms_file, read_dms_files
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for, warehouse_for_lake
from lakehouse_assets.silver import rejects as rejects_module
from lakehouse_assets.silver import writer
from lakehouse_assets.silver.apply import merge_changes
from lakehouse_assets.silver.result import MergeResult
from lakehouse_assets.silver.tables import (
    SchemaEvolutionError,
    rejects_identifier,
    table_identifier,
)

CONTRACT = TableContract(
    name="orders",
    schema="public",
    primary_key=("id",),
    columns=(
        Column("id", "bigint", nullable=False),
        Column("name", "string"),
        Column("amount", "decimal(10,2)"),
        Column("created_at", "timestamp"),
    ),
    partition_by=PartitionSpec(column="created_at", transform="month"),
)
DMS = DmsSettings(bucket_folder="bronze/dms", date_partition=DatePartitioning(enabled=True))
PREFIX = "bronze/dms/public/orders/"
INGESTED = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
Row = list  # one DMS CSV row: [Op, commit ts, *contract columns]; None is NULL


# ------------------------------------------------------------------ helpers


def make_catalog(root: Path) -> Catalog:
    return open_catalog(sqlite_uri_for(root / "catalog.db"), warehouse_for_lake(str(root / "lake")))


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return make_catalog(tmp_path)


def cdc_key(day: date, clock: str = "100000000") -> str:
    return f"{PREFIX}{day:%Y/%m/%d}/{day:%Y%m%d}-{clock}.csv"


def load_key(counter: int = 1) -> str:
    return f"{PREFIX}LOAD{counter:08X}.csv"


def dms_text(rows: list[Row]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(
        [["" if v is None else v for v in row] for row in rows]
    )
    return out.getvalue().encode()


def read(
    key: str, rows: list[Row], contract: TableContract = CONTRACT, dms: DmsSettings = DMS
) -> pa.Table:
    return read_dms_file(dms_text(rows), key, contract, dms)


def merge(
    catalog: Catalog, raw: pa.Table, contract: TableContract = CONTRACT, dms: DmsSettings = DMS
) -> MergeResult:
    return merge_changes(catalog, contract, dms, raw, ingested_at=INGESTED)


def state(catalog: Catalog, contract: TableContract = CONTRACT) -> dict:
    """{key: row dict} of every stored row (live and tombstones), minus _ingested_at."""
    rows = catalog.load_table(table_identifier(contract)).scan().to_arrow().to_pylist()
    out = {}
    for row in rows:
        row.pop("_ingested_at")
        key = tuple(row[name] for name in contract.primary_key)
        assert key not in out, f"key {key} stored twice"
        out[key] = row
    return out


def live(catalog: Catalog, contract: TableContract = CONTRACT) -> dict:
    return {k: v for k, v in state(catalog, contract).items() if not v["_is_deleted"]}


def snapshot_ids(catalog: Catalog, contract: TableContract = CONTRACT) -> list[int]:
    table = catalog.load_table(table_identifier(contract))
    return [snapshot.snapshot_id for snapshot in table.snapshots()]


def data_file_count(catalog: Catalog, contract: TableContract = CONTRACT) -> int:
    return len(list(catalog.load_table(table_identifier(contract)).scan().plan_files()))


def order_row(
    op: str,
    ts: str,
    key: int,
    name: str | None = None,
    amount: str | None = "1.00",
    created: str | None = "2024-01-15 08:00:00",
) -> Row:
    if op == "D":
        return ["D", ts, str(key), None, None, None]
    return [op, ts, str(key), name if name is not None else f"n{key}", amount, created]


# ------------------------------------------------------------------ basics


def test_first_merge_creates_the_table_with_typed_rows_and_metadata(catalog):
    key = cdc_key(date(2024, 1, 2))
    result = merge(
        catalog,
        read(
            key,
            [
                order_row("I", "2024-01-02 10:00:00", 1, "ann", "12.34", "2024-01-02 09:00:00"),
                order_row("I", "2024-01-02 10:00:01", 2, "bo", None, "2024-02-02 09:00:00"),
            ],
        ),
    )
    assert (result.changes, result.inserted, result.updated, result.deleted, result.unchanged) == (
        2,
        2,
        0,
        0,
        0,
    )
    assert result.attempts == 1 and result.snapshot_id == snapshot_ids(catalog)[-1]
    assert result.max_commit_ts == datetime(2024, 1, 2, 10, 0, 1, tzinfo=UTC)
    rows = state(catalog)
    assert rows[(1,)] == {
        "id": 1,
        "name": "ann",
        "amount": Decimal("12.34"),
        "created_at": datetime(2024, 1, 2, 9),
        "_op": "I",
        "_commit_ts": datetime(2024, 1, 2, 10, tzinfo=UTC),
        "_change_seq": None,
        "_source_file": key,
        "_source_row": 1,
        "_is_deleted": False,
        "_file_order": parse_object_key(key, DMS).order_text,
    }
    table = catalog.load_table(table_identifier(CONTRACT))
    assert [f.name for f in table.spec().fields] == ["created_at_month"]
    assert table.schema().identifier_field_names() == {"id"}
    # Two months: two partitions, so two data files.
    assert data_file_count(catalog) == 2
    ingested = table.scan(selected_fields=("_ingested_at",)).to_arrow()["_ingested_at"].to_pylist()
    assert ingested == [INGESTED, INGESTED]


def test_same_batch_twice_writes_nothing_the_second_time(catalog):
    raw = read(
        cdc_key(date(2024, 1, 2)),
        [
            order_row("I", "2024-01-02 10:00:00", 1),
            order_row("I", "2024-01-02 10:00:00", 2),
            order_row("U", "2024-01-02 10:00:05", 1, "one-b"),
            order_row("D", "2024-01-02 10:00:06", 3),
        ],
    )
    first = merge(catalog, raw)
    assert (first.inserted, first.deleted, first.files_added) == (2, 1, 2)
    before, snapshots = state(catalog), snapshot_ids(catalog)

    second = merge(catalog, raw)
    assert (second.inserted, second.updated, second.deleted, second.unchanged) == (0, 0, 0, 3)
    assert (second.files_rewritten, second.files_added) == (0, 0)
    assert second.snapshot_id == first.snapshot_id
    assert snapshot_ids(catalog) == snapshots
    assert state(catalog) == before


def test_insert_update_delete_insert_within_one_file(catalog):
    key = cdc_key(date(2024, 1, 2))
    result = merge(
        catalog,
        read(
            key,
            [
                order_row("I", "2024-01-02 10:00:00", 1, "v1", "1.00"),
                order_row("U", "2024-01-02 10:00:00", 1, "v2", "2.00"),
                order_row("D", "2024-01-02 10:00:01", 1),
                order_row("I", "2024-01-02 10:00:01", 1, "v4", "4.00"),
                order_row("I", "2024-01-02 10:00:00", 2, "x", "1.00"),
                order_row("D", "2024-01-02 10:00:00", 2),
            ],
        ),
    )
    assert (result.inserted, result.deleted) == (1, 1)
    rows = state(catalog)
    assert rows[(1,)]["name"] == "v4" and rows[(1,)]["amount"] == Decimal("4.00")
    assert rows[(1,)]["_source_row"] == 4 and not rows[(1,)]["_is_deleted"]
    assert rows[(2,)]["_is_deleted"] and rows[(2,)]["_source_row"] == 6
    assert set(live(catalog)) == {(1,)}


def test_delete_applied_before_the_insert_it_deletes(catalog):
    insert = read(cdc_key(date(2024, 1, 2)), [order_row("I", "2024-01-02 10:00:00", 1, "ghost")])
    delete = read(cdc_key(date(2024, 1, 3)), [order_row("D", "2024-01-03 10:00:00", 1)])
    first = merge(catalog, delete)  # day 3 lands first (backfill of day 2 runs later)
    assert (first.deleted, first.inserted) == (1, 0)
    snapshots = snapshot_ids(catalog)
    second = merge(catalog, insert)
    assert (second.unchanged, second.inserted) == (1, 0)
    assert snapshot_ids(catalog) == snapshots  # nothing newer: no commit
    rows = state(catalog)
    assert rows[(1,)]["_is_deleted"] and rows[(1,)]["_source_file"] == cdc_key(date(2024, 1, 3))
    assert live(catalog) == {}


def test_update_moves_a_row_between_partitions_without_duplicating_it(catalog):
    merge(
        catalog,
        read(
            cdc_key(date(2024, 1, 2)),
            [
                order_row("I", "2024-01-02 10:00:00", k, created="2024-01-10 00:00:00")
                for k in range(1, 6)
            ],
        ),
    )
    result = merge(
        catalog,
        read(
            cdc_key(date(2024, 1, 3)),
            [
                order_row("U", "2024-01-03 10:00:00", 3, "moved", created="2024-03-10 00:00:00"),
                order_row(
                    "D", "2024-01-03 10:00:00", 4
                ),  # tombstone with no created_at: null partition
            ],
        ),
    )
    assert (result.updated, result.deleted) == (1, 1)
    rows = state(catalog)
    assert len(rows) == 5
    assert rows[(3,)]["name"] == "moved" and rows[(3,)]["created_at"] == datetime(2024, 3, 10)
    assert rows[(4,)]["_is_deleted"] and rows[(4,)]["created_at"] is None
    assert set(live(catalog)) == {(1,), (2,), (3,), (5,)}


def test_full_load_then_overlapping_cdc(catalog):
    load = read(
        load_key(1),
        [
            ["2024-01-02 09:00:00", "1", "loaded", "1.00", None],
            ["2024-01-02 09:00:00", "2", "loaded", "2.00", None],
        ],
    )
    cdc = read(
        cdc_key(date(2024, 1, 2)),
        [
            order_row("U", "2024-01-02 08:50:00", 1, "older-than-load"),  # before the load began
            order_row("U", "2024-01-02 09:00:00", 2, "same-ts-as-load"),  # tie: CDC file after LOAD
        ],
    )
    merge(catalog, cdc)
    merge(catalog, load)
    rows = state(catalog)
    assert rows[(1,)]["name"] == "loaded"
    assert rows[(2,)]["name"] == "same-ts-as-load"
    assert rows[(1,)]["_op"] == "I"  # a full-load row is an insert


# ------------------------------------------------------------------ order independence (property)


KEYS = (1, 2, 3)
TS_POOL = [
    "2024-01-02 10:00:00",
    "2024-01-02 11:00:00",
    "2024-01-03 10:00:00",
]  # few values: many ties
SEQ_DMS = replace(DMS, change_seq_column=True)
LOAD_MARGIN = timedelta(seconds=DMS.load_start_margin_seconds)


def _change_seq(row: list) -> str:
    """AR_H_CHANGE_SEQ: the commit time's digits and a number unique to the change, so one
    change (and its redelivered copies) has one sequence, as DMS guarantees."""
    digits = row[1].replace("-", "").replace(" ", "").replace(":", "")
    return f"{digits}{zlib.crc32(repr(row).encode()):021d}"


@st.composite
def histories(draw):
    """3-4 files ('days'), optionally the first a full load, each with random changes and
    some redelivered copies of earlier CDC rows; optionally with AR_H_CHANGE_SEQ (empty in
    the full load)."""
    n_files = draw(st.integers(3, 4))
    with_load = draw(st.booleans())
    with_seq = draw(st.booleans())
    files = []
    for index in range(n_files):
        is_load = with_load and index == 0
        n_rows = draw(st.integers(0, 6))
        rows = []
        for _ in range(n_rows):
            key = draw(st.sampled_from(KEYS))
            ts = draw(st.sampled_from(TS_POOL))
            op = "I" if is_load else draw(st.sampled_from("IUD"))
            if op == "D" and draw(st.booleans()):
                row = ["D", ts, str(key), None, None, None]  # only the key
            else:
                name = draw(st.sampled_from(["a", "b, c", 'q"uote', None]))
                amount = draw(st.sampled_from(["1.00", "2.50", None]))
                created = draw(
                    st.sampled_from(["2024-01-01 00:00:00", "2024-02-01 00:00:00", None])
                )
                row = [op, ts, str(key), name, amount, created]
            if with_seq:
                row.append(None if is_load else _change_seq(row))
            rows.append(row[1:] if is_load else row)
        earlier = [row for was_load, old in files if not was_load for row in old]
        if not is_load and earlier:
            # A task restart: DMS sends rows of an earlier file again, under a later name.
            rows += draw(st.lists(st.sampled_from(earlier), max_size=3))
        files.append((is_load, rows))
    # Application plan: a permutation of the files in groups (one merge per group), some repeated.
    order = draw(st.permutations(range(n_files)))
    runs = []
    position = 0
    while position < n_files:
        size = draw(st.integers(1, 2))
        runs.append(list(order[position : position + size]))
        position += size
    repeats = draw(st.lists(st.sampled_from(runs), max_size=2))
    for run in repeats:
        runs.insert(draw(st.integers(0, len(runs))), run)
    return files, runs, with_seq


def _file_key(index: int, is_load: bool) -> str:
    # File names in application order: LOAD first (although it sorts after), CDC by clock.
    return load_key(1) if is_load else cdc_key(date(2024, 1, 2), f"1{index:02d}000000")


def _name_time(index: int) -> datetime:
    return datetime(2024, 1, 2, 10, index)  # _file_key's 1HH000000 is 10:<index>:00


def replay_oracle(files, with_seq: bool) -> dict:
    """Apply every change one by one in DESIGN.md's order; {key: (is_deleted, row values,
    {acceptable (file, row)})}.

    A full load's rows rank at the load's start (first transfer less the margin), before
    every CDC change committed from then on; CDC changes by (commit ts, change seq, file,
    row). Once a CDC file named after the load's last transfer is applied, the load is
    complete: keys it does not hold and whose last change came before its start are
    deleted. With a change seq, a redelivered copy of the stored change is not applied, so
    any copy may be the stored one."""
    load_times = [
        datetime.fromisoformat(row[0]) for is_load, rows in files if is_load for row in rows
    ]
    start = min(load_times) - LOAD_MARGIN if load_times else None
    events = []
    for index, (is_load, rows) in enumerate(files):
        for number, row in enumerate(rows, start=1):
            op, ts, key, *values = ["I", *row] if is_load else row
            seq = values.pop() if with_seq else None
            moment = datetime.fromisoformat(ts)
            rank = (start, 0) if is_load else (moment, 1)
            position = (*rank, moment, (0, "") if seq is None else (1, seq), index, number)
            identity = (moment, seq, op, tuple(values)) if seq is not None else None
            events.append(
                (position, op, int(key), values, (_file_key(index, is_load), number), identity)
            )
    result: dict = {}
    for position, op, key, values, place, identity in sorted(events, key=lambda e: e[0]):
        stored = result.get(key)
        if stored is not None and identity is not None and stored[3] == identity:
            result[key] = (*stored[:2], stored[2] | {place}, identity, stored[4])
            continue
        result[key] = (op == "D", None if op == "D" else values, {place}, identity, position)
    complete = start is not None and any(
        not is_load and _name_time(index) > max(load_times)
        for index, (is_load, _) in enumerate(files)
    )
    for key, (deleted, _values, _places, _identity, position) in list(result.items()):
        if complete and not deleted and position[0] < start:
            result[key] = (True, None, {(None, 0)}, None, None)
    return {key: value[:3] for key, value in result.items()}


def _as_text(row: dict) -> list:
    amount = row["amount"]
    created = row["created_at"]
    return [
        row["name"],
        None if amount is None else f"{amount:.2f}",
        None if created is None else created.strftime("%Y-%m-%d %H:%M:%S"),
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_any_application_order_gives_the_replayed_state(history):
    files, runs, with_seq = history
    dms = SEQ_DMS if with_seq else DMS
    raws = [
        read(_file_key(index, is_load), rows, dms=dms)
        for index, (is_load, rows) in enumerate(files)
    ]
    with tempfile.TemporaryDirectory() as root:
        catalog = make_catalog(Path(root))
        for run in runs:
            merge(catalog, pa.concat_tables([raws[index] for index in run]), dms=dms)
        expected = replay_oracle(files, with_seq)
        if not catalog.table_exists(table_identifier(CONTRACT)):
            assert expected == {}
            return
        stored = state(catalog)
        got = {
            key: (row["_is_deleted"], None if row["_is_deleted"] else _as_text(row))
            for (key,), row in stored.items()
        }
        assert got == {key: value[:2] for key, value in expected.items()}
        for (key,), row in stored.items():
            assert (row["_source_file"], row["_source_row"]) in expected[key][2], key
        # Applying everything once more, as one batch, changes nothing.
        snapshots = snapshot_ids(catalog)
        again = merge(catalog, pa.concat_tables(raws), dms=dms)
        assert again.inserted == again.updated == again.deleted == 0
        assert snapshot_ids(catalog) == snapshots


# ------------------------------------------------------------------ crash and concurrency


def test_crash_before_the_commit_leaves_the_table_unchanged_and_the_rerun_is_exact(
    catalog, monkeypatch
):
    merge(
        catalog,
        read(
            cdc_key(date(2024, 1, 2)), [order_row("I", "2024-01-02 10:00:00", k) for k in (1, 2, 3)]
        ),
    )
    before, snapshots = state(catalog), snapshot_ids(catalog)
    batch = read(
        cdc_key(date(2024, 1, 3)),
        [
            order_row("U", "2024-01-03 10:00:00", 1, "one-b"),
            order_row("D", "2024-01-03 10:00:00", 2),
            order_row("I", "2024-01-03 10:00:00", 4),
        ],
    )

    real_commit = SqlCatalog.commit_table
    calls = []

    def crash_once(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("simulated crash: process died before the catalog update")
        return real_commit(self, *args, **kwargs)

    monkeypatch.setattr(SqlCatalog, "commit_table", crash_once)
    with pytest.raises(RuntimeError, match="simulated crash"):
        merge(catalog, batch)
    # Data files were written, but nothing was committed.
    fresh = make_catalog_like(catalog)
    assert snapshot_ids(fresh) == snapshots
    assert state(fresh) == before

    rerun = merge(fresh, batch)
    assert (rerun.inserted, rerun.updated, rerun.deleted, rerun.unchanged) == (1, 1, 1, 0)
    assert snapshot_ids(fresh) == [*snapshots, rerun.snapshot_id]
    rows = state(fresh)
    assert (
        rows[(1,)]["name"] == "one-b"
        and rows[(2,)]["_is_deleted"]
        and not rows[(4,)]["_is_deleted"]
    )
    assert rows[(3,)] == before[(3,)]


def make_catalog_like(catalog: Catalog) -> Catalog:
    """A new catalog client on the same database and warehouse (as the next run would open)."""
    return SqlCatalog(catalog.name, **catalog.properties)


def test_crash_on_the_first_commit_leaves_no_snapshot(catalog, monkeypatch):
    batch = read(cdc_key(date(2024, 1, 2)), [order_row("I", "2024-01-02 10:00:00", 1)])

    def crash(self, *args, **kwargs):
        raise RuntimeError("simulated crash")

    with monkeypatch.context() as patch:
        patch.setattr(SqlCatalog, "commit_table", crash)
        with pytest.raises(RuntimeError):
            merge(catalog, batch)
    assert snapshot_ids(catalog) == []
    assert merge(catalog, batch).inserted == 1
    assert set(live(catalog)) == {(1,)}


def test_concurrent_runs_on_different_days_both_land(tmp_path, monkeypatch):
    make_catalog(tmp_path)  # create the database once, as the deployment would
    base = read(
        cdc_key(date(2024, 1, 1)), [order_row("I", "2024-01-01 10:00:00", k) for k in range(1, 7)]
    )
    merge(make_catalog(tmp_path), base)
    day2 = read(
        cdc_key(date(2024, 1, 2)),
        [
            order_row("U", "2024-01-02 10:00:00", 1, "day2"),
            order_row("I", "2024-01-02 10:00:00", 10, "day2"),
            order_row("D", "2024-01-02 10:00:00", 5),
        ],
    )
    day3 = read(
        cdc_key(date(2024, 1, 3)),
        [
            order_row("U", "2024-01-03 10:00:00", 2, "day3"),
            order_row("I", "2024-01-03 10:00:00", 11, "day3"),
            order_row("U", "2024-01-03 10:00:00", 5, "day3-after-delete"),
            ["I", "2024-01-03 10:00:00", "12", "bad", "not-a-number", None],  # a reject in each run
        ],
    )
    day2 = pa.concat_tables(
        [
            day2,
            read(
                cdc_key(date(2024, 1, 2), "110000000"),
                [["I", "2024-01-02 11:00:00", "13", "bad", "x", None]],
            ),
        ]
    )

    # Both runs plan on the same snapshot before either commits.
    barrier = threading.Barrier(2, timeout=30)
    real_write = writer.write_data_files
    waited = threading.local()

    def write_in_step(*args, **kwargs):
        if not getattr(waited, "done", False):
            waited.done = True
            barrier.wait()
        return real_write(*args, **kwargs)

    monkeypatch.setattr(writer, "write_data_files", write_in_step)
    results: dict[str, MergeResult] = {}
    errors: list[BaseException] = []

    def run(name: str, raw: pa.Table) -> None:
        try:
            results[name] = merge(make_catalog(tmp_path), raw)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=("day2", day2)),
        threading.Thread(target=run, args=("day3", day3)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sorted(r.attempts for r in results.values()) == [1, 2]  # the loser planned again

    catalog = make_catalog(tmp_path)
    rows = state(catalog)
    assert rows[(1,)]["name"] == "day2" and rows[(2,)]["name"] == "day3"
    assert rows[(10,)]["name"] == "day2" and rows[(11,)]["name"] == "day3"
    assert rows[(5,)]["name"] == "day3-after-delete" and not rows[(5,)]["_is_deleted"]
    assert {3, 4, 6} <= {k for (k,) in live(catalog)}
    assert len(snapshot_ids(catalog)) == 3  # base + one per run
    rejects = catalog.load_table(rejects_identifier(CONTRACT)).scan().to_arrow()
    assert sorted(rejects["id"].to_pylist()) == ["12", "13"]


def test_concurrent_runs_both_replace_their_rejects(tmp_path, monkeypatch):
    def bad_row(day: date, key: int) -> pa.Table:
        return read(cdc_key(day), [["I", f"{day} 10:00:00", str(key), "x", "bad", None]])

    make_catalog(tmp_path)
    merge(make_catalog(tmp_path), bad_row(date(2024, 1, 1), 1))  # the rejects table exists

    # Both runs open the rejects table before either replaces its rejects.
    barrier = threading.Barrier(2, timeout=30)
    real_load = rejects_module.load_or_create_rejects_table
    waited = threading.local()

    def load_in_step(*args, **kwargs):
        table = real_load(*args, **kwargs)
        if not getattr(waited, "done", False):
            waited.done = True
            barrier.wait()
        return table

    monkeypatch.setattr(rejects_module, "load_or_create_rejects_table", load_in_step)
    errors: list[BaseException] = []

    def run(day: date, key: int) -> None:
        try:
            merge(make_catalog(tmp_path), bad_row(day, key))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(date(2024, 1, d), d)) for d in (2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    rejects = make_catalog(tmp_path).load_table(rejects_identifier(CONTRACT)).scan().to_arrow()
    assert sorted(rejects["id"].to_pylist()) == ["1", "2", "3"]


def test_first_runs_racing_to_create_the_namespace_both_succeed(tmp_path, monkeypatch):
    """Another table's first run creates ``silver`` between this run's check and its insert."""
    other = make_catalog(tmp_path)
    real_exists, real_create = SqlCatalog.namespace_exists, SqlCatalog.create_namespace
    state_ = {"inside": False, "raced": False}

    def create_namespace(self, namespace, *args, **kwargs):
        state_["inside"] = True
        try:
            return real_create(self, namespace, *args, **kwargs)
        finally:
            state_["inside"] = False

    def namespace_exists(self, namespace):
        if state_["inside"] and not state_["raced"]:
            state_["raced"] = True  # the other run inserts right after this check said "no"
            real_create(other, namespace)
            return False
        return real_exists(self, namespace)

    monkeypatch.setattr(SqlCatalog, "create_namespace", create_namespace)
    monkeypatch.setattr(SqlCatalog, "namespace_exists", namespace_exists)
    result = merge(
        make_catalog(tmp_path),
        read(cdc_key(date(2024, 1, 2)), [order_row("I", "2024-01-02 10:00:00", 1)]),
    )
    assert state_["raced"] and result.inserted == 1


def test_concurrent_first_runs_of_two_tables_on_a_new_catalog(tmp_path):
    customers = replace(CONTRACT, name="customers", partition_by=None)
    make_catalog(tmp_path)
    errors: list[BaseException] = []
    for attempt in range(3):  # the race window is small; try it a few times
        root = tmp_path / str(attempt)
        root.mkdir()
        make_catalog(root)
        barrier = threading.Barrier(2, timeout=30)

        def run(
            contract: TableContract, root: Path = root, barrier: threading.Barrier = barrier
        ) -> None:
            try:
                catalog = make_catalog(root)
                raw = read_dms_file(
                    dms_text([order_row("I", "2024-01-02 10:00:00", 1)]),
                    f"bronze/dms/public/{contract.name}/2024/01/02/20240102-100000000.csv",
                    contract,
                    DMS,
                )
                barrier.wait()
                merge(catalog, raw, contract)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(c,)) for c in (CONTRACT, customers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        catalog = make_catalog(root)
        assert set(live(catalog)) == {(1,)} and set(live(catalog, customers)) == {(1,)}


# ------------------------------------------------------------------ pruning


def test_a_change_touches_only_the_files_holding_its_keys(catalog):
    # Ten loads of 50 keys each: ten data files with tight key ranges.
    for batch in range(10):
        day = date(2024, 1, 1) + timedelta(days=batch)
        merge(
            catalog,
            read(
                cdc_key(day),
                [
                    order_row("I", f"{day} 10:00:00", key)
                    for key in range(batch * 50 + 1, batch * 50 + 51)
                ],
            ),
        )
    assert data_file_count(catalog) == 10

    one = merge(
        catalog, read(cdc_key(date(2024, 2, 1)), [order_row("U", "2024-02-01 10:00:00", 123, "x")])
    )
    assert (one.files_scanned, one.files_rewritten, one.files_added) == (1, 1, 1)
    assert data_file_count(catalog) == 10

    # A change spread over the key space rewrites the files it touches ...
    spread = merge(
        catalog,
        read(
            cdc_key(date(2024, 2, 2)),
            [order_row("U", "2024-02-02 10:00:00", key, "y") for key in (7, 260, 499)],
        ),
    )
    assert (spread.files_scanned, spread.files_rewritten, spread.updated) == (3, 3, 3)
    # ... without merging their key ranges, so later changes still prune as well.
    for day, key in enumerate((140, 300, 420), start=3):
        later = merge(
            catalog,
            read(
                cdc_key(date(2024, 2, day)), [order_row("U", f"2024-02-0{day} 10:00:00", key, "z")]
            ),
        )
        assert (later.files_scanned, later.files_rewritten) == (1, 1), (key, later)
    # New keys beyond the table's range scan nothing.
    fresh = merge(
        catalog, read(cdc_key(date(2024, 2, 9)), [order_row("I", "2024-02-09 10:00:00", 10_000)])
    )
    assert (fresh.files_scanned, fresh.files_rewritten, fresh.inserted) == (0, 0, 1)
    rows = live(catalog)
    assert len(rows) == 501
    assert [rows[(k,)]["name"] for k in (123, 7, 260, 499, 140, 300, 420)] == [
        "x",
        "y",
        "y",
        "y",
        "z",
        "z",
        "z",
    ]


KEY_TYPES = {
    "smallint": ["1", "5", "9"],
    "string": ["apple", "mango", "zebra-with-a-name-longer-than-sixteen-chars"],
    "uuid": [f"00000000-0000-0000-0000-00000000000{d}" for d in (1, 5, 9)],
    "decimal(10,2)": ["1.00", "5.50", "9.99"],
    "date": ["2024-01-01", "2024-01-05", "2024-02-01"],
    "timestamp": ["2024-01-01 00:00:00", "2024-01-05 00:00:00.5", "2024-02-01 00:00:00"],
    "timestamptz": ["2024-01-01 00:00:00", "2024-01-05 00:00:00+02", "2024-02-01 00:00:00"],
    "time": ["01:00:00", "05:00:00.25", "09:00:00"],
}


@pytest.mark.parametrize("key_type", [*KEY_TYPES, "composite"])
def test_every_key_type_merges_and_prunes(catalog, key_type):
    if key_type == "composite":
        columns = (
            Column("tenant", "int", nullable=False),
            Column("code", "string", nullable=False),
            Column("v", "string"),
        )
        contract = TableContract(
            name="keyed", schema="public", primary_key=("tenant", "code"), columns=columns
        )
        keys = [["1", "b"], ["1", "a"], ["2", "a"]]
    else:
        columns = (Column("k", key_type, nullable=False), Column("v", "string"))
        contract = TableContract(name="keyed", schema="public", primary_key=("k",), columns=columns)
        keys = [[value] for value in KEY_TYPES[key_type]]
    prefix = "bronze/dms/public/keyed/"

    def run(day: int, rows: list[Row]) -> MergeResult:
        key = f"{prefix}2024/01/0{day}/2024010{day}-100000000.csv"
        ts = f"2024-01-0{day} 10:00:00"
        raw = read_dms_file(dms_text([[op, ts, *k, v] for op, k, v in rows]), key, contract, DMS)
        return merge_changes(catalog, contract, DMS, raw, ingested_at=INGESTED)

    run(1, [("I", keys[1], "b"), ("I", keys[0], "a")])
    run(2, [("I", keys[2], "c")])
    third = [("U", keys[2], "c2"), ("U", keys[0], "a2"), ("D", keys[1], None)]
    result = run(3, third)
    assert (result.updated, result.deleted, result.inserted) == (2, 1, 0)
    assert (result.files_scanned, result.files_rewritten) == (2, 2)
    rows = catalog.load_table(table_identifier(contract)).scan().to_arrow().to_pylist()
    assert sorted((row["v"] or "", row["_is_deleted"]) for row in rows) == [
        ("", True),
        ("a2", False),
        ("c2", False),
    ]
    snapshots = snapshot_ids(catalog, contract)
    assert run(3, third).unchanged == 3 and snapshot_ids(catalog, contract) == snapshots
    # A change to one key reads only the file holding it (composite keys cannot prune by bounds).
    single = run(4, [("U", keys[2], "c3")])
    assert (
        single.files_scanned == (2 if key_type == "composite" else 1)
        and single.files_rewritten == 1
    )


# ------------------------------------------------------------------ schema evolution


def test_a_column_added_to_the_contract_appears_with_nulls_for_old_rows(catalog):
    merge(catalog, read(cdc_key(date(2024, 1, 2)), [order_row("I", "2024-01-02 10:00:00", 1)]))
    wider = replace(
        CONTRACT, columns=(*CONTRACT.columns, Column("note", "string"), Column("qty", "int"))
    )
    result = merge(
        catalog,
        read(
            cdc_key(date(2024, 1, 3)),
            [
                [
                    "I",
                    "2024-01-03 10:00:00",
                    "2",
                    "two",
                    "2.00",
                    "2024-01-15 00:00:00",
                    "hello",
                    "5",
                ],
                [
                    "U",
                    "2024-01-03 10:00:00",
                    "3",
                    "three",
                    "3.00",
                    "2024-01-15 00:00:00",
                    None,
                    None,
                ],
            ],
            contract=wider,
        ),
        contract=wider,
    )
    assert result.inserted == 2
    rows = state(catalog, wider)
    assert rows[(1,)]["note"] is None and rows[(1,)]["qty"] is None
    assert rows[(2,)]["note"] == "hello" and rows[(2,)]["qty"] == 5
    # The old row is still there untouched, and an update of it fills the new column.
    merge(
        catalog,
        read(
            cdc_key(date(2024, 1, 4)),
            [
                [
                    "U",
                    "2024-01-04 10:00:00",
                    "1",
                    "n1",
                    "1.00",
                    "2024-01-15 00:00:00",
                    "later",
                    "1",
                ],
            ],
            contract=wider,
        ),
        contract=wider,
    )
    assert state(catalog, wider)[(1,)]["note"] == "later"


def test_a_dropped_column_is_refused_with_what_to_do(catalog):
    merge(catalog, read(cdc_key(date(2024, 1, 2)), [order_row("I", "2024-01-02 10:00:00", 1)]))
    narrower = replace(CONTRACT, columns=tuple(c for c in CONTRACT.columns if c.name != "amount"))
    raw = read(
        cdc_key(date(2024, 1, 3)),
        [["I", "2024-01-03 10:00:00", "2", "two", None]],
        contract=narrower,
    )
    snapshots = snapshot_ids(catalog)
    with pytest.raises(SchemaEvolutionError, match="amount") as error:
        merge(catalog, raw, contract=narrower)
    assert "contract" in str(error.value) and "DROP COLUMN" in str(error.value)
    assert snapshot_ids(catalog) == snapshots


@pytest.mark.parametrize("new_type", ["string", "decimal(10,3)"])
def test_a_retyped_column_is_refused_with_what_to_do(catalog, new_type):
    merge(catalog, read(cdc_key(date(2024, 1, 2)), [order_row("I", "2024-01-02 10:00:00", 1)]))
    retyped = replace(
        CONTRACT,
        columns=tuple(
            Column("amount", new_type) if c.name == "amount" else c for c in CONTRACT.columns
        ),
    )
    raw = read(
        cdc_key(date(2024, 1, 3)), [order_row("I", "2024-01-03 10:00:00", 2)], contract=retyped
    )
    snapshots = snapshot_ids(catalog)
    with pytest.raises(SchemaEvolutionError, match="'amount'") as error:
        merge(catalog, raw, contract=retyped)
    message = str(error.value)
    assert new_type in message and "new column" in message and "rebuild" in message
    assert snapshot_ids(catalog) == snapshots


# ------------------------------------------------------------------ rejects


def test_rejects_land_with_file_row_and_reason_and_are_replaced_per_file(catalog):
    key2, key3 = cdc_key(date(2024, 1, 2)), cdc_key(date(2024, 1, 3))
    day2 = read(
        key2,
        [
            order_row("I", "2024-01-02 10:00:00", 1),
            ["I", "2024-01-02 10:00:00", "2", "two", "1.234", None],
        ],
    )
    result = merge(catalog, day2)
    assert (result.inserted, result.rejected) == (1, 1)
    rejects_table = catalog.load_table(rejects_identifier(CONTRACT))
    rejects = rejects_table.scan().to_arrow().to_pylist()
    assert len(rejects) == 1
    reject = rejects[0]
    assert reject["_source_file"] == key2 and reject["_source_row"] == 2 and reject["_op"] == "I"
    assert reject["id"] == "2" and reject["amount"] == "1.234"  # raw strings
    assert reject["_reason"] == "column 'amount': '1.234' is not a valid decimal(10,2)"
    assert set(live(catalog)) == {(1,)}

    # A rerun of the same batch does not duplicate the rejects.
    merge(catalog, day2)
    assert catalog.load_table(rejects_identifier(CONTRACT)).scan().to_arrow().num_rows == 1

    # Another day's rejects add to them; a corrected re-delivery of day 2 clears day 2's.
    merge(catalog, read(key3, [["I", "2024-01-03 10:00:00", "3", "three", "oops", None]]))
    assert sorted(
        catalog.load_table(rejects_identifier(CONTRACT))
        .scan()
        .to_arrow()["_source_file"]
        .to_pylist()
    ) == [key2, key3]
    merge(
        catalog,
        read(
            key2,
            [
                order_row("I", "2024-01-02 10:00:00", 1),
                ["I", "2024-01-02 10:00:00", "2", "two", "1.23", None],
            ],
        ),
    )
    rejects = catalog.load_table(rejects_identifier(CONTRACT)).scan().to_arrow()
    assert rejects["_source_file"].to_pylist() == [key3]
    assert set(live(catalog)) == {(1,), (2,)}


def test_no_rejects_table_until_a_row_is_rejected(catalog):
    merge(catalog, read(cdc_key(date(2024, 1, 2)), [order_row("I", "2024-01-02 10:00:00", 1)]))
    assert not catalog.table_exists(rejects_identifier(CONTRACT))


# ------------------------------------------------------------------ demo contracts


def test_demo_contract_round_trip_with_every_kind_of_column(catalog):
    contracts = load_contracts()
    order = contracts.table("core_order")
    dms = contracts.dms
    prefix = f"{dms.bucket_folder}/{order.schema}/{order.name}/2024/01/02/"
    text = (
        'I,2024-01-02 10:00:00.5,1,7,3,paid,EUR,1234.50,2,"line, ""quoted""\nnext",'
        '"{""k"": [1, 2]}",2024-01-02 09:59:00,\n'
        "I,2024-01-02 10:00:00.5,2,7,,new,EUR,-0.01,32767,,,2024-01-01 00:00:00,\n"
        "U,2024-01-02 10:00:01,2,7,,paid,EUR,-0.01,99999,,,2024-01-01 00:00:00,\n"
    )
    raw = read_dms_files([(prefix + "20240102-100000000.csv", text.encode())], order, dms)
    result = merge_changes(catalog, order, dms, raw, ingested_at=INGESTED)
    assert (result.inserted, result.rejected) == (2, 1)  # priority 99999 overflows smallint
    rows = {
        row["id"]: row
        for row in catalog.load_table(table_identifier(order)).scan().to_arrow().to_pylist()
    }
    assert rows[1]["total"] == Decimal("1234.50") and rows[1]["priority"] == 2
    assert rows[1]["notes"] == 'line, "quoted"\nnext' and rows[1]["metadata"] == '{"k": [1, 2]}'
    assert (
        rows[2]["status"] == "new" and rows[2]["priority"] == 32767
    )  # the rejected update did not apply
    # The second run of the same files is a no-op.
    assert merge_changes(catalog, order, dms, raw, ingested_at=INGESTED).unchanged == 2


SAMPLE_VALUES = {  # two valid DMS texts per type
    "smallint": ("3", "-4"),
    "int": ("70000", "-1"),
    "bigint": ("9000000000", "0"),
    "real": ("1.5", "NaN"),
    "double": ("2.25", "-0.5"),
    "boolean": ("t", "false"),
    "string": ('with, comma "and quotes"', "ü"),
    "date": ("2024-01-31", "2023-12-01"),
    "time": ("23:59:59.999999", "00:00:00"),
    "timestamp": ("2024-01-02 03:04:05.678", "2023-12-31 23:59:59"),
    "timestamptz": ("2024-01-02 03:04:05+01:00", "2023-12-31 23:59:59"),
    "json": ('{"a": [1, 2]}', "[]"),
    "uuid": ("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12"),
    "bytes": ("\\xdeadbeef", "\\x"),
}


@pytest.mark.parametrize("table_name", sorted(load_contracts().tables))
def test_every_demo_table_merges(catalog, table_name):
    contracts = load_contracts()
    contract, dms = contracts.table(table_name), contracts.dms
    prefix = f"{dms.bucket_folder}/{contract.schema}/{contract.name}/2024/01/02/"

    def values(choice: int, key: str) -> list[str]:
        out = []
        for column in contract.columns:
            if column.name in contract.primary_key:
                out.append(key)
            elif column.decimal:
                out.append("12.50" if choice == 0 else "-0.01")
            else:
                out.append(SAMPLE_VALUES[column.type][choice])
        return out

    rows = [
        ["I", "2024-01-02 10:00:00", *values(0, "1")],
        ["I", "2024-01-02 10:00:00", *values(0, "2")],
        ["U", "2024-01-02 10:00:01", *values(1, "1")],
        [
            "D",
            "2024-01-02 10:00:02",
            *[("2" if c.name in contract.primary_key else None) for c in contract.columns],
        ],
    ]
    raw = read_dms_file(dms_text(rows), prefix + "20240102-100000000.csv", contract, dms)
    result = merge_changes(catalog, contract, dms, raw, ingested_at=INGESTED)
    assert (result.rejected, result.inserted, result.deleted) == (0, 1, 1), raw.to_pylist()
    stored = {
        row[contract.primary_key[0]]: row
        for row in catalog.load_table(table_identifier(contract)).scan().to_arrow().to_pylist()
    }
    assert stored[2]["_is_deleted"] and not stored[1]["_is_deleted"]
    assert stored[1]["_op"] == "U" and stored[1]["_source_row"] == 3
    assert merge_changes(catalog, contract, dms, raw, ingested_at=INGESTED).unchanged == 2
