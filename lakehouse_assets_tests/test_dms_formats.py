"""DMS endpoint settings that change the files: header rows (AddColumnName), named timestamp
and change-seq columns, schema drift, and DMS Parquet read as the text of its CSV twin."""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import replace
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse_assets.contracts import Column, DmsSettings, TableContract
from lakehouse_assets.dms import (
    DmsFormatError,
    encode_csv_rows,
    encode_dms_file,
    raw_schema,
    read_dms_file,
    read_dms_files,
)
from lakehouse_assets.dms.reader import (
    EXTRA_COLUMNS_BY_FILE_KEY,
    EXTRA_COLUMNS_KEY,
    extra_columns_by_file,
    file_layout,
    without_extra_columns,
)

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
PARQUET = replace(DmsSettings(bucket_folder="bronze/dms"), format="parquet")
CDC_KEY = "bronze/dms/hr/employees/20240102-101500000.csv"
LOAD_KEY = "bronze/dms/hr/employees/LOAD00000001.csv"
STANDARD = raw_schema(CONTRACT).names


def read(rows: list[list[str | None]], key: str = CDC_KEY, dms: DmsSettings = HEADERS):
    return read_dms_file(encode_csv_rows(rows, dms), key, CONTRACT, dms)


def values(table: pa.Table, *names: str) -> list[tuple]:
    return list(zip(*(table.column(name).to_pylist() for name in names)))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# ------------------------------------------------------------------ header rows


def test_an_upper_case_header_row_maps_columns_by_name_and_is_no_data_row():
    table = read(
        [
            ["Op", "TIMESTAMP", "EMPLOYEE_ID", "FIRST_NAME", "SALARY"],
            ["I", "2024-01-02 10:00:00.5", "100", "Steven", "24000.00"],
            ["U", "2024-01-02 10:00:01", "100", "Steve", None],
        ]
    )
    assert table.schema == raw_schema(CONTRACT)
    assert values(table, "employee_id", "first_name", "salary", "_op") == [
        ("100", "Steven", "24000.00", "I"),
        ("100", "Steve", None, "U"),
    ]
    assert table.column("_commit_ts").to_pylist() == [
        utc(2024, 1, 2, 10, 0, 0, 500000),
        utc(2024, 1, 2, 10, 0, 1),
    ]
    assert table.column("_source_row").to_pylist() == [1, 2]


def test_reordered_columns_read_the_same_as_the_contract_order():
    in_order = read(
        [
            ["Op", "ts", "employee_id", "first_name", "salary"],
            ["I", "2024-01-02 10:00:00", "100", "Steven", "1.00"],
        ]
    )
    reordered = read(
        [
            ["Op", "ts", "Salary", "First_Name", "Employee_Id"],
            ["I", "2024-01-02 10:00:00", "1.00", "Steven", "100"],
        ]
    )
    assert reordered.to_pylist() == in_order.to_pylist()
    assert in_order.column("first_name").to_pylist() == ["Steven"]


def test_the_header_row_counts_as_line_one_in_messages():
    rows = [
        ["Op", "ts", "employee_id", "first_name", "salary"],
        ["I", "2024-01-02 10:00:00", "1", "a\nb", None],
        ["X", "2024-01-02 10:00:00", "2", "c", None],
    ]
    with pytest.raises(DmsFormatError) as raised:
        read(rows)
    assert str(raised.value) == f"{CDC_KEY}, line 4: Op must be I, U or D, found 'X'"
    rows[2] = ["U", "2024-01-02 10:00:00", "2"]
    with pytest.raises(DmsFormatError, match="line 4: expected 5 fields .*header row.* found 3"):
        read(rows)


def test_a_full_load_header_has_no_op_and_the_timestamp_is_the_first_other_column():
    table = read(
        [
            ["EMPLOYEE_ID", "LOADED_AT", "FIRST_NAME", "SALARY"],
            ["7", "2024-01-01 09:00:00", "Ann", "10.00"],
        ],
        key=LOAD_KEY,
    )
    assert values(table, "employee_id", "first_name", "_op") == [("7", "Ann", "I")]
    assert table.column("_commit_ts").to_pylist() == [utc(2024, 1, 1, 9)]


def test_a_named_timestamp_column_is_found_anywhere():
    dms = replace(HEADERS, timestamp_name="commit_time")
    table = read(
        [
            ["Op", "employee_id", "first_name", "salary", "COMMIT_TIME"],
            ["D", "5", None, None, "2024-01-02 11:00:00"],
        ],
        dms=dms,
    )
    assert table.column("_commit_ts").to_pylist() == [utc(2024, 1, 2, 11)]
    with pytest.raises(DmsFormatError, match=r"line 1 \(header row\): no column 'commit_time'"):
        read([["Op", "ts", "employee_id", "first_name", "salary"]], dms=dms)


