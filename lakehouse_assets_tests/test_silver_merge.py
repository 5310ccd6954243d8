"""Merge planning (pure, no Iceberg): newest change per key, and which changes beat the table.

Changes are DMS CSV texts read with ``read_dms_file`` and typed with
``cast_changes``, so file order and row positions are the real ones.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from lakehouse_assets.contracts import Column, DmsSettings, TableContract
from lakehouse_assets.dms import read_dms_file
from lakehouse_assets.silver.casting import cast_changes
from lakehouse_assets.silver.generations import LoadHistory
from lakehouse_assets.silver.merge import (
    FILE_ORDER,
    INGESTED_AT,
    IS_DELETED,
    KEY,
    MergePlan,
    file_order,
    is_newer,
    key_array,
    newest_per_key,
    plan_merge,
    with_position,
    with_rank,
)

CONTRACT = TableContract(
    name="orders",
    schema="public",
    primary_key=("id",),
    columns=(
        Column("id", "bigint", nullable=False),
        Column("name", "string"),
        Column("amount", "decimal(10,2)"),
    ),
)
DMS = DmsSettings(bucket_folder="bronze/dms")
SEQ_DMS = replace(DMS, change_seq_column=True)
PREFIX = "bronze/dms/public/orders/"
INGESTED = pa.scalar(datetime(2024, 6, 1, tzinfo=UTC), pa.timestamp("us", tz="UTC"))


def changes(
    key: str,
    rows: list[list[str | None]],
    dms: DmsSettings = DMS,
    contract: TableContract = CONTRACT,
) -> pa.Table:
    """Typed changes of one DMS file (rows as DMS writes them, None for NULL)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(
        [["" if v is None else v for v in row] for row in rows]
    )
    raw = read_dms_file(out.getvalue().encode(), PREFIX + key, contract, dms)
    typed = cast_changes(raw, contract)
    assert typed.rejects.num_rows == 0
    return typed.typed


def latest(
    *tables: pa.Table, dms: DmsSettings = DMS, contract: TableContract = CONTRACT
) -> dict[int, tuple]:
    """{id: (name, source file name, source row)} of the newest change per key."""
    batch = newest_per_key(with_position(pa.concat_tables(tables), contract.primary_key, dms))
    assert len(set(batch[KEY].to_pylist())) == batch.num_rows, "one row per key"
    return {
        row["id"]: (row["name"], row["_source_file"].rsplit("/", 1)[1], row["_source_row"])
        for row in batch.to_pylist()
    }


# ------------------------------------------------------------------ newest per key


def test_newest_commit_timestamp_wins_whatever_the_row_order():
    batch = changes(
        "20240102-100000000.csv",
        [
            ["U", "2024-01-02 10:00:05", "1", "late", "1.00"],
            ["I", "2024-01-02 10:00:01", "1", "early", "1.00"],
            ["U", "2024-01-02 10:00:03", "1", "middle", "1.00"],
            ["I", "2024-01-02 10:00:00.000002", "2", "two-b", "1.00"],
            ["I", "2024-01-02 10:00:00.000001", "2", "two-a", "1.00"],
        ],
    )
    assert latest(batch) == {
        1: ("late", "20240102-100000000.csv", 1),
        2: ("two-b", "20240102-100000000.csv", 4),
    }


def test_same_timestamp_is_decided_by_change_seq_before_file_and_row():
    ts = "2024-01-02 10:00:00"
    first_file = changes(
        "20240102-100000000.csv",
        [
            ["U", ts, "1", "seq-3", "1.00", "20240102100000000000000000000000003"],
            ["U", ts, "1", "seq-2", "1.00", "20240102100000000000000000000000002"],
        ],
        dms=SEQ_DMS,
    )
    later_file = changes(
        "20240102-110000000.csv",
        [["U", ts, "1", "seq-1-later-file", "1.00", "20240102100000000000000000000000001"]],
        dms=SEQ_DMS,
    )
    # Change seq beats both row order and file order.
    assert latest(later_file, first_file, dms=SEQ_DMS)[1][0] == "seq-3"


