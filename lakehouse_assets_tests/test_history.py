"""History (SCD type 2) on real Iceberg tables: every version of every row, equal to an
independent oracle of versions, whatever the order and repetitions days are applied in;
``as_of`` equals replaying the changes up to a time; a crash between the silver and the
history commits is repaired by the next run."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

from lakehouse_assets.history import as_of
from lakehouse_assets.silver.apply import merge_changes
from lakehouse_assets.silver.history import history_identifier
from lakehouse_assets_tests.test_silver_iceberg import (
    CONTRACT,
    DMS,
    LOAD_MARGIN,
    SEQ_DMS,
    _file_key,
    _name_time,
    histories,
    make_catalog,
    read,
)

HISTORY_CONTRACT = replace(CONTRACT, name="orders_history", history=True)
INGESTED = datetime(2024, 6, 1, tzinfo=UTC)


def _value(value):
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value


def stored_versions(catalog) -> list[tuple]:
    """(key, valid_from, valid_to, deleted, values) of every history row, in order."""
    rows = catalog.load_table(history_identifier(HISTORY_CONTRACT)).scan().to_arrow().to_pylist()
    versions = [
        (
            row["id"],
            row["_valid_from"],
            row["_valid_to"],
            row["_is_deleted"],
            None
            if row["_is_deleted"]
            else tuple(_value(row[n]) for n in ("name", "amount", "created_at")),
        )
        for row in rows
    ]
    return sorted(versions, key=lambda v: (v[0], v[1], v[2] is None, v[2] or v[1], v[3]))


def oracle_versions(files, with_seq: bool) -> list[tuple]:
    """DESIGN.md's order, independently: a load's rows rank at its start (first transfer less
    the margin), CDC by (commit ts, change seq, file, row); copies of one change (same rank,
    commit ts, seq, op, values) are one version; once the load is complete (a CDC file named
    after its last transfer), keys live before its start that it lacks end at its start."""
    loads = [datetime.fromisoformat(row[0]) for is_load, rows in files if is_load for row in rows]
    start = min(loads).replace(tzinfo=UTC) - LOAD_MARGIN if loads else None
    events: dict[tuple, tuple] = {}
    for index, (is_load, rows) in enumerate(files):
        for number, row in enumerate(rows, start=1):
            op, ts, key, *values = ["I", *row] if is_load else row
            seq = values.pop() if with_seq else None
            moment = datetime.fromisoformat(ts).replace(tzinfo=UTC)
            rank = (start, 0) if is_load else (moment, 1)
            values = tuple(values)
            identity = (int(key), rank, moment, seq, op, values)
            position = (*rank, moment, (0, "") if seq is None else (1, seq), index, number)
            if identity not in events or events[identity][0] < position:
                events[identity] = (position, int(key), op, values)
    by_key: dict[int, list] = {}
    for position, key, op, values in events.values():
        by_key.setdefault(key, []).append((position, op, values))
    complete = start is not None and any(
        not is_load and _name_time(index).replace(tzinfo=UTC) > max(loads).replace(tzinfo=UTC)
        for index, (is_load, _) in enumerate(files)
    )
    if complete:
        for timeline in by_key.values():
            timeline.sort()
            before = [event for event in timeline if event[0][0] < start]
            in_load = any(event[0][:2] == (start, 0) for event in timeline)
            if before and before[-1][1] != "D" and not in_load:
                timeline.append(((start, -1), "D", None))  # the sweep: first within the load
    versions = []
    for key, timeline in by_key.items():
        timeline.sort()
        for number, (position, op, values) in enumerate(timeline):
            valid_to = timeline[number + 1][0][0] if number + 1 < len(timeline) else None
            deleted = op == "D"
            versions.append((key, position[0], valid_to, deleted, None if deleted else values))
    return sorted(versions, key=lambda v: (v[0], v[1], v[2] is None, v[2] or v[1], v[3]))


# Fewer examples than the current-state property test: each run also commits the history.
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_history_equals_the_oracle_in_any_order_and_repetition(history):
    files, runs, with_seq = history
    dms = SEQ_DMS if with_seq else DMS
    raws = [
        read(_file_key(index, is_load), rows, HISTORY_CONTRACT, dms)
        for index, (is_load, rows) in enumerate(files)
    ]
    with tempfile.TemporaryDirectory() as root:
        catalog = make_catalog(Path(root))
        for run in runs:
            batch = pa.concat_tables([raws[index] for index in run])
            merge_changes(catalog, HISTORY_CONTRACT, dms, batch, ingested_at=INGESTED)
        expected = oracle_versions(files, with_seq)
        if not catalog.table_exists(history_identifier(HISTORY_CONTRACT)):
            assert expected == []
            return
        got = stored_versions(catalog)
        assert got == [(k, f, t, d, v) for k, f, t, d, v in expected]
        # Everything once more, as one batch: the same history.
        merge_changes(catalog, HISTORY_CONTRACT, dms, pa.concat_tables(raws), ingested_at=INGESTED)
        assert stored_versions(catalog) == got


def _ts(day: int, hour: int) -> str:
    return f"2024-01-{day:02d} {hour:02d}:00:00"


def _cdc(day: int, clock: str = "100000000") -> str:
    return f"bronze/dms/public/orders_history/2024/01/{day:02d}/202401{day:02d}-{clock}.csv"


def _row(op: str, day: int, hour: int, key: int, name: str | None = "n") -> list:
    if op == "D":
        return ["D", _ts(day, hour), str(key), None, None, None]
    return [op, _ts(day, hour), str(key), name, "1.00", None]


def _merge(catalog, key: str, rows: list[list]) -> None:
    merge_changes(catalog, HISTORY_CONTRACT, DMS, read(key, rows, HISTORY_CONTRACT), INGESTED)


def _at(day: int, hour: int) -> datetime:
    return datetime(2024, 1, day, hour, tzinfo=UTC)


def _seven_then_a_load_of_one(catalog) -> None:
    """Key 7 inserted on day 1, then a full load (transferred on day 2 at 09:00) of key 1
    alone: once the load completes, 7 is a key it lacks."""
    load = f"bronze/dms/public/{HISTORY_CONTRACT.name}/LOAD00000001.csv"
    _merge(catalog, _cdc(1), [_row("I", 1, 8, 7, "seven")])
    rows = read(load, [[_ts(2, 9), "1", "loaded", "1.00", None]], HISTORY_CONTRACT)
    merge_changes(catalog, HISTORY_CONTRACT, DMS, rows, INGESTED)


def _merge_crashing_before_history(monkeypatch, catalog, key: str, rows: list[list]) -> None:
    """Merge ``rows`` in a run whose process dies after the silver commit, before history's."""

    def crash(*args, **kwargs):
        raise RuntimeError("the process died after the silver commit")

    with monkeypatch.context() as patched:
        patched.setattr("lakehouse_assets.silver.apply.merge_history", crash)
        with pytest.raises(RuntimeError, match="died"):
            _merge(catalog, key, rows)


