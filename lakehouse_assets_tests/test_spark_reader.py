"""Spark's reader of the bronze files gives the DMS reader's rows, value for value: header rows
(reordered, upper-case, drifting), named change-seq columns and Parquet, whose typed values
Spark turns into the same text as the arrow reader. Needs ``scripts/install_spark.sh``."""

from __future__ import annotations

import gzip
import io
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse_assets.contracts import Column, DmsSettings, TableContract
from lakehouse_assets.dms import (
    COMMIT_TS,
    DmsFormatError,
    encode_csv_rows,
    encode_dms_file,
    read_dms_file,
)
from lakehouse_assets.dms.reader import without_extra_columns
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for, warehouse_for_lake
from lakehouse_assets.silver.merge import FILE_ORDER
from lakehouse_assets.silver.spark.reader import BronzeFileRef, read_bronze, spark_uri
from lakehouse_assets.silver.spark.session import lakehouse_spark_session
from lakehouse_assets_tests.test_dms_formats import EVERY_TYPE as ALL_TYPES

pytestmark = pytest.mark.spark

CONTRACT = TableContract(
    name="employees",
    schema="hr",
    primary_key=("employee_id",),
    columns=(
        Column("employee_id", "bigint", nullable=False),
        Column("first_name", "string"),
        Column("salary", "decimal(10,2)"),
    ),
)
HEADERS = DmsSettings(bucket_folder="bronze/dms", add_column_name=True)
FOLDER = "bronze/dms/hr/employees/"
# Spark reads no Parquet TIME column, so this is every contract type but time.
EVERY_TYPE = replace(
    ALL_TYPES, columns=tuple(column for column in ALL_TYPES.columns if column.type != "time")
)
# Where Java's and Arrow's float texts differ: notation thresholds, exponents, NaN, zeros.
SCORES = [100.0, 1e10, 1e9, 1.5e-7, 1e-6, 0.1, 12.5, -0.0, 0.0, 1234567.0, 1.2345678901234568e20]
SCORES += [float("nan"), float("inf"), float("-inf"), 0.001, 123.456, -2.5e-5]


class Lake:
    def __init__(self, root: Path):
        self.root = root

    def put(self, key: str, data: bytes) -> str:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return key


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    root = tmp_path_factory.mktemp("spark-reader")
    catalog_uri = sqlite_uri_for(root / "catalog.db")
    warehouse = warehouse_for_lake(str(root / "warehouse"))
    open_catalog(catalog_uri, warehouse)  # pyiceberg creates the catalog tables
    session = lakehouse_spark_session(catalog_uri, warehouse)
    yield session
    session.stop()


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


def spark_rows(spark, lake: Lake, keys: list[str], contract: TableContract, dms: DmsSettings):
    refs = [BronzeFileRef(key, spark_uri(str(lake.root), key)) for key in keys]
    frame = read_bronze(spark, refs, contract, dms)
    assert FILE_ORDER in frame.columns and "_lh_path" in frame.columns
    rows = [row.asDict() for row in frame.drop(FILE_ORDER, "_lh_path").collect()]
    # _commit_ts is still text in Spark: parse it as the arrow reader does, to compare.
    stamps = pa.array([row[COMMIT_TS] for row in rows], pa.string())
    for row, stamp in zip(rows, stamps.cast(pa.timestamp("us")).to_pylist()):
        row[COMMIT_TS] = stamp and stamp.replace(tzinfo=UTC)
    return sorted(rows, key=lambda row: (row["_source_file"], row["_source_row"]))


def arrow_rows(lake: Lake, keys: list[str], contract: TableContract, dms: DmsSettings):
    tables = [
        without_extra_columns(read_dms_file((lake.root / key).read_bytes(), key, contract, dms))
        for key in keys
    ]
    rows = [row for table in tables for row in table.to_pylist()]
    for row in rows:
        row[COMMIT_TS] = row[COMMIT_TS] and row[COMMIT_TS].astimezone(UTC)
    return sorted(rows, key=lambda row: (row["_source_file"], row["_source_row"]))


def header_file(lake: Lake, name: str, rows: list[list[str | None]], dms=HEADERS) -> str:
    return lake.put(FOLDER + name, encode_csv_rows(rows, dms))


# ------------------------------------------------------------------ CSV with header rows


