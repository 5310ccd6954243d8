"""The Spark engine gives the arrow engine's silver tables, value for value.

Both engines merge the same DMS files (small CSV texts, as in test_silver_iceberg.py,
and the demo landing); every table is compared row by row, tombstones and metadata
included, plus the rejects and the merge counts. Tables written by one engine are
merged further by the other, in both directions.

One local Spark session (local[2]) serves the module: its Iceberg JDBC catalog
``lakehouse`` points at one SQLite catalog here, so every test uses its own table
names. The arrow engine writes to a per-test catalog, or to the shared one when
the engines take turns on a table. Needs ``scripts/install_spark.sh``.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from dataclasses import replace
from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog

from lakehouse_assets.bronze.files import list_partition_files
from lakehouse_assets.contracts import (
    Column,
    DmsSettings,
    TableContract,
    load_contracts,
)
from lakehouse_assets.demo.simulator import generate
from lakehouse_assets.dms import DmsFormatError, parse_object_key, read_dms_files
from lakehouse_assets.lake import open_lake
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for, warehouse_for_lake
from lakehouse_assets.silver.apply import merge_changes
from lakehouse_assets.silver.result import MergeResult
from lakehouse_assets.silver.spark.engine import spark_merge_changes
from lakehouse_assets.silver.spark.reader import BronzeFileRef, spark_uri
from lakehouse_assets.silver.spark.session import lakehouse_spark_session
from lakehouse_assets.silver.spark.typing import SparkEngineUnsupported
from lakehouse_assets.silver.tables import rejects_identifier, table_identifier
from lakehouse_assets_tests.test_silver_iceberg import CONTRACT as ORDERS
from lakehouse_assets_tests.test_silver_iceberg import DMS, INGESTED

pytestmark = pytest.mark.spark
COUNTS = (
    "changes",
    "inserted",
    "updated",
    "deleted",
    "unchanged",
    "redelivered",
    "swept",
    "rejected",
)


# ------------------------------------------------------------------ the shared Spark session


class SparkEnv:
    def __init__(self, root: Path):
        self.root = root
        self.lake = root / "lake"
        self.catalog_uri = sqlite_uri_for(root / "catalog.db")
        self.warehouse = warehouse_for_lake(str(self.lake))
        self.catalog = open_catalog(
            self.catalog_uri, self.warehouse
        )  # pyiceberg creates the catalog tables
        self.spark = lakehouse_spark_session(self.catalog_uri, self.warehouse)

    def put(self, key: str, data: bytes) -> None:
        path = self.lake / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def spark_merge(
        self,
        contract: TableContract,
        dms: DmsSettings,
        keys: list[str],
        catalog: Catalog | None = None,
    ) -> MergeResult:
        refs = [BronzeFileRef(key, spark_uri(str(self.lake), key)) for key in keys]
        return spark_merge_changes(
            self.spark, catalog or self.catalog, contract, dms, refs, INGESTED
        )

    def arrow_merge(
        self, catalog: Catalog, contract: TableContract, dms: DmsSettings, keys: list[str]
    ) -> MergeResult:
        raw = read_dms_files([(key, (self.lake / key).read_bytes()) for key in keys], contract, dms)
        return merge_changes(catalog, contract, dms, raw, ingested_at=INGESTED)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> SparkEnv:
    environment = SparkEnv(tmp_path_factory.mktemp("spark"))
    yield environment
    environment.spark.stop()


def own_catalog(tmp_path: Path) -> Catalog:
    return open_catalog(
        sqlite_uri_for(tmp_path / "arrow.db"), warehouse_for_lake(str(tmp_path / "arrow-lake"))
    )


# ------------------------------------------------------------------ comparing tables


def _plain(value):
    if isinstance(value, float) and math.isnan(value):
        return "NaN"  # NaN != NaN; the same NaN in both tables is equal here
    return value


def table_rows(catalog: Catalog, identifier: str, order: tuple[str, ...]) -> list[dict]:
    if not catalog.table_exists(identifier):
        return []
    rows = catalog.load_table(identifier).scan().to_arrow().to_pylist()
    rows = [{name: _plain(value) for name, value in row.items()} for row in rows]
    return sorted(
        rows, key=lambda row: tuple((row[name] is None, str(row[name])) for name in order)
    )


def assert_same_tables(
    arrow_catalog: Catalog, spark_catalog: Catalog, contract: TableContract
) -> list[dict]:
    silver = table_identifier(contract)
    expected = table_rows(arrow_catalog, silver, contract.primary_key)
    actual = table_rows(spark_catalog, silver, contract.primary_key)
    assert len(actual) == len(expected), (actual, expected)
    for want, got in zip(expected, actual):
        assert got == want, f"{silver}: spark {got} != arrow {want}"
    reject_order = ("_source_file", "_source_row")
    assert table_rows(spark_catalog, rejects_identifier(contract), reject_order) == table_rows(
        arrow_catalog, rejects_identifier(contract), reject_order
    )
    return actual


def counts(result: MergeResult) -> tuple:
    return tuple(getattr(result, name) for name in COUNTS)


def snapshots(catalog: Catalog, contract: TableContract) -> list[int]:
    return [s.snapshot_id for s in catalog.load_table(table_identifier(contract)).snapshots()]


# ------------------------------------------------------------------ DMS files


def dms_text(rows: list[list], delimiter: str = ",", null: str = "") -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(
        [[null if value is None else value for value in row] for row in rows]
    )
    return out.getvalue().encode()


def prefix(contract: TableContract, dms: DmsSettings = DMS) -> str:
    return f"{dms.bucket_folder}/{contract.schema}/{contract.name}/"


def cdc(contract: TableContract, day: date, clock: str = "100000000", gz: bool = False) -> str:
    return f"{prefix(contract)}{day:%Y/%m/%d}/{day:%Y%m%d}-{clock}.csv{'.gz' if gz else ''}"


def load(contract: TableContract, name: str = "LOAD00000001.csv") -> str:
    return f"{prefix(contract)}{name}"


def order(
    op: str,
    ts: str,
    key: int,
    name: str | None = None,
    amount: str | None = "1.00",
    created: str | None = "2024-01-15 08:00:00",
) -> list:
    if op == "D":
        return ["D", ts, str(key), None, None, None]
    return [op, ts, str(key), name if name is not None else f"n{key}", amount, created]


def run_both(
    env: SparkEnv,
    arrow_catalog: Catalog,
    contract: TableContract,
    dms: DmsSettings,
    batches: list[dict[str, bytes]],
) -> list[tuple[MergeResult, MergeResult]]:
    """Write each batch's files, merge it with both engines, compare the tables after each."""
    results = []
    for batch in batches:
        for key, data in batch.items():
            env.put(key, data)
        keys = list(batch)
        arrow = env.arrow_merge(arrow_catalog, contract, dms, keys)
        spark = env.spark_merge(contract, dms, keys)
        assert counts(spark) == counts(arrow), (spark, arrow)
        assert spark.max_commit_ts == arrow.max_commit_ts
        assert spark.touched_dates == arrow.touched_dates
        assert_same_tables(arrow_catalog, env.catalog, contract)
        results.append((arrow, spark))
    return results