def test_insert_update_delete_insert_and_a_late_change_in_the_middle(tmp_path):
    catalog = make_catalog(tmp_path)
    _merge(catalog, _cdc(2), [_row("I", 2, 10, 1, "v1"), _row("U", 2, 11, 1, "v2")])
    _merge(catalog, _cdc(4), [_row("D", 4, 10, 1), _row("I", 4, 12, 1, "v4")])
    # Day 3 arrives late: its update goes between v2 and the delete, fixing both ends.
    _merge(catalog, _cdc(3), [_row("U", 3, 10, 1, "v3")])
    got = [(v[1], v[2], v[3], v[4] and v[4][0]) for v in stored_versions(catalog)]
    assert got == [
        (_at(2, 10), _at(2, 11), False, "v1"),
        (_at(2, 11), _at(3, 10), False, "v2"),
        (_at(3, 10), _at(4, 10), False, "v3"),
        (_at(4, 10), _at(4, 12), True, None),
        (_at(4, 12), None, False, "v4"),
    ]
    # A redelivered change adds nothing.
    _merge(catalog, _cdc(5, "090000000"), [_row("U", 3, 10, 1, "v3")])
    assert [(v[1], v[4] and v[4][0]) for v in stored_versions(catalog)][2] == (_at(3, 10), "v3")
    assert len(stored_versions(catalog)) == 5
    # as_of equals replaying the changes up to each time.
    names = {
        _at(2, 10) - timedelta(minutes=1): [],
        _at(2, 10): ["v1"],
        _at(3, 9): ["v2"],
        _at(3, 12): ["v3"],
        _at(4, 11): [],
        _at(5, 0): ["v4"],
    }
    for moment, expected in names.items():
        assert as_of(catalog, "orders_history", moment)["name"].to_pylist() == expected, moment