def test_same_timestamp_is_decided_by_file_order_then_row():
    ts = "2024-01-02 10:00:00"
    early = changes("20240102-100000000.csv", [["U", ts, "1", "early-file", "1.00"]])
    late = changes(
        "20240102-100000001.csv",
        [["U", ts, "1", "late-file-row-1", "1.00"], ["U", ts, "1", "late-file-row-2", "1.00"]],
    )
    # Batch order does not matter: the file order does, then the row.
    assert latest(late, early)[1] == ("late-file-row-2", "20240102-100000001.csv", 2)
    assert latest(early, late)[1] == ("late-file-row-2", "20240102-100000001.csv", 2)


def test_full_load_files_order_before_cdc_files_although_their_names_sort_after():
    ts = "2024-01-02 10:00:00"
    load_name, cdc_name = "LOAD00000001.csv", "20240102-100000000.csv"
    assert sorted([load_name, cdc_name]) == [cdc_name, load_name]  # plain name order is wrong
    load = changes(load_name, [[ts, "1", "from-load", "1.00"]])
    cdc = changes(cdc_name, [["U", ts, "1", "from-cdc", "1.00"]])
    assert latest(cdc, load)[1][0] == "from-cdc"
    assert latest(load, cdc)[1][0] == "from-cdc"
    # A full-load row is an insert of the row's state.
    assert load["_op"].to_pylist() == ["I"]


def test_full_load_counters_are_hex_and_numeric():
    ts = "2024-01-02 10:00:00"
    ten = changes("LOAD0000000A.csv", [[ts, "1", "counter-10", "1.00"]])
    sixteen = changes("LOAD00000010.csv", [[ts, "1", "counter-16", "1.00"]])
    nine = changes("LOAD00000009.csv", [[ts, "1", "counter-9", "1.00"]])
    assert latest(sixteen, nine, ten)[1][0] == "counter-16"
    assert latest(nine, ten)[1][0] == "counter-10"


def test_newer_timestamp_in_full_load_still_beats_older_cdc_change():
    load = changes("LOAD00000001.csv", [["2024-01-03 00:00:00", "1", "load-newer", "1.00"]])
    cdc = changes(
        "20240102-100000000.csv", [["U", "2024-01-02 10:00:00", "1", "cdc-older", "1.00"]]
    )
    assert latest(cdc, load)[1][0] == "load-newer"


def test_file_order_text_sorts_in_application_order():
    keys = [
        PREFIX + "20240103-000000000.csv",
        PREFIX + "LOAD00000010.csv",
        PREFIX + "20240102-235959999.csv",
        PREFIX + "LOAD0000000A.csv",
    ]
    orders = file_order(pa.array(keys), DMS).to_pylist()
    ranked = [key.rsplit("/", 1)[1] for _, key in sorted(zip(orders, keys))]
    assert ranked == [
        "LOAD0000000A.csv",
        "LOAD00000010.csv",
        "20240102-235959999.csv",
        "20240103-000000000.csv",
    ]


def test_composite_keys_are_compared_as_a_whole():
    contract = TableContract(
        name="orders",
        schema="public",
        primary_key=("tenant", "id"),
        columns=(Column("tenant", "int"), Column("id", "bigint"), Column("name", "string")),
    )
    batch = changes(
        "20240102-100000000.csv",
        [
            ["I", "2024-01-02 10:00:00", "1", "12", "a"],
            ["I", "2024-01-02 10:00:00", "11", "2", "b"],  # "1|12" vs "11|2": distinct keys
            ["U", "2024-01-02 10:00:01", "1", "12", "a2"],
        ],
        contract=contract,
    )
    newest = newest_per_key(with_position(batch, contract.primary_key, DMS))
    assert sorted((r["tenant"], r["id"], r["name"]) for r in newest.to_pylist()) == [
        (1, 12, "a2"),
        (11, 2, "b"),
    ]
    assert len(set(key_array(batch, contract.primary_key).to_pylist())) == 2