# ------------------------------------------------------------------ file order


def test_stored_file_order_is_the_readers_order(env):
    """Spark stores each row's ``_file_order`` as dms/keys.py computes it for its file: the one
    definition the MERGE condition compares with, for every kind of key."""
    contract = replace(ORDERS, name="orders_file_order", partition_by=None)
    names = [
        "LOAD00000001.csv",
        "LOAD0000000A.csv",
        "LOAD00000010.csv",
        "SEGMENT2_LOAD00000003.csv",
        "SEGMENT012_LOAD000000FF.csv",
        "sub/folder/LOAD00000002.csv",
        "2024/01/02/20240102-101500000.csv",
        "2024/01/02/20240102-1015.csv",
        "2024/01/02/20240102-10150012345678999.csv",
    ]
    keys = []
    for index, name in enumerate(names, start=1):
        key = f"bronze/dms/public/{contract.name}/{name}"
        op = [] if "LOAD" in name else ["I"]
        env.put(key, dms_text([[*op, "2024-01-02 10:00:00", str(index), name, None, None]]))
        keys.append(key)
    env.spark_merge(contract, DMS, keys)
    rows = table_rows(env.catalog, table_identifier(contract), ("id",))
    assert len(rows) == len(names)
    for row in rows:
        assert row["_file_order"] == parse_object_key(row["_source_file"], DMS).order_text