def test_header_files_in_different_column_orders_read_like_the_arrow_reader(spark, lake):
    keys = [
        header_file(
            lake,
            "20240102-101500000.csv",
            [
                ["Op", "TIMESTAMP", "EMPLOYEE_ID", "FIRST_NAME", "SALARY"],
                ["I", "2024-01-02 10:00:00.5", "100", 'Smith, "Jo"\nline two', "24000.00"],
                ["U", "2024-01-02 10:00:01", "100", "Steve", None],
            ],
        ),
        lake.put(
            FOLDER + "20240102-101600000.csv.gz",
            gzip.compress(
                encode_csv_rows(
                    [
                        ["Op", "ts", "Salary", "Employee_Id", "First_Name"],
                        ["D", "2024-01-02 10:01:00", None, "100", None],
                        ["I", "2024-01-02 10:01:01", "1.50", "101", "Neena"],
                    ],
                    HEADERS,
                )
            ),
        ),
        header_file(
            lake,
            "LOAD00000001.csv",
            [
                ["EMPLOYEE_ID", "LOADED", "FIRST_NAME", "SALARY"],
                ["7", "2024-01-01 09:00:00", "Ann", None],
            ],
        ),
    ]
    rows = spark_rows(spark, lake, keys, CONTRACT, HEADERS)
    assert rows == arrow_rows(lake, keys, CONTRACT, HEADERS)
    by_file = {(row["_source_file"][len(FOLDER) :], row["_source_row"]): row for row in rows}
    assert set(by_file) == {
        ("LOAD00000001.csv", 1),
        ("20240102-101500000.csv", 1),
        ("20240102-101500000.csv", 2),
        ("20240102-101600000.csv.gz", 1),
        ("20240102-101600000.csv.gz", 2),
    }
    assert by_file[("20240102-101600000.csv.gz", 2)]["first_name"] == "Neena"
    assert by_file[("20240102-101600000.csv.gz", 2)]["salary"] == "1.50"
    assert by_file[("LOAD00000001.csv", 1)]["_op"] == "I"


def test_drift_and_a_named_change_seq_that_is_not_last(spark, lake):
    dms = replace(HEADERS, change_seq_column=True, change_seq_name="seq")
    keys = [
        header_file(
            lake,
            "20240102-101500000.csv",
            [
                ["Op", "ts", "SEQ", "EMPLOYEE_ID", "FIRST_NAME", "DEPT", "SALARY"],
                ["U", "2024-01-02 10:00:00", "002", "1", "B", "IT", None],
                ["U", "2024-01-02 10:00:00", "001", "1", "A", "HR", "2.00"],
            ],
            dms,
        ),
        header_file(
            lake,
            "20240102-101600000.csv",
            [
                ["Op", "ts", "employee_id", "first_name", "salary", "seq"],
                ["I", "2024-01-02 10:01:00", "2", "C", None, "003"],
            ],
            dms,
        ),
    ]
    rows = spark_rows(spark, lake, keys, CONTRACT, dms)
    assert rows == arrow_rows(lake, keys, CONTRACT, dms)
    assert [(row["_change_seq"], row["first_name"]) for row in rows] == [
        ("002", "B"),
        ("001", "A"),
        ("003", "C"),
    ]
    assert "dept" not in rows[0]


def test_a_header_missing_a_contract_column_is_named_before_spark_reads(spark, lake):
    key = header_file(lake, "20240102-101500000.csv", [["Op", "ts", "EMPLOYEE_ID", "SALARY"]])
    with pytest.raises(DmsFormatError, match=r"missing contract column\(s\) \['first_name'\]"):
        spark_rows(spark, lake, [key], CONTRACT, HEADERS)


def test_files_without_header_rows_still_read_by_position(spark, lake):
    dms = DmsSettings(bucket_folder="bronze/dms", change_seq_column=True)
    keys = [
        lake.put(
            FOLDER + "20240102-101500000.csv",
            encode_csv_rows([["U", "2024-01-02 10:00:00", "1", "A", "1.00", "9"]], dms),
        ),
        lake.put(FOLDER + "LOAD00000002.csv", b"2024-01-01 00:00:00,5,Bo,,\n"),
    ]
    rows = spark_rows(spark, lake, keys, CONTRACT, dms)
    assert rows == arrow_rows(lake, keys, CONTRACT, dms)
    assert [row["_change_seq"] for row in rows] == ["9", None]


# ------------------------------------------------------------------ Parquet


