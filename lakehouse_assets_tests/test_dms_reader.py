"""Reading DMS CSV files: every DMS fact of DESIGN.md, and errors that name file and line."""

import gzip
from dataclasses import replace
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from lakehouse_assets.contracts import Column, DmsSettings, TableContract
from lakehouse_assets.dms import DmsFormatError, raw_schema, read_dms_file, read_dms_files

CONTRACT = TableContract(
    name="core_customer",
    schema="public",
    primary_key=("id",),
    columns=(
        Column("id", "bigint", nullable=False),
        Column("full_name", "string"),
        Column("metadata", "json"),
    ),
)
DMS = DmsSettings(bucket_folder="bronze/dms")
CDC_KEY = "bronze/dms/public/core_customer/20240102-101500000.csv"
LOAD_KEY = "bronze/dms/public/core_customer/LOAD00000001.csv"


def read(text: str | bytes, key: str = CDC_KEY, dms: DmsSettings = DMS) -> pa.Table:
    data = text.encode() if isinstance(text, str) else text
    return read_dms_file(data, key, CONTRACT, dms)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_cdc_rows_get_contract_names_raw_strings_and_metadata():
    table = read(
        'I,2024-01-02 10:00:00.123456,1,Ann,"{""vip"": true}"\n'
        "U,2024-01-02 10:00:01.5,1,Ann B.,\n"
        "D,2024-01-02 10:00:02,1,,\n"
    )
    assert table.schema == raw_schema(CONTRACT)
    assert table.column("id").to_pylist() == ["1", "1", "1"]
    assert table.column("metadata").to_pylist() == ['{"vip": true}', None, None]
    assert table.column("_op").to_pylist() == ["I", "U", "D"]
    assert table.column("_commit_ts").to_pylist() == [
        utc(2024, 1, 2, 10, 0, 0, 123456),
        utc(2024, 1, 2, 10, 0, 1, 500000),
        utc(2024, 1, 2, 10, 0, 2),
    ]
    assert table.column("_source_file").to_pylist() == [CDC_KEY] * 3
    assert table.column("_source_row").to_pylist() == [1, 2, 3]
    assert table.column("_change_seq").null_count == 3


def test_quoted_delimiters_doubled_quotes_newlines_and_unicode():
    table = read(
        'I,2024-01-02 10:00:00,1,"Smith, ""Jo""\nline two",\n'
        'I,2024-01-02 10:00:00,2,"crlf\r\ninside",\n'
        "I,2024-01-02 10:00:00,3,Zoë 東京 🎉,\n"
    )
    assert table.column("full_name").to_pylist() == [
        'Smith, "Jo"\nline two',
        "crlf\r\ninside",
        "Zoë 東京 🎉",
    ]
    assert table.column("_source_row").to_pylist() == [1, 2, 3]


def test_empty_field_and_quoted_empty_are_null_by_default():
    table = read('I,2024-01-02 10:00:00,1,,""\n')
    assert table.column("full_name").to_pylist() == [None]
    assert table.column("metadata").to_pylist() == [None]


def test_custom_null_value_keeps_empty_strings():
    dms = replace(DMS, null_value="NULL")
    table = read("I,2024-01-02 10:00:00,1,NULL,\n", dms=dms)
    assert table.column("full_name").to_pylist() == [None]
    assert table.column("metadata").to_pylist() == [""]


def test_custom_delimiter():
    table = read('I|2024-01-02 10:00:00|1|"a|b"|x,y\n', dms=replace(DMS, delimiter="|"))
    assert table.column("full_name").to_pylist() == ["a|b"]
    assert table.column("metadata").to_pylist() == ["x,y"]


def test_full_load_without_op_column_reads_as_inserts():
    table = read("2024-01-01 09:00:00.000001,7,Ann,\n2024-01-01 09:00:00,8,Bo,\n", key=LOAD_KEY)
    assert table.column("id").to_pylist() == ["7", "8"]
    assert table.column("_op").to_pylist() == ["I", "I"]
    assert table.column("_commit_ts").to_pylist()[0] == utc(2024, 1, 1, 9, 0, 0, 1)


def test_full_load_with_op_column_when_configured():
    dms = replace(DMS, include_op_for_full_load=True)
    table = read("I,2024-01-01 09:00:00,7,Ann,\n", key=LOAD_KEY, dms=dms)
    assert table.column("id").to_pylist() == ["7"]
    with pytest.raises(DmsFormatError, match="expected 5 fields"):
        read("2024-01-01 09:00:00,7,Ann,\n", key=LOAD_KEY, dms=dms)


