"""A DMS task's life on real Iceberg tables: changes during the full load, segmented loads,
reloads (under the same names, removing keys, losing to later CDC, in any order), bad files
quarantined without blocking the table, strict mode, and type widening.

Each test writes DMS files into a local lake and runs ``apply_days``, the silver run the
asset makes (ledger, quarantine, listing included)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from lakehouse_assets.contracts import parse_contracts
from lakehouse_assets.dms import DmsFormatError, encode_csv_rows
from lakehouse_assets.lake import open_lake
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for, warehouse_for_lake
from lakehouse_assets.names import TOMBSTONE_HORIZON_PROPERTY
from lakehouse_assets.silver.apply import RunSettings, apply_days
from lakehouse_assets.silver.quarantine import read_quarantine
from lakehouse_assets.silver.tables import (
    SchemaEvolutionError,
    rejects_identifier,
    table_identifier,
)

D1, D2, D3 = date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3)


def contracts(table: str, **dms):
    columns = dms.pop("columns", None) or [
        {"name": "id", "type": "bigint", "nullable": False},
        {"name": "name", "type": "string"},
        {"name": "balance", "type": "decimal(10,2)"},
    ]
    return parse_contracts(
        {
            "dms": {"bucket_folder": "bronze/dms", "date_partition": {"enabled": True}, **dms},
            "tables": {table: {"schema": "public", "primary_key": ["id"], "columns": columns}},
        },
        "test",
    )


class Lake:
    """One table's DMS landing in a lake, and the silver runs of one engine over it."""

    def __init__(self, root: Path, table: str, spark=None, **dms):
        self.contracts = contracts(table, **dms)
        self.contract = self.contracts.table(table)
        self.prefix = f"bronze/dms/public/{table}/"
        self.lake_uri = str(root / "lake")
        self.store = open_lake(self.lake_uri)
        self.catalog = open_catalog(
            sqlite_uri_for(root / "catalog.db"), warehouse_for_lake(self.lake_uri)
        )
        self.spark = spark

    def load(self, name: str, transfer: datetime, rows: list[tuple], landed: datetime) -> str:
        """A LOAD file: rows (id, name, balance) transferred at ``transfer``."""
        text = [[f"{transfer:%Y-%m-%d %H:%M:%S}", str(i), n, b] for i, n, b in rows]
        self.store.put(self.prefix + name, encode_csv_rows(text, self.contracts.dms), landed)
        return self.prefix + name

    def cdc(self, written: datetime, rows: list[list]) -> str:
        """A CDC file named and stored by its write time: rows [op, commit time, id, ...]."""
        key = f"{self.prefix}{written:%Y/%m/%d}/{written:%Y%m%d-%H%M%S}000.csv"
        text = [[op, f"{ts:%Y-%m-%d %H:%M:%S}", *map(_text, rest)] for op, ts, *rest in rows]
        self.store.put(key, encode_csv_rows(text, self.contracts.dms), written)
        return key

    def run(self, *days: date, **settings):
        engine = None
        if self.spark is not None:
            from lakehouse_assets.silver.spark.engine import spark_engine

            engine = spark_engine(self.spark, self.store, self.lake_uri)
        return apply_days(
            self.catalog,
            self.store,
            self.contract,
            self.contracts.dms,
            list(days),
            datetime.now(UTC),
            RunSettings(**settings),
            engine,
        )

    def rows(self) -> dict[int, tuple]:
        """{id: (deleted, name, balance)} of every stored row."""
        table = self.catalog.load_table(table_identifier(self.contract)).scan().to_arrow()
        return {
            row["id"]: (row["_is_deleted"], row["name"], row["balance"] and str(row["balance"]))
            for row in table.to_pylist()
        }

    def live(self) -> dict[int, str]:
        return {key: name for key, (deleted, name, _) in self.rows().items() if not deleted}


@pytest.fixture(scope="module")
def spark_env(tmp_path_factory):
    """One Spark session (its catalog is fixed when it starts) for the module's Spark cases;
    each test has tables of its own."""
    from lakehouse_assets.silver.spark.session import lakehouse_spark_session

    root = tmp_path_factory.mktemp("spark-lifecycle")
    lake_uri = str(root / "lake")
    open_catalog(sqlite_uri_for(root / "catalog.db"), warehouse_for_lake(lake_uri))
    spark = lakehouse_spark_session(
        sqlite_uri_for(root / "catalog.db"), warehouse_for_lake(lake_uri)
    )
    yield root, spark
    spark.stop()