def every_type_rows() -> pa.Table:
    base = {
        "small": -32768,
        "count": 2147483647,
        "amount": Decimal("12.50"),
        "tiny": Decimal("0.000000123"),
        "ratio": 4.5,
        "active": True,
        "label": 'Smith, "Jo"\nline two',
        "day": date(2024, 2, 29),
        "created_at": datetime(2024, 1, 2, 3, 4, 5, 600000),
        "paid_at": datetime(2024, 1, 2, 23, 59, 59, 999999, tzinfo=UTC),
        "doc": '{"a": [1, 2]}',
        "ref": "0F8FAD5B-D9CB-469F-A165-70867728950E",
        "blob": b"\x00\xffab",
    }
    other = {
        "small": 7,
        "count": -1,
        "amount": Decimal("-0.05"),
        "tiny": Decimal("-0.000000100"),
        "ratio": 0.1,
        "active": False,
        "label": "Zoë",
        "day": date(1999, 12, 31),
        "created_at": datetime(2024, 1, 2),
        "paid_at": datetime(2024, 6, 30, 12, tzinfo=UTC),
        "doc": "null",
        "ref": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "blob": b"",
    }
    rows = [
        {**(base if index % 2 else other), "id": index + 1, "score": score}
        for index, score in enumerate(SCORES)
    ]
    rows.append({"id": len(rows) + 1})  # every other column NULL
    return pa.Table.from_pylist(rows, schema=EVERY_TYPE.arrow_schema)


def test_parquet_twins_read_like_the_arrow_reader_and_their_csv_twins(spark, lake):
    rows = every_type_rows()
    n = rows.num_rows
    commits = pa.array(
        [datetime(2024, 1, 2, 10, 0, index % 60, 1000 * index) for index in range(n)],
        pa.timestamp("us"),
    )
    ops = pa.array((["I", "U", "D"] * n)[:n])
    dms = DmsSettings(bucket_folder="bronze/dms")
    parquet = replace(dms, format="parquet")
    folder = "bronze/dms/public/everything/"
    keys = {}
    for name, settings in (("csv", dms), ("parquet", parquet)):
        cdc = f"{folder}20240102-101500000.{name}"
        load = f"{folder}LOAD00000001.{name}"
        keys[name] = [
            lake.put(
                cdc, encode_dms_file(rows, cdc, EVERY_TYPE, settings, ops=ops, commit_ts=commits)
            ),
            lake.put(load, encode_dms_file(rows, load, EVERY_TYPE, settings, commit_ts=commits)),
        ]

    from_spark = spark_rows(spark, lake, keys["parquet"], EVERY_TYPE, parquet)
    assert from_spark == arrow_rows(lake, keys["parquet"], EVERY_TYPE, parquet)
    from_csv = arrow_rows(lake, keys["csv"], EVERY_TYPE, dms)
    for row in from_spark + from_csv:
        row["_source_file"] = row["_source_file"].rsplit(".", 1)[0]
    assert sorted(from_spark, key=str) == sorted(from_csv, key=str)
    scores = {row["score"] for row in from_spark}
    assert {"100", "1e+10", "1000000000", "1.5e-7", "0.000001", "-0", "nan", "-inf"} <= scores
    first = next(row for row in from_spark if row["id"] == "2")
    assert (first["tiny"], first["blob"], first["created_at"]) == (
        "0.000000123",
        "\\x00ff6162",
        "2024-01-02 03:04:05.6",
    )


def test_parquet_by_name_with_a_named_change_seq_and_mixed_with_csv(spark, lake):
    dms = DmsSettings(
        bucket_folder="bronze/dms",
        timestamp_name="ts",
        change_seq_column=True,
        change_seq_name="seq",
    )
    buffer = io.BytesIO()
    pq.write_table(
        pa.table(
            {
                "SALARY": pa.array([Decimal("1.50"), None], pa.decimal128(10, 2)),
                "Op": ["U", "U"],
                "SEQ": ["2", "1"],
                "EMPLOYEE_ID": pa.array([1, 1], pa.int64()),
                "TS": ["2024-01-02 10:00:00", "2024-01-02 10:00:00.25"],
                "FIRST_NAME": ["B", "A"],
                "GRADE": pa.array([3, None], pa.int16()),
            }
        ),
        buffer,
    )
    keys = [
        lake.put(FOLDER + "20240102-101500000.parquet", buffer.getvalue()),
        lake.put(
            FOLDER + "20240102-101600000.csv",
            encode_csv_rows([["D", "2024-01-02 10:01:00", "1", None, None, "3"]], dms),
        ),
    ]
    rows = spark_rows(spark, lake, keys, CONTRACT, dms)
    assert rows == arrow_rows(lake, keys, CONTRACT, dms)
    assert [(row["_change_seq"], row["first_name"], row["salary"]) for row in rows] == [
        ("2", "B", "1.50"),
        ("1", "A", None),
        ("3", None, None),
    ]