def test_an_unnamed_timestamp_must_follow_op():
    with pytest.raises(DmsFormatError, match="no timestamp column right after Op"):
        read([["Op", "employee_id", "first_name", "salary"], ["I", "1", "a", None]])


def test_a_named_change_seq_column_that_is_not_last():
    dms = replace(HEADERS, change_seq_column=True, change_seq_name="seq")
    table = read(
        [
            ["Op", "ts", "SEQ", "employee_id", "first_name", "salary"],
            ["U", "2024-01-02 10:00:00", "20240102100000000000000000000002", "1", "B", None],
            ["U", "2024-01-02 10:00:00", "20240102100000000000000000000001", "1", "A", None],
        ],
        dms=dms,
    )
    assert values(table, "_change_seq", "first_name") == [
        ("20240102100000000000000000000002", "B"),
        ("20240102100000000000000000000001", "A"),
    ]
    with pytest.raises(DmsFormatError, match=r"no column 'seq' \(dms.change_seq_column\)"):
        read([["Op", "ts", "employee_id", "first_name", "salary"]], dms=dms)


def test_the_default_change_seq_is_found_by_its_name():
    dms = replace(HEADERS, change_seq_column=True)
    table = read(
        [
            ["Op", "ts", "employee_id", "first_name", "salary", "AR_H_CHANGE_SEQ"],
            ["I", "2024-01-02 10:00:00", "1", "A", None, "42"],
        ],
        dms=dms,
    )
    assert table.column("_change_seq").to_pylist() == ["42"]


def test_a_gzipped_file_with_a_header_row():
    data = encode_csv_rows(
        [
            ["Op", "ts", "EMPLOYEE_ID", "FIRST_NAME", "SALARY"],
            ["I", "2024-01-02 10:00:00", "1", "multi\nline", "3.50"],
        ],
        HEADERS,
    )
    table = read_dms_file(gzip.compress(data), CDC_KEY + ".gz", CONTRACT, HEADERS)
    assert values(table, "employee_id", "first_name", "salary") == [("1", "multi\nline", "3.50")]


def test_a_file_of_only_a_header_row_has_no_rows():
    table = read([["Op", "ts", "employee_id", "first_name", "salary"]])
    assert table.num_rows == 0 and table.schema == raw_schema(CONTRACT)


def test_the_writer_writes_header_rows_the_reader_reads():
    rows = pa.table(
        {"employee_id": [1, 2], "first_name": ["Ann", None], "salary": ["1.00", "2.50"]}
    )
    commits = pa.array([datetime(2024, 1, 2, 10, 0, 0)] * 2, pa.timestamp("us"))
    data = encode_dms_file(
        rows, CDC_KEY, CONTRACT, HEADERS, ops=pa.array(["I", "U"]), commit_ts=commits
    )
    assert data.splitlines()[0] == b"Op,timestamp,employee_id,first_name,salary"
    table = read_dms_file(data, CDC_KEY, CONTRACT, HEADERS)
    assert values(table, "employee_id", "first_name", "salary", "_op") == [
        ("1", "Ann", "1.00", "I"),
        ("2", None, "2.50", "U"),
    ]


# ------------------------------------------------------------------ schema drift


DRIFTED = [
    ["Op", "ts", "EMPLOYEE_ID", "FIRST_NAME", "Dept_Code", "SALARY", "HIRED"],
    ["I", "2024-01-02 10:00:00", "1", "Ann", "IT", "1.00", "2020-01-01"],
    ["U", "2024-01-02 10:00:01", "1", "Ann", None, "2.00", "2020-01-01"],
]


def test_extra_columns_are_kept_after_the_standard_ones_and_reported():
    table = read(DRIFTED)
    assert table.column_names == STANDARD + ["dept_code", "hired"]
    assert table.column("dept_code").to_pylist() == ["IT", None]
    assert table.column("hired").to_pylist() == ["2020-01-01"] * 2
    assert table.schema.field("hired").type == pa.string()
    assert table.schema.metadata[EXTRA_COLUMNS_KEY] == b'["dept_code","hired"]'
    assert extra_columns_by_file(table) == {CDC_KEY: ["dept_code", "hired"]}
    assert values(table, "employee_id", "salary") == [("1", "1.00"), ("1", "2.00")]