# ------------------------------------------------------------------ edge cases, both engines


def test_lifecycle_quoting_idempotence_and_late_days(env, tmp_path):
    contract = replace(ORDERS, name="orders_lifecycle")
    day2 = {
        cdc(contract, date(2024, 1, 2)): dms_text(
            [
                order("I", "2024-01-02 10:00:00", 1, "v1", "1.00"),
                order("U", "2024-01-02 10:00:00", 1, 'v2, with "quotes"\nand a newline', "2.00"),
                order("D", "2024-01-02 10:00:01", 1),
                order("I", "2024-01-02 10:00:01", 1, "v4", "4.00"),
                order("I", "2024-01-02 10:00:00", 2, "x", None, None),
                order("D", "2024-01-02 10:00:00", 2),
                order("I", "2024-01-02 10:00:00", 3, "", "-0.01", "2024-02-29 23:59:59.999999"),
                order(
                    "U", "2024-01-02 10:00:00.5", 4, "ü €", "99999999.99", "2024-01-01 00:00:00.5"
                ),
            ]
        )
    }
    day3 = {
        cdc(contract, date(2024, 1, 3)): dms_text(
            [
                order("D", "2024-01-03 09:00:00", 3),
                order("U", "2024-01-03 09:00:00", 4, "moved", "0.5", "2024-03-10 00:00:00"),
            ]
        )
    }
    day1_late = {
        cdc(contract, date(2024, 1, 1)): dms_text(
            [
                order(
                    "I", "2024-01-01 10:00:00", 3, "resurrected?"
                ),  # older than the delete of day 3
                order("I", "2024-01-01 10:00:00", 5, "new"),
            ]
        )
    }
    catalog = own_catalog(tmp_path)
    results = run_both(
        env, catalog, contract, DMS, [day2, day3, day2, day1_late, {**day2, **day3, **day1_late}]
    )
    assert counts(results[0][1])[1:4] == (3, 0, 1)
    again_before = results[2][1]  # day 2 re-applied after day 3: nothing newer
    assert (again_before.inserted, again_before.updated, again_before.deleted) == (0, 0, 0)
    assert counts(results[4][1])[1:5] == (0, 0, 0, 5)
    rows = {row["id"]: row for row in table_rows(env.catalog, table_identifier(contract), ("id",))}
    assert rows[3]["_is_deleted"] and rows[2]["_is_deleted"] and not rows[5]["_is_deleted"]
    assert rows[4]["name"] == "moved" and rows[1]["name"] == "v4"
    # The last two runs changed nothing: no new snapshot on either side of the tie.
    assert len(snapshots(env.catalog, contract)) == len(snapshots(catalog, contract)) == 3