def test_full_load_versions_start_at_the_loads_start_and_a_reload_ends_removed_keys(tmp_path):
    catalog = make_catalog(tmp_path)
    _seven_then_a_load_of_one(catalog)
    _merge(catalog, _cdc(2, "120000000"), [_row("U", 2, 9, 1, "during the load")])
    start = _at(2, 9) - LOAD_MARGIN
    got = [(v[0], v[1], v[2], v[3], v[4] and v[4][0]) for v in stored_versions(catalog)]
    assert got == [
        (1, start, _at(2, 9), False, "loaded"),
        (1, _at(2, 9), None, False, "during the load"),
        (7, _at(1, 8), start, False, "seven"),
        (7, start, None, True, None),  # the completed load no longer holds 7
    ]
    assert as_of(catalog, "orders_history", _at(2, 8))["id"].to_pylist() == [7]


def test_a_crash_between_the_silver_and_the_history_commits_is_repaired(tmp_path, monkeypatch):
    catalog = make_catalog(tmp_path)
    _merge(catalog, _cdc(2), [_row("I", 2, 10, 1, "v1")])
    batch = [_row("U", 3, 10, 1, "v2")]
    _merge_crashing_before_history(monkeypatch, catalog, _cdc(3), batch)
    assert len(stored_versions(catalog)) == 1  # silver has v2, history does not
    # The ledger is written after both commits, so the next run applies the file again.
    _merge(catalog, _cdc(3), batch)
    assert [v[4][0] for v in stored_versions(catalog)] == ["v1", "v2"]


def test_a_crash_in_the_run_completing_a_load_is_repaired(tmp_path, monkeypatch):
    """The run that completes a load crashes after the silver commit: silver already knows the
    load is complete, history does not, and the repairing run still ends the keys the load
    lacks (history keeps the loads it absorbed itself)."""
    catalog = make_catalog(tmp_path)
    _seven_then_a_load_of_one(catalog)
    completing = [_row("U", 2, 10, 1, "after the load")]
    _merge_crashing_before_history(monkeypatch, catalog, _cdc(2, "120000000"), completing)
    _merge(catalog, _cdc(2, "120000000"), completing)
    start = _at(2, 9) - LOAD_MARGIN
    got = [(v[0], v[1], v[2], v[3]) for v in stored_versions(catalog)]
    assert got == [
        (1, start, _at(2, 10), False),
        (1, _at(2, 10), None, False),
        (7, _at(1, 8), start, False),
        (7, start, None, True),  # the sweep, though silver had completed the load already
    ]