def test_without_extra_columns_gives_the_standard_schema_and_keeps_the_report():
    table = without_extra_columns(read(DRIFTED))
    assert table.schema == raw_schema(CONTRACT)
    assert EXTRA_COLUMNS_KEY not in table.schema.metadata
    assert extra_columns_by_file(table) == {CDC_KEY: ["dept_code", "hired"]}


def test_a_file_without_drift_has_no_drift_metadata():
    table = read([["Op", "ts", "employee_id", "first_name", "salary"]])
    assert table.schema.metadata is None
    assert extra_columns_by_file(table) == {}


def test_several_files_concatenate_standard_columns_unless_asked_for_extras():
    other = "bronze/dms/hr/employees/20240102-101600000.csv"
    plain = encode_csv_rows(
        [
            ["Op", "ts", "employee_id", "first_name", "salary"],
            ["D", "2024-01-02 10:01:00", "1", None, None],
        ],
        HEADERS,
    )
    files = [(CDC_KEY, encode_csv_rows(DRIFTED, HEADERS)), (other, plain)]

    standard = read_dms_files(files, CONTRACT, HEADERS)
    assert standard.schema == raw_schema(CONTRACT)
    assert standard.column("_op").to_pylist() == ["I", "U", "D"]
    assert extra_columns_by_file(standard) == {CDC_KEY: ["dept_code", "hired"]}

    kept = read_dms_files(files, CONTRACT, HEADERS, keep_extra_columns=True)
    assert kept.column_names == STANDARD + ["dept_code", "hired"]
    assert kept.column("dept_code").to_pylist() == ["IT", None, None]
    assert json.loads(kept.schema.metadata[EXTRA_COLUMNS_KEY]) == ["dept_code", "hired"]
    assert json.loads(kept.schema.metadata[EXTRA_COLUMNS_BY_FILE_KEY]) == {
        CDC_KEY: ["dept_code", "hired"]
    }


# ------------------------------------------------------------------ structural faults


def test_a_header_missing_a_contract_column_is_a_structural_fault():
    with pytest.raises(DmsFormatError) as raised:
        read([["Op", "ts", "EMPLOYEE_ID", "SALARY"], ["I", "2024-01-02 10:00:00", "1", "2.00"]])
    assert str(raised.value) == (
        f"{CDC_KEY}, line 1 (header row): missing contract column(s) ['first_name']; "
        "the file has ['Op', 'ts', 'EMPLOYEE_ID', 'SALARY']"
    )


def test_a_cdc_header_without_op_is_a_structural_fault():
    with pytest.raises(DmsFormatError, match=r"line 1 \(header row\): no Op column"):
        read([["ts", "employee_id", "first_name", "salary"]])


def test_a_column_named_twice_is_a_structural_fault():
    with pytest.raises(DmsFormatError, match="column 'Salary' appears twice"):
        read([["Op", "ts", "employee_id", "first_name", "salary", "Salary"]])


@pytest.mark.parametrize(
    "text, key",
    [
        # CDC file whose header has as many fields as a data row: the Op field says Op.
        ("Op,ts,EMPLOYEE_ID,FIRST_NAME,SALARY\nI,2024-01-02 10:00:00,1,Ann,\n", CDC_KEY),
        # ... and one with a field count of its own (drift), caught while diagnosing.
        ("Op,ts,EMPLOYEE_ID,FIRST_NAME,SALARY,X\nI,2024-01-02 10:00:00,1,Ann,\n", CDC_KEY),
        # Full load without Op: the row names every contract column.
        ("LOADED,EMPLOYEE_ID,FIRST_NAME,SALARY\n2024-01-01 00:00:00,1,Ann,\n", LOAD_KEY),
    ],
)
def test_a_header_row_where_data_was_expected_says_what_to_set(text: str, key: str):
    with pytest.raises(DmsFormatError) as raised:
        read_dms_file(text.encode(), key, CONTRACT, DmsSettings(bucket_folder="bronze/dms"))
    assert str(raised.value) == (
        f"{key}, line 1: looks like a header row (AddColumnName): set dms.add_column_name: true"
    )


def test_a_header_row_without_timestamp_or_op_is_not_taken_for_data():
    dms = DmsSettings(bucket_folder="bronze/dms", timestamp_column=False)
    with pytest.raises(DmsFormatError, match="looks like a header row"):
        read_dms_file(b"employee_id,first_name,salary\n1,Ann,\n", LOAD_KEY, CONTRACT, dms)