def test_full_load_segments_sub_folders_and_overlapping_cdc(env, tmp_path):
    contract = replace(ORDERS, name="orders_load", partition_by=None)
    at = "2024-01-02 09:00:00"
    batches = [
        {
            cdc(contract, date(2024, 1, 2)): dms_text(
                [
                    order(
                        "U", "2024-01-02 08:50:00", 1, "older-than-load"
                    ),  # before the load began
                    order("U", at, 2, "same-ts-as-load"),  # tie: CDC file after LOAD
                ]
            )
        },
        {
            load(contract, "LOAD00000009.csv"): dms_text(
                [[at, "1", "load-9", "1.00", None], [at, "3", "l9", None, None]]
            ),
            load(contract, "LOAD0000000A.csv"): dms_text(
                [[at, "3", "load-A wins over 9", None, None]]
            ),
            load(contract, "SEGMENT2_LOAD00000001.csv"): dms_text(
                [[at, "2", "seg", "2.00", None], [at, "4", "seg2", None, None]]
            ),
            load(contract, "sub/LOAD00000001.csv"): dms_text([[at, "4", "sub-folder", None, None]]),
        },
    ]
    run_both(env, own_catalog(tmp_path), contract, DMS, batches)
    rows = {row["id"]: row for row in table_rows(env.catalog, table_identifier(contract), ("id",))}
    assert [rows[k]["name"] for k in (1, 2, 3)] == [
        "load-9",
        "same-ts-as-load",
        "load-A wins over 9",
    ]


def test_change_seq_op_in_full_load_gzip_and_another_delimiter(env, tmp_path):
    dms = replace(DMS, change_seq_column=True, include_op_for_full_load=True, delimiter=";")
    contract = replace(ORDERS, name="orders_seq")
    seq = [f"20240102100000{n:021d}" for n in (1, 2, 3)]
    at = "2024-01-02 10:00:00"
    rows_day2 = [
        ["U", at, "1", "seq-3; wins", "3.00", None, seq[2]],
        ["U", at, "1", "seq-1", "1.00", None, seq[0]],
        ["I", at, "2", "no seq", None, None, None],
        ["U", at, "2", "seq beats none", None, None, seq[0]],
        ["D", at, "3", None, None, None, seq[1]],
    ]
    batches = [
        {
            load(contract, "LOAD00000001.csv.gz"): gzip.compress(
                dms_text(
                    [["I", at, "3", "loaded", "9.99", "2024-01-01 00:00:00", None]], delimiter=";"
                )
            )
        },
        {
            cdc(contract, date(2024, 1, 2), gz=True): gzip.compress(
                dms_text(rows_day2, delimiter=";")
            )
        },
    ]
    run_both(env, own_catalog(tmp_path), contract, dms, batches)
    rows = {row["id"]: row for row in table_rows(env.catalog, table_identifier(contract), ("id",))}
    assert (
        rows[1]["name"] == "seq-3; wins"
        and rows[2]["name"] == "seq beats none"
        and rows[3]["_is_deleted"]
    )


def test_null_value_setting(env, tmp_path):
    dms = replace(DMS, null_value="NULL")
    contract = replace(ORDERS, name="orders_nulls")
    text = (
        b"I,2024-01-02 10:00:00,1,NULL,NULL,NULL\n"
        b'I,2024-01-02 10:00:00,2,"NULL",1.00,2024-01-01 00:00:00\n'
        b'I,2024-01-02 10:00:00,3,"",2.00,NULL\n'
    )
    run_both(env, own_catalog(tmp_path), contract, dms, [{cdc(contract, date(2024, 1, 2)): text}])
    rows = {row["id"]: row for row in table_rows(env.catalog, table_identifier(contract), ("id",))}
    assert rows[1]["name"] is None and rows[2]["name"] is None and rows[3]["name"] == ""


def test_composite_key(env, tmp_path):
    contract = TableContract(
        name="keyed_pairs",
        schema="public",
        primary_key=("tenant", "code"),
        columns=(
            Column("tenant", "int", nullable=False),
            Column("code", "string", nullable=False),
            Column("v", "string"),
        ),
    )

    def day(n):
        return cdc(contract, date(2024, 1, n))

    batches = [
        {
            day(1): dms_text(
                [
                    ["I", "2024-01-01 10:00:00", "1", "a", "x"],
                    ["I", "2024-01-01 10:00:00", "1", "b", "y"],
                    ["I", "2024-01-01 10:00:00", "2", "a", "z"],
                ]
            )
        },
        {
            day(2): dms_text(
                [
                    ["U", "2024-01-02 10:00:00", "1", "a", "x2"],
                    ["D", "2024-01-02 10:00:00", "2", "a", None],
                ]
            )
        },
    ]
    run_both(env, own_catalog(tmp_path), contract, DMS, batches)