@pytest.fixture(params=["arrow", pytest.param("spark", marks=pytest.mark.spark)])
def make_lake(request, tmp_path):
    """``make_lake(suffix="", **dms)``: the test's table on the engine of this case; the same
    suffix gives the same table (a second contract for it)."""
    if request.param == "spark":
        root, spark = request.getfixturevalue("spark_env")
    else:
        root, spark = tmp_path, None
    base = "acc_" + uuid.uuid4().hex[:8]

    def make(suffix: str = "", **dms) -> Lake:
        return Lake(root, f"{base}{suffix}", spark, **dms)

    return make


def _text(value):
    return None if value is None else str(value)


def at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


# ------------------------------------------------------------------ the full-load window


def test_changes_during_the_load_win_over_its_older_rows(make_lake):
    """DMS reads the table in one snapshot at 10:00 and transfers it until 10:30; changes
    committed meanwhile (a delete among them) reach CDC with earlier timestamps than the
    rows transferred last."""
    lake = make_lake()
    lake.load(
        "LOAD00000001.csv",
        at(D1, 10, 0, 5),
        [(1, "one", "1.00"), (2, "two", "2.00")],
        at(D1, 10, 1),
    )
    lake.load(
        "LOAD00000002.csv",
        at(D1, 10, 30),
        [(5, "five", "5.00"), (6, "six", "6.00")],
        at(D1, 10, 31),
    )
    lake.cdc(
        at(D1, 10, 40),
        [
            ["U", at(D1, 9, 0), 1, "before the load", "9.00"],  # the load already holds it
            ["U", at(D1, 10, 10), 5, "five during the load", "5.50"],
            ["D", at(D1, 10, 20), 6, None, None],
            ["I", at(D1, 10, 15), 99, "new during the load", "0.00"],
        ],
    )
    result = lake.run(D1)
    assert lake.live() == {1: "one", 2: "two", 5: "five during the load", 99: "new during the load"}
    assert lake.rows()[6][0] is True
    assert result.files.new == 3


def test_a_load_crossing_midnight_applied_in_either_order(make_lake):
    """Its LOAD files fall on two partition days; applying the second day first, then the
    first, lowers the load's start and compares the CDC changes again."""

    def build(suffix: str) -> Lake:
        lake = make_lake(suffix)
        lake.load("LOAD00000001.csv", at(D1, 23, 50), [(1, "one", "1.00")], at(D1, 23, 51))
        lake.load("LOAD00000002.csv", at(D2, 0, 20), [(2, "two", "2.00")], at(D2, 0, 21))
        # Committed after the load began (23:49) but before file 2's transfer.
        lake.cdc(at(D2, 0, 30), [["U", at(D1, 23, 55), 2, "two during the load", "2.50"]])
        return lake

    forward = build("f")
    forward.run(D1)
    forward.run(D2)
    backward = build("b")
    backward.run(D2)
    backward.run(D1)
    expected = {1: "one", 2: "two during the load"}
    assert forward.live() == expected and backward.live() == expected


def test_a_segmented_load_is_one_load(make_lake):
    lake = make_lake()
    lake.load("SEGMENT1_LOAD00000001.csv", at(D1, 10, 0), [(1, "a", "1.00")], at(D1, 10, 5))
    lake.load("SEGMENT2_LOAD00000001.csv", at(D1, 10, 1), [(50, "b", "1.00")], at(D1, 10, 6))
    lake.load("SEGMENT1_LOAD00000002.csv", at(D1, 10, 20), [(2, "c", "1.00")], at(D1, 10, 21))
    lake.cdc(at(D1, 11), [["U", at(D1, 10, 10), 2, "c during the load", "1.00"]])
    lake.run(D1)
    assert lake.live() == {1: "a", 50: "b", 2: "c during the load"}


# ------------------------------------------------------------------ reloads