def test_data_where_a_header_row_was_expected_says_what_to_set():
    with pytest.raises(DmsFormatError) as raised:
        read([["I", "2024-01-02 10:00:00", "1", "Ann", None]])
    assert str(raised.value) == (
        f"{CDC_KEY}, line 1: expected a header row (dms.add_column_name: true), found "
        "'I,2024-01-02 10:00:00,1,Ann,', which names no contract column: "
        "set dms.add_column_name: false if the files have no header row"
    )


# ------------------------------------------------------------------ Parquet: every type

EVERY_TYPE = TableContract(
    name="everything",
    schema="public",
    primary_key=("id",),
    columns=(
        Column("id", "bigint", nullable=False),
        Column("small", "smallint"),
        Column("count", "int"),
        Column("amount", "decimal(12,2)"),
        Column("tiny", "decimal(20,9)"),
        Column("ratio", "real"),
        Column("score", "double"),
        Column("active", "boolean"),
        Column("label", "string"),
        Column("day", "date"),
        Column("at", "time"),
        Column("created_at", "timestamp"),
        Column("paid_at", "timestamptz"),
        Column("doc", "json"),
        Column("ref", "uuid"),
        Column("blob", "bytes"),
    ),
)
EVERY_ROW = {
    "id": 1,
    "small": -32768,
    "count": 2147483647,
    "amount": Decimal("12.50"),
    "tiny": Decimal("0.000000123"),
    "ratio": 4.5,
    "score": 1e10,
    "active": True,
    "label": 'Smith, "Jo"\nline two',
    "day": date(2024, 2, 29),
    "at": time(17, 30),
    "created_at": datetime(2024, 1, 2, 3, 4, 5, 600000),
    "paid_at": datetime(2024, 1, 2, 23, 59, 59, 999999, tzinfo=UTC),
    "doc": '{"a": [1, 2]}',
    "ref": "0F8FAD5B-D9CB-469F-A165-70867728950E",
    "blob": b"\x00\xffab",
}
OTHER_ROW = {
    "id": 2,
    "small": 7,
    "count": -1,
    "amount": Decimal("-0.05"),
    "tiny": Decimal("-0.000000100"),
    "ratio": 0.1,
    "score": 1.5e-7,
    "active": False,
    "label": "Zoë 東京",
    "day": date(1999, 12, 31),
    "at": time(0, 0, 0, 250),
    "created_at": datetime(2024, 1, 2),
    "paid_at": datetime(2024, 6, 30, 12, tzinfo=UTC),
    "doc": "null",
    "ref": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "blob": b"",
}


def every_type_rows() -> pa.Table:
    return pa.Table.from_pylist([EVERY_ROW, OTHER_ROW, {"id": 3}], schema=EVERY_TYPE.arrow_schema)


def twins(dms: DmsSettings, key: str, contract: TableContract, rows: pa.Table, **metadata):
    """The CSV and Parquet files of the same rows, read back."""
    csv_dms, parquet_dms = replace(dms, format="csv"), replace(dms, format="parquet")
    csv_key = key.replace(".parquet", ".csv")
    parquet_key = key.replace(".csv", ".parquet")
    csv_data = encode_dms_file(rows, csv_key, contract, csv_dms, **metadata)
    parquet_data = encode_dms_file(rows, parquet_key, contract, parquet_dms, **metadata)
    assert parquet_data[:4] == b"PAR1"
    return (
        read_dms_file(csv_data, csv_key, contract, csv_dms),
        read_dms_file(parquet_data, parquet_key, contract, parquet_dms),
    )


def without_file(table: pa.Table) -> list[dict]:
    return table.drop_columns(["_source_file"]).to_pylist()