def test_change_seq_is_the_last_column():
    dms = replace(DMS, change_seq_column=True)
    table = read(
        "U,2024-01-02 10:00:00,1,Ann,,20240102100000000000000000000001\n"
        "U,2024-01-02 10:00:00,1,Ann B,,20240102100000000000000000000002\n",
        dms=dms,
    )
    assert table.column("full_name").to_pylist() == ["Ann", "Ann B"]
    assert table.column("_change_seq").to_pylist() == [
        "20240102100000000000000000000001",
        "20240102100000000000000000000002",
    ]


def test_without_timestamp_column_commit_ts_is_null():
    table = read("I,1,Ann,\n", dms=replace(DMS, timestamp_column=False))
    assert table.column("id").to_pylist() == ["1"]
    assert table.column("_commit_ts").to_pylist() == [None]


def test_gzip_files_by_name_and_by_magic_bytes():
    text = 'I,2024-01-02 10:00:00,1,"multi\nline",\n'
    by_name = read(gzip.compress(text.encode()), key=CDC_KEY + ".gz")
    by_magic = read(gzip.compress(text.encode()))
    assert by_name.column("full_name").to_pylist() == ["multi\nline"]
    assert by_magic.column("full_name").to_pylist() == ["multi\nline"]
    with pytest.raises(DmsFormatError, match="not a valid gzip file"):
        read(b"\x1f\x8bnot gzip", key=CDC_KEY + ".gz")


def test_empty_file_gives_empty_table():
    assert read("").num_rows == 0
    assert read("", key=LOAD_KEY).schema == raw_schema(CONTRACT)


def test_wrong_field_count_names_file_line_and_row():
    # Line numbers count the physical lines of the file, quoted newlines included.
    text = (
        'I,2024-01-02 10:00:00,1,"two\nlines",\n'
        "U,2024-01-02 10:00:01,1,Ann,\n"
        "U,2024-01-02 10:00:02,1,Ann,extra,field\n"
    )
    with pytest.raises(DmsFormatError) as raised:
        read(text)
    message = str(raised.value)
    assert message.startswith(f"{CDC_KEY}, line 4: expected 5 fields")
    assert "(Op + timestamp + 3 contract columns), found 6" in message
    assert "'U,2024-01-02 10:00:02,1,Ann,extra,field'" in message


def test_too_few_fields_in_full_load():
    with pytest.raises(
        DmsFormatError, match=r"LOAD00000001.csv, line 2: expected 4 fields .* found 2"
    ):
        read("2024-01-01 09:00:00,7,Ann,\n2024-01-01 09:00:00,8\n", key=LOAD_KEY)


def test_unknown_op_names_line_and_value():
    with pytest.raises(DmsFormatError) as raised:
        read('I,2024-01-02 10:00:00,1,"a\nb",\nX,2024-01-02 10:00:00,2,b,\n')
    assert str(raised.value) == f"{CDC_KEY}, line 3: Op must be I, U or D, found 'X'"


def test_empty_op_is_an_error():
    with pytest.raises(DmsFormatError, match="line 1: Op must be I, U or D, found None"):
        read(",2024-01-02 10:00:00,1,a,\n")


def test_bad_and_missing_commit_timestamps():
    with pytest.raises(DmsFormatError, match="line 2: DMS timestamp '2024-01-02T25:00' is not"):
        read("I,2024-01-02 10:00:00,1,a,\nI,2024-01-02T25:00,2,b,\n")
    with pytest.raises(DmsFormatError, match="line 1: the DMS timestamp column is empty"):
        read("I,,1,a,\n")


def test_invalid_utf8_names_the_line():
    with pytest.raises(DmsFormatError, match=r"line 2: not UTF-8 \(byte b'\\xff'"):
        read(b"I,2024-01-02 10:00:00,1,a,\nI,2024-01-02 10:00:00,2,\xff,\n")


def test_several_files_concatenate_in_the_given_order():
    load = ("bronze/dms/public/core_customer/LOAD00000001.csv", b"2024-01-01 00:00:00,1,Ann,\n")
    cdc = (CDC_KEY, b"D,2024-01-02 10:00:00,1,,\n")
    table = read_dms_files([load, cdc], CONTRACT, DMS)
    assert table.column("_op").to_pylist() == ["I", "D"]
    assert table.column("_source_file").to_pylist() == [load[0], cdc[0]]
    assert read_dms_files([], CONTRACT, DMS).num_rows == 0