def test_empty_batch_plans_nothing():
    empty = changes("20240102-100000000.csv", [])
    assert newest_per_key(with_position(empty, CONTRACT.primary_key, DMS)).num_rows == 0
    plan = _plan(empty, None)
    assert plan.winners.num_rows == 0 and (
        plan.inserted,
        plan.updated,
        plan.deleted,
        plan.unchanged,
    ) == (0, 0, 0, 0)


# ------------------------------------------------------------------ is_newer


def _positions(rows: list[tuple]) -> pa.Table:
    ts, seq, order, row = zip(*rows)
    table = pa.table(
        {
            "_commit_ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "_change_seq": pa.array(seq, pa.string()),
            FILE_ORDER: pa.array(order, pa.string()),
            "_source_row": pa.array(row, pa.int64()),
        }
    )
    return with_rank(table, LoadHistory.for_dms(DMS))


def test_is_newer_compares_positions_lexicographically_with_nulls_first():
    t1 = datetime(2024, 1, 1, tzinfo=UTC)
    t2 = datetime(2024, 1, 2, tzinfo=UTC)
    cases = [  # (change, stored, expected)
        (
            (t2, None, "1|a", 1),
            (t1, None, "1|z", 9),
            True,
        ),  # later ts wins over everything after it
        ((t1, None, "1|z", 9), (t2, None, "1|a", 1), False),
        ((t1, "2", "1|a", 1), (t1, "1", "1|z", 9), True),  # seq before file order
        ((t1, None, "1|b", 1), (t1, None, "1|a", 9), True),  # file order before row
        ((t1, None, "1|a", 2), (t1, None, "1|a", 1), True),
        ((t1, None, "1|a", 1), (t1, None, "1|a", 1), False),  # the same change is not newer
        ((t1, "1", "1|a", 1), (t1, None, "1|a", 1), True),  # a value beats a null
        ((None, None, "0|a", 5), (t1, None, "0|a", 1), False),  # null ts is oldest
        ((t1, None, "0|a", 1), (None, None, "0|a", 5), True),
    ]
    changes_ = _positions([c for c, _, _ in cases])
    stored = _positions([s for _, s, _ in cases])
    assert is_newer(changes_, stored).tolist() == [e for _, _, e in cases]


# ------------------------------------------------------------------ plan_merge


def _plan(batch: pa.Table, stored: pa.Table | None) -> MergePlan:
    newest = newest_per_key(with_position(batch, CONTRACT.primary_key, DMS))
    if stored is None:
        stored = newest.slice(0, 0).append_column(IS_DELETED, pa.array([], pa.bool_()))
    return plan_merge(newest, stored, INGESTED, CONTRACT.column_names)