def test_a_parquet_cdc_file_reads_as_its_csv_twin_for_every_type_and_nulls():
    rows = every_type_rows()
    commits = pa.array(
        [datetime(2024, 1, 2, 10, 0, 0, 123456), datetime(2024, 1, 2, 10, 0, 1)] * 2,
        pa.timestamp("us"),
    )[:3]
    key = "bronze/dms/public/everything/20240102-101500000.parquet"
    from_csv, from_parquet = twins(
        PARQUET, key, EVERY_TYPE, rows, ops=pa.array(["I", "U", "D"]), commit_ts=commits
    )
    assert from_parquet.schema == raw_schema(EVERY_TYPE)
    assert without_file(from_parquet) == without_file(from_csv)
    assert from_parquet.column("_source_file").to_pylist() == [key] * 3
    first, second, empty = from_parquet.select(EVERY_TYPE.column_names).to_pylist()
    assert first == {
        "id": "1",
        "small": "-32768",
        "count": "2147483647",
        "amount": "12.50",
        "tiny": "0.000000123",
        "ratio": "4.5",
        "score": "1e+10",
        "active": "true",
        "label": 'Smith, "Jo"\nline two',
        "day": "2024-02-29",
        "at": "17:30:00",
        "created_at": "2024-01-02 03:04:05.6",
        "paid_at": "2024-01-02 23:59:59.999999",
        "doc": '{"a": [1, 2]}',
        "ref": "0F8FAD5B-D9CB-469F-A165-70867728950E",
        "blob": "\\x00ff6162",
    }
    assert (second["tiny"], second["at"], second["created_at"], second["blob"]) == (
        "-0.000000100",
        "00:00:00.00025",
        "2024-01-02 00:00:00",
        "\\x",
    )
    assert set(empty.values()) == {None, "3"}


def encode_parquet(rows: pa.Table, key: str, commits: pa.Array) -> bytes:
    return encode_dms_file(rows, key, EVERY_TYPE, PARQUET, commit_ts=commits)


def test_a_parquet_full_load_has_no_op_unless_configured():
    rows = every_type_rows()
    commits = pa.array([datetime(2024, 1, 1, 9)] * 3, pa.timestamp("us"))
    key = "bronze/dms/public/everything/LOAD00000001.parquet"
    from_csv, from_parquet = twins(PARQUET, key, EVERY_TYPE, rows, commit_ts=commits)
    assert pq.read_schema(io.BytesIO(encode_parquet(rows, key, commits))).names[:2] == [
        "timestamp",
        "id",
    ]
    assert from_parquet.column("_op").to_pylist() == ["I"] * 3
    assert without_file(from_parquet) == without_file(from_csv)

    with_op = replace(PARQUET, include_op_for_full_load=True)
    from_csv, from_parquet = twins(with_op, key, EVERY_TYPE, rows, commit_ts=commits)
    assert without_file(from_parquet) == without_file(from_csv)