def test_rejects_match_and_are_replaced_per_file(env, tmp_path):
    contract = replace(
        ORDERS,
        name="orders_rejects",
        columns=(
            *ORDERS.columns,
            Column("qty", "smallint", nullable=False),
            Column("note", "json"),
        ),
    )
    key2, key3 = cdc(contract, date(2024, 1, 2)), cdc(contract, date(2024, 1, 3))
    ok = ["I", "2024-01-02 10:00:00", "1", "ok", "1.00", None, "1", '{"a": 1}']
    batches = [
        {
            key2: dms_text(
                [
                    ok,
                    [
                        "I",
                        "2024-01-02 10:00:00",
                        "2",
                        "two",
                        "1.234",
                        None,
                        "1",
                        None,
                    ],  # too many decimals
                    [
                        "I",
                        "2024-01-02 10:00:00",
                        "3",
                        "three",
                        "1.00",
                        None,
                        None,
                        None,
                    ],  # required but empty
                    [
                        "I",
                        "2024-01-02 10:00:00",
                        "4",
                        "it's",
                        "x'y",
                        "2024-13-01",
                        "1",
                        None,
                    ],  # first bad column wins
                    ["I", "2024-01-02 10:00:00", "5", "five", "1.00", None, "40000", "NaN"],
                    [
                        "D",
                        "2024-01-02 10:00:00",
                        "6",
                        None,
                        "garbage",
                        None,
                        None,
                        "{bad",
                    ],  # deletes need only a key
                    ["I", "2024-01-02 10:00:00", "x7", "seven", None, None, "1", None],  # bad key
                ]
            )
        },
        {key3: dms_text([["I", "2024-01-03 10:00:00", "8", "eight", "oops", None, "1", None]])},
        {
            key2: dms_text(
                [ok, ["I", "2024-01-02 10:00:00", "2", "two", "1.23", None, "1", "[1, 2]"]]
            )
        },  # corrected
    ]
    results = run_both(env, own_catalog(tmp_path), contract, DMS, batches)
    assert results[0][1].rejected == 5 and results[2][1].rejected == 0
    rejects = table_rows(env.catalog, rejects_identifier(contract), ("_source_file", "_source_row"))
    assert [r["_source_file"] for r in rejects] == [key3]
    assert rejects[0]["_reason"] == "column 'amount': 'oops' is not a valid decimal(10,2)"


ALL_TYPES = {  # values casting.py accepts and rejects, per type
    "smallint": ["3", "-32768", "32767", "32768", "+1", " 1", "1.0", "0x10", "-0x10", "01"],
    "int": ["70000", "-1", "2147483648", "1e3", ""],
    "bigint": ["9000000000", "9223372036854775807", "9223372036854775808", "0X1f", "abc"],
    "decimal(10,2)": [
        "12.5",
        "-0.01",
        "1.230",
        "1.234",
        "+1.5",
        ".5",
        "5.",
        "1e2",
        "1E-2",
        "99999999.99",
        "999999999.99",
        " 1",
        "NaN",
        "1,5",
    ],
    "real": ["1.5", "NaN", "-inf", "1e39", "3.4e38", "x"],
    "double": [
        "2.25",
        "-0.5",
        "Infinity",
        "nan",
        "-nan",
        "+inf",
        ".5",
        "5.",
        "1E+5",
        "1.5d",
        "0x10",
        " 1",
        "1e400",
    ],
    "boolean": ["t", "f", "T", "true", "FALSE", "1", "0", "yes", "n"],
    "string": ['with, comma "and quotes"', "ü", " padded "],
    "date": [
        "2024-01-31",
        "2024-02-29",
        "2023-02-29",
        "2024-1-5",
        "20240105",
        "2024-01-05 00:00:00",
    ],
    "timestamp": [
        "2024-01-02 03:04:05.678",
        "2024-01-02T03:04:05",
        "2024-01-02",
        "2024-01-02 03",
        "2024-01-02 03:04",
        "2024-01-02 03:04:05.1234567",
        "2024-01-02 24:00:00",
        "2024-01-02 03:04:60",
        "2024-01-02 03:04:05Z",
        "2024-01-02 3:04:05",
        "2024-02-30 00:00:00",
    ],
    "timestamptz": [
        "2024-01-02 03:04:05+01:00",
        "2023-12-31 23:59:59",
        "2024-01-02 03:04:05Z",
        "2024-01-02 03:04:05+0130",
        "2024-01-02 03:04:05-05",
        "2024-01-02",
        "2024-01-02 03",
        "2024-01-02 03:04:05 +01:00",
        "2024-01-02 03:04:05+1",
        "2024-01-02T03:04:05.5-0530",
    ],
    "json": [
        '{"a": [1, 2]}',
        "[]",
        "1",
        '"x"',
        "null",
        " {} ",
        "NaN",
        "[1,]",
        "{'a': 1}",
        '{"a": 1}x',
        "Infinity",
    ],
    "uuid": [
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        "a0eebc99",
    ],
    "bytes": ["\\xdeadbeef", "\\x", "ab", "\\xabc", "xab", "\\xZZ"],
}