def _reload_landing(lake: Lake) -> None:
    """Day 1: a full load of 1-6 and CDC. Day 2: CDC (insert 7, update 2, delete 3). Day 3:
    the task is restarted with a full load (DROP_AND_CREATE: the same LOAD names), while it
    was stopped 6 and 7 were deleted at the source; then CDC after the reload."""
    lake.cdc(
        at(D1, 12), [["U", at(D1, 11), 1, "one b", "1.10"], ["I", at(D1, 11, 5), 6, "six", "6.00"]]
    )
    lake.cdc(
        at(D2, 12),
        [
            ["I", at(D2, 11), 7, "seven", "7.00"],
            ["U", at(D2, 11, 1), 2, "two b", "2.20"],
            ["D", at(D2, 11, 2), 3, None, None],
        ],
    )
    lake.load(
        "LOAD00000001.csv",
        at(D3, 9, 0),
        [(1, "one b", "1.10"), (2, "two c", "2.30"), (4, "four", "4.00"), (5, "five", "5.00")],
        at(D3, 9, 10),
    )
    lake.cdc(at(D3, 12), [["U", at(D3, 11), 1, "one after the reload", "1.20"]])


EXPECTED_AFTER_RELOAD = {1: "one after the reload", 2: "two c", 4: "four", 5: "five"}


@pytest.mark.parametrize("order", list(itertools.permutations([D1, D2, D3])))
def test_a_reload_removes_keys_and_the_days_apply_in_any_order(make_lake, order):
    lake = make_lake()
    _reload_landing(lake)
    results = [lake.run(day) for day in order]
    assert lake.live() == EXPECTED_AFTER_RELOAD
    rows = lake.rows()
    # Deleted: tombstones, or never stored when their changes came after the reload's barrier.
    assert all(rows[key][0] for key in (3, 6, 7) if key in rows)
    # The reload removes 6 (inserted on day 1) and 7 (day 2) when they were applied before it;
    # applied after it, they are stale and never live.
    live_before = (order.index(D1) < order.index(D3)) + (order.index(D2) < order.index(D3))
    assert sum(result.swept for result in results) == live_before
    # Every day again, in one run: nothing changes.
    again = lake.run(D1, D2, D3, reapply=True)
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
    assert lake.live() == EXPECTED_AFTER_RELOAD


def test_a_reload_loses_to_changes_committed_after_it_began(make_lake):
    lake = make_lake()
    lake.load("LOAD00000001.csv", at(D1, 8), [(1, "one", "1.00"), (2, "two", "2.00")], at(D1, 8, 1))
    lake.cdc(at(D1, 9), [["U", at(D1, 8, 30), 1, "one b", "1.00"]])
    lake.run(D1)
    # The reload's snapshot is taken at ~10:00; file 1 transferred at 10:00, file 2 at 10:30.
    lake.load("LOAD00000001.csv", at(D2, 10, 0), [(1, "one b", "1.00")], at(D2, 10, 1))
    lake.load("LOAD00000002.csv", at(D2, 10, 30), [(2, "two", "2.00")], at(D2, 10, 31))
    lake.cdc(at(D2, 11), [["U", at(D2, 10, 15), 2, "two during the reload", "2.00"]])
    result = lake.run(D2)
    assert lake.live() == {1: "one b", 2: "two during the reload"}
    assert result.files.changed == 1 and result.files.new == 2
    assert result.swept == 0


def test_a_completed_load_sweeps_only_files_that_can_hold_rows_from_before_it(tmp_path):
    """The sweep at a load's completion reads the data files holding rows committed or
    transferred before the load's first transfer, not the load's own files."""
    lake = Lake(tmp_path, "acc_sweep")
    lake.cdc(at(D1, 7), [["I", at(D1, 6), 9, "before the load", "9.00"]])
    lake.run(D1)  # a CDC-only start: 9 is the only row positioned before the load
    # One load crossing midnight: its files land on two days and are merged by two runs.
    lake.load("LOAD00000001.csv", at(D2, 23, 40), [(1, "one", "1.00")], at(D2, 23, 41))
    lake.run(D2)
    lake.load("LOAD00000002.csv", at(D3, 0, 10), [(100, "hundred", "1.00")], at(D3, 0, 11))
    lake.run(D3)
    table = lake.catalog.load_table(table_identifier(lake.contract))
    assert len(list(table.scan().plan_files())) == 3  # 9, the load's 1, the load's 100
    lake.cdc(at(D3, 12), [["U", at(D3, 11), 100, "hundred b", "1.00"]])
    result = lake.run(D3)
    assert lake.live() == {1: "one", 100: "hundred b"}
    assert result.swept == 1
    # The file of 9 (swept) and the file of 100 (its change), not the file of 1.
    assert result.files_scanned == 2