def test_the_writer_writes_dms_parquet_types():
    rows = every_type_rows()
    dms = replace(PARQUET, change_seq_column=True, timestamp_name="commit_ts")
    data = encode_dms_file(
        rows,
        "bronze/dms/public/everything/20240102-101500000.parquet",
        EVERY_TYPE,
        dms,
        ops=pa.array(["I", "U", "D"]),
        commit_ts=pa.array([datetime(2024, 1, 2)] * 3, pa.timestamp("us")),
    )
    schema = pq.read_schema(io.BytesIO(data))
    assert schema.names == ["Op", "commit_ts", *EVERY_TYPE.column_names, "AR_H_CHANGE_SEQ"]
    assert schema.field("commit_ts").type == pa.string()  # DMS: a STRING column
    assert schema.field("small").type == pa.int16()
    assert schema.field("amount").type == pa.decimal128(12, 2)
    assert schema.field("at").type == pa.time64("us")
    assert schema.field("paid_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("blob").type == pa.binary()
    assert (
        pq.read_table(io.BytesIO(data)).column("commit_ts").to_pylist()
        == ["2024-01-02 00:00:00"] * 3
    )


# ------------------------------------------------------------------ Parquet: names and faults


PARQUET_KEY = "bronze/dms/hr/employees/20240102-101500000.parquet"


def parquet_file(columns: dict[str, pa.Array]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def test_parquet_columns_by_name_with_a_named_change_seq_that_is_not_last():
    dms = replace(PARQUET, change_seq_column=True, change_seq_name="seq", timestamp_name="ts")
    data = parquet_file(
        {
            "SALARY": pa.array([Decimal("1.50"), None], pa.decimal128(10, 2)),
            "Op": ["U", "U"],
            "SEQ": ["2", "1"],
            "EMPLOYEE_ID": pa.array([1, 1], pa.int64()),
            "TS": ["2024-01-02 10:00:00", "2024-01-02 10:00:00"],
            "FIRST_NAME": ["B", "A"],
        }
    )
    table = read_dms_file(data, PARQUET_KEY, CONTRACT, dms)
    assert table.schema == raw_schema(CONTRACT)
    assert values(table, "employee_id", "first_name", "salary", "_change_seq", "_op") == [
        ("1", "B", "1.50", "2", "U"),
        ("1", "A", None, "1", "U"),
    ]


def test_a_typed_parquet_timestamp_column_reads_as_the_commit_time():
    data = parquet_file(
        {
            "Op": ["I"],
            "ts": pa.array([datetime(2024, 1, 2, 10, 0, 0, 5)], pa.timestamp("ms")),
            "employee_id": [1],
            "first_name": ["A"],
            "salary": pa.array([None], pa.string()),
        }
    )
    table = read_dms_file(data, PARQUET_KEY, CONTRACT, PARQUET)
    assert table.column("_commit_ts").to_pylist() == [utc(2024, 1, 2, 10)]


def test_parquet_keeps_empty_strings_apart_from_nulls():
    data = parquet_file(
        {
            "Op": ["I", "I"],
            "ts": ["2024-01-02 10:00:00"] * 2,
            "employee_id": [1, 2],
            "first_name": ["", None],
            "salary": pa.array([None, None], pa.string()),
        }
    )
    table = read_dms_file(data, PARQUET_KEY, CONTRACT, PARQUET)
    assert table.column("first_name").to_pylist() == ["", None]


def test_parquet_drift_keeps_extra_columns_as_text():
    data = parquet_file(
        {
            "Op": ["I"],
            "ts": ["2024-01-02 10:00:00"],
            "employee_id": [1],
            "first_name": ["A"],
            "salary": pa.array([Decimal("1.00")], pa.decimal128(10, 2)),
            "Grade": pa.array([3], pa.int16()),
        }
    )
    table = read_dms_file(data, PARQUET_KEY, CONTRACT, PARQUET)
    assert table.column_names == STANDARD + ["grade"]
    assert table.column("grade").to_pylist() == ["3"]
    assert extra_columns_by_file(table) == {PARQUET_KEY: ["grade"]}


def test_parquet_missing_a_contract_column_is_a_structural_fault():
    data = parquet_file({"Op": ["I"], "ts": ["2024-01-02 10:00:00"], "employee_id": [1]})
    with pytest.raises(DmsFormatError) as raised:
        read_dms_file(data, PARQUET_KEY, CONTRACT, PARQUET)
    assert str(raised.value).startswith(
        f"{PARQUET_KEY}, Parquet columns: missing contract column(s) ['first_name', 'salary']"
    )


def test_a_bad_op_in_parquet_names_the_row():
    data = parquet_file(
        {
            "Op": ["I", "Z"],
            "ts": ["2024-01-02 10:00:00"] * 2,
            "employee_id": [1, 2],
            "first_name": ["A", "B"],
            "salary": ["1", "2"],
        }
    )
    with pytest.raises(DmsFormatError) as raised:
        read_dms_file(data, PARQUET_KEY, CONTRACT, PARQUET)
    assert str(raised.value) == f"{PARQUET_KEY}, row 2: Op must be I, U or D, found 'Z'"


def test_an_unreadable_parquet_file_names_the_file():
    with pytest.raises(DmsFormatError, match=f"^{PARQUET_KEY}: not a readable Parquet file"):
        read_dms_file(b"I,2024-01-02 10:00:00,1,A,\n", PARQUET_KEY, CONTRACT, PARQUET)


def test_a_parquet_column_without_a_text_form_names_the_column():
    data = parquet_file(
        {
            "Op": ["I"],
            "ts": ["2024-01-02 10:00:00"],
            "employee_id": [1],
            "first_name": pa.array([["a", "b"]], pa.list_(pa.string())),
            "salary": ["1"],
        }
    )
    with pytest.raises(DmsFormatError, match="Parquet column 'first_name' .* no DMS text form"):
        read_dms_file(data, PARQUET_KEY, CONTRACT, PARQUET)


# ------------------------------------------------------------------ layouts for other readers


def test_file_layout_reads_a_file_only_when_its_layout_depends_on_it():
    def never() -> bytes:
        raise AssertionError("a file without a header row needs no reading")

    plain = file_layout(CDC_KEY, CONTRACT, DmsSettings(bucket_folder="bronze/dms"), never)
    assert plain.fields == ("_op", "_commit_ts", "employee_id", "first_name", "salary")
    assert plain.source_names == ()

    data = encode_csv_rows(DRIFTED, HEADERS)
    named = file_layout(CDC_KEY, CONTRACT, HEADERS, lambda: data)
    assert named.fields == (
        "_op",
        "_commit_ts",
        "employee_id",
        "first_name",
        "dept_code",
        "salary",
        "hired",
    )
    assert named.source_names == tuple(DRIFTED[0])
    assert named.extra_columns == ("dept_code", "hired")