@pytest.mark.spark
def test_the_engines_write_the_same_history(tmp_path):
    """The same bronze (CDC days, a late day, a redelivery, then a reload that no longer holds
    one key and a change after it), applied day by day by each engine, in different orders,
    into its own catalog: the same history, value for value."""
    from lakehouse_assets.contracts import parse_contracts
    from lakehouse_assets.dms import encode_csv_rows
    from lakehouse_assets.lake import open_lake
    from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for, warehouse_for_lake
    from lakehouse_assets.silver.apply import apply_days
    from lakehouse_assets.silver.spark.engine import spark_engine
    from lakehouse_assets.silver.spark.session import lakehouse_spark_session

    contracts = parse_contracts(
        {
            "dms": {"date_partition": {"enabled": True}},
            "tables": {
                "subs": {
                    "schema": "public",
                    "primary_key": ["id"],
                    "history": True,
                    "columns": [
                        {"name": "id", "type": "bigint", "nullable": False},
                        {"name": "price", "type": "decimal(10,2)"},
                    ],
                }
            },
        },
        "test",
    )
    contract, dms = contracts.table("subs"), contracts.dms
    lake_uri = str(tmp_path / "lake")
    store = open_lake(lake_uri)

    def put(key: str, rows: list[list], day: int, hour: int) -> None:
        store.put("bronze/dms/public/subs/" + key, encode_csv_rows(rows, dms), _at(day, hour))

    put(
        "2024/01/01/20240101-120000000.csv",
        [["I", _ts(1, 9), "1", "10.00"], ["I", _ts(1, 10), "2", "20.00"]],
        1,
        12,
    )
    put("2024/01/02/20240102-100000000.csv", [["I", _ts(2, 9), "3", "30.00"]], 2, 10)
    put("2024/01/03/20240103-100000000.csv", [["U", _ts(3, 9), "2", "22.00"]], 3, 10)
    put("2024/01/03/20240103-110000000.csv", [["U", _ts(3, 9), "2", "22.00"]], 3, 11)  # again
    # Day 4: the task reloads the table (3 was deleted while it was stopped), then a change.
    put("LOAD00000001.csv", [[_ts(4, 9), "1", "11.00"], [_ts(4, 9), "2", "22.00"]], 4, 9)
    put("2024/01/04/20240104-120000000.csv", [["U", _ts(4, 11), "1", "12.00"]], 4, 12)

    def timeline(catalog) -> list[tuple]:
        rows = catalog.load_table(history_identifier(contract)).scan().to_arrow().to_pylist()
        return sorted(
            (r["id"], r["_valid_from"], r["_valid_to"], r["_is_deleted"], r["price"], r["_op"])
            for r in rows
        )

    def catalog_in(root: Path):
        return open_catalog(sqlite_uri_for(root / "catalog.db"), warehouse_for_lake(lake_uri))

    arrow_catalog = catalog_in(tmp_path / "arrow")
    for day in (1, 3, 2, 4):
        apply_days(arrow_catalog, store, contract, dms, [_at(day, 0).date()], INGESTED)
    spark_catalog = catalog_in(tmp_path / "spark")
    spark = lakehouse_spark_session(
        sqlite_uri_for(tmp_path / "spark" / "catalog.db"), warehouse_for_lake(lake_uri)
    )
    try:
        engine = spark_engine(spark, store, lake_uri)
        for day in (4, 2, 1, 3):
            apply_days(
                spark_catalog, store, contract, dms, [_at(day, 0).date()], INGESTED, engine=engine
            )
    finally:
        spark.stop()

    arrow_history = timeline(arrow_catalog)
    assert timeline(spark_catalog) == arrow_history
    reload_start = _at(4, 9) - LOAD_MARGIN
    assert (3, reload_start, None, True, Decimal("30.00"), "D") in arrow_history  # the sweep
    assert (2, _at(3, 9), reload_start, False, Decimal("22.00"), "U") in arrow_history  # once


def test_a_past_days_mrr_keeps_the_price_it_had_after_a_later_price_change(tmp_path):
    from datetime import date

    from lakehouse_assets.contracts import load_contracts
    from lakehouse_assets.gold.summaries import SUMMARIES, Window, compute_summary

    contracts = load_contracts()
    subscriptions = contracts.table("core_subscription")
    catalog = make_catalog(tmp_path)
    key = "bronze/dms/public/core_subscription/2024/01/{d:02d}/202401{d:02d}-230000000.csv"

    def change(op: str, day: int, price: str) -> list:
        return [
            op,
            _ts(day, 12),
            "1",
            "1",
            "1",
            "pro",
            "active",
            price,
            "month",
            "2",
            "2024-01-01 09:00:00",
            "2024-02-01",
            None,
            "2024-01-01 09:00:00",
            _ts(day, 12),
        ]

    def apply(day: int, op: str, price: str) -> None:
        raw = read(key.format(d=day), [change(op, day, price)], subscriptions, contracts.dms)
        merge_changes(catalog, subscriptions, contracts.dms, raw, INGESTED)

    mrr = next(summary for summary in SUMMARIES if summary.name == "mrr")

    def mrr_of(day: int) -> Decimal:
        window = Window(date(2024, 1, day), date(2024, 1, day + 1))
        rows, _ = compute_summary(mrr, catalog, window)
        return rows["mrr"][0].as_py()

    apply(2, "I", "29.00")
    assert mrr_of(2) == Decimal("58.00")  # 29.00 x 2 seats
    apply(5, "U", "49.00")  # a price change three days later
    assert (mrr_of(2), mrr_of(4), mrr_of(5)) == (
        Decimal("58.00"),
        Decimal("58.00"),
        Decimal("98.00"),
    )
    apply(3, "U", "39.00")  # and a change that arrives late, in the middle
    assert [mrr_of(day) for day in (2, 3, 4, 5)] == [
        Decimal(v) for v in ("58.00", "78.00", "78.00", "98.00")
    ]