def test_a_reload_is_not_reconciled_while_one_of_its_files_is_quarantined(make_lake):
    lake = make_lake()
    lake.load("LOAD00000001.csv", at(D1, 8), [(1, "one", "1.00"), (2, "two", "2.00")], at(D1, 8, 1))
    lake.cdc(at(D1, 9), [["I", at(D1, 8, 30), 3, "three", "3.00"]])
    lake.run(D1)
    lake.load("LOAD00000001.csv", at(D2, 10), [(1, "one", "1.00")], at(D2, 10, 1))
    bad = lake.prefix + "LOAD00000002.csv"
    lake.store.put(bad, b"2024-05-02 10:05:00,2\n", at(D2, 10, 6))  # too few fields
    lake.cdc(at(D2, 11), [["U", at(D2, 10, 30), 1, "one b", "1.00"]])
    result = lake.run(D2)
    assert result.files.quarantined == 1 and bad in result.quarantined
    assert "line 1" in result.quarantined[bad]
    # 2 and 3 may be in the file that did not read: nothing is deleted yet.
    assert lake.live() == {1: "one b", 2: "two", 3: "three"}
    lake.load("LOAD00000002.csv", at(D2, 10, 5), [(2, "two", "2.00")], at(D2, 10, 7))
    fixed = lake.run(D2)
    assert fixed.files.changed == 1 and fixed.swept == 1  # now complete: 3 is gone
    assert lake.live() == {1: "one b", 2: "two"}
    assert read_quarantine(lake.catalog, lake.contract) == {}


# ------------------------------------------------------------------ bad files


def test_a_bad_file_is_quarantined_blocks_nothing_and_is_applied_once_fixed(make_lake):
    lake = make_lake()
    lake.cdc(at(D1, 10), [["I", at(D1, 9), 1, "one", "1.00"]])
    bad = lake.cdc(at(D1, 11), [["U", at(D1, 10, 30), 1, "one b", "1.00"]])
    lake.store.put(
        bad, b"U,2024-05-01 10:30:00,1,one b\nX,2024-05-01 10:31:00,1,x,1.00\n", at(D1, 11)
    )
    lake.cdc(at(D1, 12), [["I", at(D1, 11, 30), 2, "two", "2.00"]])
    result = lake.run(D1)
    assert lake.live() == {1: "one", 2: "two"}
    assert result.files.quarantined == 1 and result.files.new == 2
    [entry] = read_quarantine(lake.catalog, lake.contract).values()
    assert entry.key == bad and "line 1" in entry.error and "expected 5 fields" in entry.error
    # Unchanged, it is not read again.
    again = lake.run(D1)
    assert again.files.quarantined == 1 and again.changes == 0
    # Fixed (a new version): applied, and the table is as if it had never been bad.
    lake.store.put(
        bad,
        encode_csv_rows([["U", "2024-05-01 10:30:00", "1", "one b", "1.00"]], lake.contracts.dms),
        at(D1, 11),
    )
    fixed = lake.run(D1)
    assert fixed.files.changed == 1 and fixed.updated == 1
    assert lake.live() == {1: "one b", 2: "two"}
    assert read_quarantine(lake.catalog, lake.contract) == {}


def test_deleting_a_quarantined_file_releases_it(make_lake):
    lake = make_lake()
    bad = lake.cdc(at(D1, 11), [["I", at(D1, 10), 1, "one", "1.00"]])
    lake.store.put(bad, b"\xff\xfe not utf-8\n", at(D1, 11))
    lake.run(D1)
    assert set(read_quarantine(lake.catalog, lake.contract)) == {bad}
    (Path(lake.lake_uri) / bad).unlink()
    lake.cdc(at(D1, 12), [["I", at(D1, 11), 2, "two", "2.00"]])
    lake.run(D1)
    assert read_quarantine(lake.catalog, lake.contract) == {}