def test_every_type_is_typed_and_rejected_alike(env, tmp_path):
    columns = [Column("id", "bigint", nullable=False)]
    columns += [Column(f"c_{kind.split('(')[0]}", kind) for kind in ALL_TYPES]
    contract = TableContract(
        name="typed_values", schema="public", primary_key=("id",), columns=tuple(columns)
    )
    rows, key = [], 0
    for index, values in enumerate(ALL_TYPES.values(), start=1):
        for value in values:
            key += 1
            row = ["I", "2024-01-02 10:00:00", str(key)] + [None] * len(ALL_TYPES)
            row[2 + index] = value
            rows.append(row)
    results = run_both(
        env,
        own_catalog(tmp_path),
        contract,
        DMS,
        [{cdc(contract, date(2024, 1, 2)): dms_text(rows)}],
    )
    spark = results[0][1]
    assert 0 < spark.rejected < key and spark.inserted == key - spark.rejected


def test_a_time_column_stays_on_the_arrow_engine(env):
    tenant = load_contracts().table("core_tenant")
    with pytest.raises(SparkEngineUnsupported, match="billing_cutoff"):
        env.spark_merge(tenant, DMS, [])


@pytest.mark.parametrize(
    "fault, message",
    [
        (b"I,2024-01-02 10:00:00,1,a,1.00\n", "line 2: expected 6 fields"),
        (b"X,2024-01-02 10:00:00,1,a,1.00,\n", "line 2: Op must be I, U or D, found 'X'"),
        (b"I,yesterday,1,a,1.00,\n", "line 2: DMS timestamp 'yesterday' is not"),
    ],
    ids=["column_count", "op", "timestamp"],
)
def test_a_structural_fault_names_file_and_line_and_commits_nothing(
    env, tmp_path, request, fault, message
):
    contract = replace(ORDERS, name=f"orders_fault_{request.node.callspec.id}")
    good = {cdc(contract, date(2024, 1, 2)): dms_text([order("I", "2024-01-02 10:00:00", 1)])}
    run_both(env, own_catalog(tmp_path), contract, DMS, [good])
    before = snapshots(env.catalog, contract)
    key = cdc(contract, date(2024, 1, 3))
    env.put(key, dms_text([order("U", "2024-01-03 10:00:00", 1, "z")]) + fault)
    with pytest.raises(DmsFormatError, match=message) as arrow_error:
        env.arrow_merge(own_catalog(tmp_path), contract, DMS, [key])
    with pytest.raises(DmsFormatError) as spark_error:
        env.spark_merge(contract, DMS, [key])
    assert str(spark_error.value) == str(arrow_error.value)
    assert snapshots(env.catalog, contract) == before