def test_plan_merge_counts_inserted_updated_deleted_and_stale():
    day1 = changes(
        "20240102-100000000.csv",
        [
            ["I", "2024-01-02 10:00:00", "1", "one", "1.00"],
            ["I", "2024-01-02 10:00:00", "2", "two", "2.00"],
            ["I", "2024-01-02 10:00:00", "3", "three", "3.00"],
            ["D", "2024-01-02 10:00:01", "4", None, None],
            ["I", "2024-01-02 10:00:00", "5", "five", "5.00"],
            ["I", "2024-01-02 12:00:00", "6", "six-new", "6.00"],
        ],
    )
    first = _plan(day1, None)
    assert (first.inserted, first.updated, first.deleted, first.unchanged) == (5, 0, 1, 0)
    stored = first.winners
    assert stored[IS_DELETED].to_pylist() == [False, False, False, True, False, False]
    assert stored[INGESTED_AT].to_pylist() == [INGESTED.as_py()] * 6

    day2 = changes(
        "20240103-100000000.csv",
        [
            ["U", "2024-01-03 10:00:00", "1", "one-b", "1.50"],  # newer: update
            ["D", "2024-01-03 10:00:00", "2", None, None],  # newer delete of a live row
            ["I", "2024-01-03 10:00:00", "4", "four-again", "4.00"],  # re-insert after tombstone
            ["I", "2024-01-03 10:00:00", "7", "seven", "7.00"],  # new key
            ["D", "2024-01-03 10:00:00", "8", None, None],  # delete of a never-seen key
            ["U", "2024-01-02 11:00:00", "6", "six-old", "6.00"],  # older than stored: stale
        ],
    )
    plan = _plan(day2, stored)
    assert (plan.inserted, plan.updated, plan.deleted, plan.unchanged) == (2, 1, 2, 1)
    winners = {row["id"]: row for row in plan.winners.to_pylist()}
    assert set(winners) == {1, 2, 4, 7, 8}
    assert winners[1]["name"] == "one-b" and not winners[1][IS_DELETED]
    assert winners[2][IS_DELETED] and winners[8][IS_DELETED]
    assert winners[4]["name"] == "four-again" and not winners[4][IS_DELETED]

    # Re-delivering day 1 against the merged state changes nothing.
    merged = pa.concat_tables(
        [
            stored.filter(pa.array([k not in winners for k in stored["id"].to_pylist()])),
            plan.winners,
        ]
    )
    again = _plan(day1, merged)
    assert again.winners.num_rows == 0 and again.unchanged == 6
    # ... nor does re-delivering day 2.
    again = _plan(day2, merged)
    assert again.winners.num_rows == 0 and again.unchanged == 6


def test_plan_merge_same_batch_twice_is_all_stale():
    batch = changes(
        "20240102-100000000.csv",
        [
            ["I", "2024-01-02 10:00:00", "1", "one", "1.00"],
            ["D", "2024-01-02 10:00:01", "1", None, None],
        ],
    )
    first = _plan(batch, None)
    assert (first.inserted, first.deleted) == (0, 1)
    second = _plan(batch, first.winners)
    assert second.winners.num_rows == 0 and second.unchanged == 1


def test_an_older_insert_cannot_resurrect_a_tombstone():
    delete = changes("20240103-100000000.csv", [["D", "2024-01-03 10:00:00", "1", None, None]])
    insert = changes("20240102-100000000.csv", [["I", "2024-01-02 10:00:00", "1", "one", "1.00"]])
    tombstone = _plan(delete, None).winners
    plan = _plan(insert, tombstone)
    assert plan.winners.num_rows == 0 and plan.unchanged == 1 and plan.inserted == 0


def test_winners_are_in_key_order_and_keep_typed_values():
    batch = changes(
        "20240102-100000000.csv",
        [["I", "2024-01-02 10:00:00", str(k), f"n{k}", f"{k}.25"] for k in (5, 3, 9, 1)],
    )
    plan = _plan(batch, None)
    assert plan.winners["id"].to_pylist() == [1, 3, 5, 9]
    assert [str(v) for v in plan.winners["amount"].to_pylist()] == ["1.25", "3.25", "5.25", "9.25"]
    assert np.all(~np.array(plan.winners[IS_DELETED].to_pylist()))


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_newest_per_key_is_independent_of_batch_order(order):
    files = [
        changes("LOAD00000001.csv", [["2024-01-02 09:00:00", "1", "load", "1.00"]]),
        changes("20240102-100000000.csv", [["U", "2024-01-02 10:00:00", "1", "cdc-1", "1.00"]]),
        changes("20240102-110000000.csv", [["D", "2024-01-02 10:00:00", "1", None, None]]),
    ]
    newest = newest_per_key(
        with_position(pa.concat_tables([files[i] for i in order]), ("id",), DMS)
    )
    assert newest["_op"].to_pylist() == ["D"]
    assert newest["_source_file"].to_pylist() == [PREFIX + "20240102-110000000.csv"]