def test_strict_mode_stops_the_run_naming_file_and_line(make_lake):
    lake = make_lake(on_bad_file="fail")
    lake.cdc(at(D1, 10), [["I", at(D1, 9), 1, "one", "1.00"]])
    bad = lake.cdc(at(D1, 11), [["I", at(D1, 10), 2, "two", "2.00"]])
    lake.store.put(bad, b"I,2024-05-01 10:00:00,2\n", at(D1, 11))
    with pytest.raises(DmsFormatError, match=r"20240501-110000000\.csv, line 1: expected 5 fields"):
        lake.run(D1)
    assert not lake.catalog.table_exists(table_identifier(lake.contract)) or lake.live() == {}


# ------------------------------------------------------------------ type widening


@pytest.mark.parametrize(
    ("before", "after", "value"),
    [
        ("int", "bigint", "3000000000"),
        ("smallint", "bigint", "3000000000"),
        ("real", "double", "0.1234567890123"),
        ("decimal(10,2)", "decimal(14,2)", "123456789012.34"),
    ],
)
def test_a_widened_column_keeps_its_rows_and_takes_wider_values(make_lake, before, after, value):
    def columns(kind: str) -> list:
        return [{"name": "id", "type": "bigint", "nullable": False}, {"name": "v", "type": kind}]

    narrow = make_lake(columns=columns(before))
    narrow.cdc(at(D1, 10), [["I", at(D1, 9), 1, "7"]])
    narrow.run(D1)
    wide = make_lake(columns=columns(after))
    wide.cdc(at(D2, 10), [["I", at(D2, 9), 2, value]])
    wide.run(D2)
    rows = wide.catalog.load_table(table_identifier(wide.contract)).scan().to_arrow()
    values = dict(zip(rows["id"].to_pylist(), rows["v"].to_pylist()))
    assert float(values[1]) == 7 and str(values[2]).startswith(value[:10])


@pytest.mark.parametrize(
    ("before", "after"),
    [("decimal(10,2)", "decimal(12,4)"), ("string", "bytes"), ("bigint", "int")],
)
def test_any_other_retype_is_refused_with_what_to_do(make_lake, before, after):
    def columns(kind: str) -> list:
        return [{"name": "id", "type": "bigint", "nullable": False}, {"name": "v", "type": kind}]

    narrow = make_lake(columns=columns(before))
    narrow.cdc(at(D1, 10), [["I", at(D1, 9), 1, "7"]])
    narrow.run(D1)
    other = make_lake(columns=columns(after))
    other.cdc(at(D2, 10), [["I", at(D2, 9), 2, "8"]])
    with pytest.raises(SchemaEvolutionError, match="can only widen"):
        other.run(D2)


# ------------------------------------------------------------------ the tombstone horizon


def test_a_change_older_than_the_tombstone_horizon_is_rejected_not_applied(make_lake):
    """Maintenance purged the tombstones positioned before the horizon: an older change that
    arrives later cannot be ordered against them, so it must not bring its key back."""
    lake = make_lake()
    lake.cdc(at(D2, 10), [["I", at(D2, 9), 1, "one", "1.00"]])
    lake.run(D2)
    table = lake.catalog.load_table(table_identifier(lake.contract))
    with table.transaction() as transaction:
        transaction.set_properties({TOMBSTONE_HORIZON_PROPERTY: at(D2, 0).isoformat()})
    late = lake.cdc(at(D1, 10), [["I", at(D1, 9), 2, "purged long ago", "2.00"]])
    lake.cdc(at(D2, 11), [["U", at(D2, 10), 1, "one b", "1.00"]])
    first, second = lake.run(D1), lake.run(D2)
    assert lake.live() == {1: "one b"}
    assert first.rejected == 1 and second.rejected == 0
    [reject] = (
        lake.catalog.load_table(rejects_identifier(lake.contract)).scan().to_arrow().to_pylist()
    )
    assert reject["_source_file"] == late and reject["id"] == "2"
    assert reject["_reason"].startswith("positioned before the tombstone horizon 2024-05-02")