# ------------------------------------------------------------------ the demo landing


DEMO_START = date(2024, 1, 1)
DEMO_DAYS = 3
CONTRACTS = load_contracts()


@pytest.fixture(scope="module")
def demo(env) -> Path:
    lake = env.root / "demo-lake"
    generate(
        open_lake(str(lake)),
        CONTRACTS,
        scale=0.02,
        days=DEMO_DAYS,
        seed=42,
        start=DEMO_START,
        gzip=True,
    )
    return lake


def demo_batches(lake: Path, contract: TableContract) -> list[list[str]]:
    """The files of day 1 (the full load and first CDC), then of the following days."""
    store = open_lake(str(lake))
    days = [date(2024, 1, n) for n in range(1, DEMO_DAYS + 1)]
    first = list_partition_files(store, CONTRACTS.dms, contract, days[:1])
    rest = list_partition_files(store, CONTRACTS.dms, contract, days[1:])
    return [[f.info.key for f in first], [f.info.key for f in rest]]


def demo_merge(
    engine: str,
    env: SparkEnv,
    lake: Path,
    catalog: Catalog,
    contract: TableContract,
    keys: list[str],
) -> MergeResult:
    if engine == "arrow":
        raw = read_dms_files(
            [(key, (lake / key).read_bytes()) for key in keys], contract, CONTRACTS.dms
        )
        return merge_changes(catalog, contract, CONTRACTS.dms, raw, ingested_at=INGESTED)
    refs = [BronzeFileRef(key, spark_uri(str(lake), key)) for key in keys]
    return spark_merge_changes(env.spark, catalog, contract, CONTRACTS.dms, refs, INGESTED)


SPARK_DEMO_TABLES = [
    name for name, c in CONTRACTS.tables.items() if not any(col.type == "time" for col in c.columns)
]


def test_demo_tables_are_identical_and_equal_the_oracle(env, demo, tmp_path):
    arrow_catalog = own_catalog(tmp_path)
    for name in SPARK_DEMO_TABLES:
        contract = CONTRACTS.table(name)
        for keys in demo_batches(demo, contract):
            arrow = demo_merge("arrow", env, demo, arrow_catalog, contract, keys)
            spark = demo_merge("spark", env, demo, env.catalog, contract, keys)
            assert counts(spark) == counts(arrow), (name, spark, arrow)
            assert spark.touched_dates == arrow.touched_dates, name
        rows = assert_same_tables(arrow_catalog, env.catalog, contract)
        expected = pq.read_table(demo / "demo" / "expected" / f"{name}.parquet").to_pylist()

        def by_key(row: dict, key: tuple[str, ...] = contract.primary_key) -> tuple:
            return tuple(row[k] for k in key)

        live = sorted(
            ({c: row[c] for c in contract.column_names} for row in rows if not row["_is_deleted"]),
            key=by_key,
        )
        expected = sorted(
            ({c: _plain(row[c]) for c in contract.column_names} for row in expected), key=by_key
        )
        assert len(live) > 0
        assert live == expected, name


@pytest.mark.parametrize("first, second", [("arrow", "spark"), ("spark", "arrow")])
def test_one_engine_continues_the_table_of_the_other(env, demo, tmp_path, first, second):
    """Day 1 by one engine, the later days (and day 1 again) by the other, on one table:
    the same table as the arrow engine alone."""
    base = CONTRACTS.table("core_order")
    contract = replace(base, name=f"core_order_{first}_{second}")
    batches = []
    for keys in demo_batches(demo, base):
        renamed = []
        for key in keys:  # the same files under the renamed table's folder
            new_key = key.replace(f"/{base.name}/", f"/{contract.name}/")
            target = demo / new_key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((demo / key).read_bytes())
            renamed.append(new_key)
        batches.append(renamed)
    reference = own_catalog(tmp_path)
    for keys in batches:
        demo_merge("arrow", env, demo, reference, contract, keys)

    demo_merge(first, env, demo, env.catalog, contract, batches[0])
    result = demo_merge(second, env, demo, env.catalog, contract, batches[1])
    assert result.updated > 0 and result.deleted > 0
    again = demo_merge(second, env, demo, env.catalog, contract, batches[0])
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0) and again.unchanged > 0
    assert_same_tables(reference, env.catalog, contract)


# ------------------------------------------------------------------ Dagster: engine selection


CONTRACT_YAML = """
dms: {bucket_folder: bronze/dms, date_partition: {enabled: true}}
tables:
  dg_orders:
    schema: public
    primary_key: [id]
    columns:
      - {name: id, type: bigint, nullable: false}
      - {name: name, type: string}
  dg_shifts:
    schema: public
    primary_key: [id]
    columns:
      - {name: id, type: bigint, nullable: false}
      - {name: starts, type: time}
"""


def test_engine_is_chosen_per_asset_in_run_config(env, tmp_path, monkeypatch):
    from lakehouse_assets.bronze.assets import build_bronze_assets
    from lakehouse_assets.definitions import lake_resources
    from lakehouse_assets.names import silver_asset_key
    from lakehouse_assets.silver.assets import build_silver_assets

    monkeypatch.delenv("LAKEHOUSE_ENGINE", raising=False)
    path = tmp_path / "contracts.yaml"
    path.write_text(CONTRACT_YAML)
    contracts = load_contracts(path)
    env.put(
        "bronze/dms/public/dg_orders/2024/01/02/20240102-100000000.csv",
        b"I,2024-01-02 10:00:00,1,one\nI,2024-01-02 10:00:00,2,two\nU,2024-01-02 10:00:01,1,uno\n",
    )
    env.put(
        "bronze/dms/public/dg_shifts/2024/01/02/20240102-100000000.csv",
        b"I,2024-01-02 10:00:00,1,08:30:00\n",
    )
    daily = dg.DailyPartitionsDefinition(start_date="2024-01-01")
    resources = lake_resources(str(env.lake), env.catalog_uri, str(path))
    assets = [*build_bronze_assets(contracts, daily), *build_silver_assets(contracts, daily)]
    run_config = {
        "ops": {
            f"silver__{name}": {"config": {"engine": "spark"}}
            for name in ("dg_orders", "dg_shifts")
        }
    }
    result = dg.materialize(
        assets,
        selection=dg.AssetSelection.groups("silver"),
        partition_key="2024-01-02",
        resources=resources,
        run_config=run_config,
    )
    assert result.success
    metadata = {
        m.asset_key.path[-1]: m.metadata
        for m in (
            e.event_specific_data.materialization for e in result.get_asset_materialization_events()
        )
    }
    assert metadata["dg_orders"]["engine"].value == "spark"
    assert metadata["dg_orders"]["inserted"].value == 2
    assert metadata["dg_shifts"]["engine"].value == "arrow"  # time column: Spark cannot hold it
    rows = table_rows(env.catalog, "silver.dg_orders", ("id",))
    assert [(r["id"], r["name"]) for r in rows] == [(1, "uno"), (2, "two")]

    # The default comes from LAKEHOUSE_ENGINE; a run without config then uses Spark.
    monkeypatch.setenv("LAKEHOUSE_ENGINE", "spark")
    spark_default = build_silver_assets(contracts, daily)
    again = dg.materialize(
        [*build_bronze_assets(contracts, daily), *spark_default],
        selection=[silver_asset_key("dg_orders")],
        partition_key="2024-01-02",
        resources=resources,
    )
    [event] = again.get_asset_materialization_events()
    metadata = event.event_specific_data.materialization.metadata
    assert metadata["engine"].value == "spark"
    # The ledger knows the day's file: nothing is read again.
    assert metadata["files_already_applied"].value == 1 and metadata["changes"].value == 0
    monkeypatch.setenv("LAKEHOUSE_ENGINE", "sparkle")
    with pytest.raises(ValueError, match="LAKEHOUSE_ENGINE"):
        build_silver_assets(contracts, daily)
