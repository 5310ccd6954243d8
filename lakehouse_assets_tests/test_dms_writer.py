"""Writing DMS CSV files: what the writer encodes, the reader reads back unchanged."""

from __future__ import annotations

import gzip
from dataclasses import replace
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse_assets.contracts import Column, DatePartitioning, DmsSettings, TableContract
from lakehouse_assets.dms import (
    DmsFormatError,
    FileKind,
    cdc_key,
    change_seq_values,
    encode_csv_rows,
    encode_dms_file,
    full_load_key,
    parse_object_key,
    read_dms_file,
)
from lakehouse_assets.dms.writer import dms_text

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
CDC_KEY = "bronze/dms/public/core_customer/2024/01/02/20240102-101500000.csv"
LOAD_KEY = "bronze/dms/public/core_customer/LOAD00000001.csv"
AWKWARD = [
    "Smith, John",
    'say "hi"',
    '"',
    "two\nlines",
    "crlf\r\ninside",
    "lone\rreturn",
    "a|b;c\td",
    " padded ",
    "Zoë 東京 🎉",
    '{"k":"v, w"}',
]


def customers(names: list[str | None], metadata: list[str | None] | None = None) -> pa.Table:
    n = len(names)
    return pa.table(
        {
            "id": pa.array(range(1, n + 1), pa.int64()),
            "full_name": pa.array(names, pa.string()),
            "metadata": pa.array(metadata or [None] * n, pa.string()),
        }
    )


def stamps(n: int, start: datetime = datetime(2024, 1, 2, 10, 0, 0, 123456)) -> pa.Array:
    return pa.array([start.replace(second=i % 60) for i in range(n)], pa.timestamp("us"))


def round_trip(
    rows: pa.Table,
    key: str = CDC_KEY,
    dms: DmsSettings = DMS,
    contract: TableContract = CONTRACT,
    **metadata: pa.Array,
) -> pa.Table:
    if "ops" not in metadata and parse_object_key(key, dms).kind is FileKind.CDC:
        metadata["ops"] = pa.array(["I"] * rows.num_rows)
    if "commit_ts" not in metadata and dms.timestamp_column:
        metadata["commit_ts"] = stamps(rows.num_rows)
    data = encode_dms_file(rows, key, contract, dms, **metadata)
    return read_dms_file(data, key, contract, dms)


# ------------------------------------------------------------------------ quoting


def test_quoted_delimiters_doubled_quotes_and_newlines_read_back():
    table = round_trip(customers(AWKWARD, metadata=list(reversed(AWKWARD))))
    assert table.column("full_name").to_pylist() == AWKWARD
    assert table.column("metadata").to_pylist() == list(reversed(AWKWARD))
    assert table.column("id").to_pylist() == [str(i) for i in range(1, len(AWKWARD) + 1)]


def test_quotes_only_the_fields_that_need_it():
    data = encode_dms_file(
        customers(["plain", "Smith, John", 'say "hi"', "a\nb"]),
        CDC_KEY,
        CONTRACT,
        DMS,
        ops=pa.array(["I", "U", "U", "D"]),
        commit_ts=pa.array([datetime(2024, 1, 2, 10, 0, 0)] * 4, pa.timestamp("us")),
    )
    assert data == (
        b"I,2024-01-02 10:00:00,1,plain,\n"
        b'U,2024-01-02 10:00:00,2,"Smith, John",\n'
        b'U,2024-01-02 10:00:00,3,"say ""hi""",\n'
        b'D,2024-01-02 10:00:00,4,"a\nb",\n'
    )


@pytest.mark.parametrize("delimiter", ["|", ";", "\t"])
def test_another_delimiter_is_quoted_and_commas_are_not(delimiter: str):
    dms = replace(DMS, delimiter=delimiter)
    names = [f"x{delimiter}y", "a,b", "plain"]
    data = encode_dms_file(
        customers(names), CDC_KEY, CONTRACT, dms, ops=pa.array(["I"] * 3), commit_ts=stamps(3)
    )
    assert f'"x{delimiter}y"'.encode() in data and b'"a,b"' not in data
    assert read_dms_file(data, CDC_KEY, CONTRACT, dms).column("full_name").to_pylist() == names


# ------------------------------------------------------------------------ nulls


def test_nulls_are_the_null_value_and_read_back_as_null():
    table = round_trip(customers([None, "Ann"], metadata=['{"a":1}', None]))
    assert table.column("full_name").to_pylist() == [None, "Ann"]
    assert table.column("metadata").to_pylist() == ['{"a":1}', None]


def test_with_the_default_null_value_an_empty_string_reads_as_null():
    assert round_trip(customers([""])).column("full_name").to_pylist() == [None]


def test_a_null_value_setting_keeps_empty_strings_apart_from_nulls():
    dms = replace(DMS, null_value="NULL")
    rows = customers([None, "", "Ann"])
    data = encode_dms_file(
        rows, CDC_KEY, CONTRACT, dms, ops=pa.array(["I"] * 3), commit_ts=stamps(3)
    )
    assert data.splitlines()[0].endswith(b",1,NULL,NULL")
    table = read_dms_file(data, CDC_KEY, CONTRACT, dms)
    assert table.column("full_name").to_pylist() == [None, "", "Ann"]


# ------------------------------------------------------------------------ values and metadata


def test_typed_values_are_written_as_dms_text():
    contract = TableContract(
        name="t",
        schema="public",
        primary_key=("id",),
        columns=(
            Column("id", "bigint", nullable=False),
            Column("total", "decimal(12,2)"),
            Column("active", "boolean"),
            Column("day", "date"),
            Column("at", "time"),
            Column("created_at", "timestamp"),
            Column("paid_at", "timestamptz"),
            Column("rating", "real"),
        ),
    )
    rows = pa.Table.from_pylist(
        [
            {
                "id": 7,
                "total": Decimal("12.50"),
                "active": True,
                "day": date(2024, 2, 29),
                "at": time(17, 30),
                "created_at": datetime(2024, 1, 2, 3, 4, 5, 600000),
                "paid_at": datetime(2024, 1, 2, 23, 59, 59, 999999, tzinfo=UTC),
                "rating": 4.5,
            },
            {"id": 8, "active": False, "at": time(0, 0, 0, 250)},
        ],
        schema=contract.arrow_schema,
    )
    key = "bronze/dms/public/t/2024/01/02/20240102-101500000.csv"
    table = round_trip(rows, key=key, contract=contract)
    assert table.select(contract.column_names).to_pylist() == [
        {
            "id": "7",
            "total": "12.50",
            "active": "true",
            "day": "2024-02-29",
            "at": "17:30:00",
            "created_at": "2024-01-02 03:04:05.6",
            "paid_at": "2024-01-02 23:59:59.999999",
            "rating": "4.5",
        },
        {
            "id": "8",
            "total": None,
            "active": "false",
            "day": None,
            "at": "00:00:00.00025",
            "created_at": None,
            "paid_at": None,
            "rating": None,
        },
    ]


def test_ops_and_commit_timestamps_read_back():
    commits = [datetime(2024, 1, 2, 10, 0, 0), datetime(2024, 1, 2, 10, 0, 1, 5)]
    table = round_trip(
        customers(["Ann", None]),
        ops=pa.array(["U", "D"]),
        commit_ts=pa.array(commits, pa.timestamp("us")),
    )
    assert table.column("_op").to_pylist() == ["U", "D"]
    assert table.column("_commit_ts").to_pylist() == [c.replace(tzinfo=UTC) for c in commits]


def test_a_cdc_file_needs_ops_and_a_timestamp_column_needs_commit_times():
    with pytest.raises(ValueError, match="a CDC file needs the Op"):
        encode_dms_file(customers(["Ann"]), CDC_KEY, CONTRACT, DMS, commit_ts=stamps(1))
    with pytest.raises(ValueError, match="commit_ts is required"):
        encode_dms_file(customers(["Ann"]), CDC_KEY, CONTRACT, DMS, ops=pa.array(["I"]))


def test_without_a_timestamp_column_rows_start_with_op_then_columns():
    dms = replace(DMS, timestamp_column=False)
    data = encode_dms_file(customers(["Ann"]), CDC_KEY, CONTRACT, dms, ops=pa.array(["I"]))
    assert data == b"I,1,Ann,\n"
    assert read_dms_file(data, CDC_KEY, CONTRACT, dms).column("_commit_ts").to_pylist() == [None]


# ------------------------------------------------------------------------ full load


def test_full_load_has_no_op_column_by_default():
    data = encode_dms_file(
        customers(["Ann"]), LOAD_KEY, CONTRACT, DMS, ops=pa.array(["I"]), commit_ts=stamps(1)
    )
    assert data == b"2024-01-02 10:00:00.123456,1,Ann,\n"
    table = read_dms_file(data, LOAD_KEY, CONTRACT, DMS)
    assert table.column("_op").to_pylist() == ["I"]
    assert table.column("full_name").to_pylist() == ["Ann"]


def test_full_load_has_an_op_column_with_include_op_for_full_load():
    dms = replace(DMS, include_op_for_full_load=True)
    data = encode_dms_file(customers(["Ann", "Bo"]), LOAD_KEY, CONTRACT, dms, commit_ts=stamps(2))
    assert data.startswith(b"I,2024-01-02 10:00:00.123456,1,Ann,\nI,")
    table = read_dms_file(data, LOAD_KEY, CONTRACT, dms)
    assert table.column("_op").to_pylist() == ["I", "I"]
    assert table.column("id").to_pylist() == ["1", "2"]


# ------------------------------------------------------------------------ change seq


def test_change_seqs_are_the_last_column_and_read_back():
    dms = replace(DMS, change_seq_column=True)
    commits = pa.array(
        [datetime(2024, 1, 2, 10, 0, 5, 123456), datetime(2024, 1, 2, 10, 0, 5, 123456)],
        pa.timestamp("us"),
    )
    seqs = change_seq_values(commits, 41)
    assert seqs.to_pylist() == [
        "20240102100005123456000000000000041",
        "20240102100005123456000000000000042",
    ]
    table = round_trip(customers(["Ann", "Ann B"]), dms=dms, commit_ts=commits, change_seqs=seqs)
    assert table.column("_change_seq").to_pylist() == seqs.to_pylist()
    assert table.column("full_name").to_pylist() == ["Ann", "Ann B"]


def test_rows_without_change_seqs_leave_the_column_empty():
    dms = replace(DMS, change_seq_column=True)
    data = encode_dms_file(customers(["Ann"]), LOAD_KEY, CONTRACT, dms, commit_ts=stamps(1))
    assert data.endswith(b",1,Ann,,\n")
    assert read_dms_file(data, LOAD_KEY, CONTRACT, dms).column("_change_seq").to_pylist() == [None]


# ------------------------------------------------------------------------ gzip


def test_a_gz_key_gives_a_reproducible_gzip_file_that_reads_back():
    rows = customers(AWKWARD)
    arguments = {"ops": pa.array(["I"] * len(AWKWARD)), "commit_ts": stamps(len(AWKWARD))}
    plain = encode_dms_file(rows, CDC_KEY, CONTRACT, DMS, **arguments)
    packed = encode_dms_file(rows, CDC_KEY + ".gz", CONTRACT, DMS, **arguments)
    assert packed[:2] == b"\x1f\x8b" and gzip.decompress(packed) == plain
    assert encode_dms_file(rows, CDC_KEY + ".gz", CONTRACT, DMS, **arguments) == packed
    table = read_dms_file(packed, CDC_KEY + ".gz", CONTRACT, DMS)
    assert table.column("full_name").to_pylist() == AWKWARD


# ------------------------------------------------------------------------ plain rows


def test_plain_rows_read_back_with_quoting_and_nulls():
    rows = [
        ["I", "2024-01-02 10:00:00", "1", 'Smith, "Jo"\nline two', None],
        ["U", "2024-01-02 10:00:01", "1", "crlf\r\ninside", '{"vip": true}'],
    ]
    data = encode_csv_rows(rows, DMS)
    assert data.startswith(b'I,2024-01-02 10:00:00,1,"Smith, ""Jo""\nline two",\n')
    table = read_dms_file(data, CDC_KEY, CONTRACT, DMS)
    assert table.column("full_name").to_pylist() == [row[3] for row in rows]
    assert table.column("metadata").to_pylist() == [None, '{"vip": true}']
    assert table.column("_op").to_pylist() == ["I", "U"]


def test_plain_rows_follow_the_delimiter_and_null_value():
    dms = replace(DMS, delimiter=";", null_value="NULL")
    data = encode_csv_rows([["I", "2024-01-02 10:00:00", "1", "a;b", None]], dms)
    assert data == b'I;2024-01-02 10:00:00;1;"a;b";NULL\n'
    assert read_dms_file(data, CDC_KEY, CONTRACT, dms).column("metadata").to_pylist() == [None]


def test_plain_rows_may_be_malformed_for_the_reader_to_reject():
    data = encode_csv_rows([["I", "2024-01-02 10:00:00", "1", "Ann", None], ["U", "x"]], DMS)
    with pytest.raises(DmsFormatError, match="line 2: expected 5 fields"):
        read_dms_file(data, CDC_KEY, CONTRACT, DMS)


text_values = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(text_values, st.none() | text_values), min_size=1, max_size=5))
def test_any_text_reads_back_unchanged(values: list[tuple[str, str | None]]):
    dms = replace(DMS, null_value="\\N")
    values = [(name, meta) for name, meta in values if "\\N" not in (name, meta)]
    rows = [["I", "2024-01-02 10:00:00", "1", name, meta] for name, meta in values]
    table = read_dms_file(encode_csv_rows(rows, dms), CDC_KEY, CONTRACT, dms)
    assert table.select(["full_name", "metadata"]).to_pylist() == [
        {"full_name": name, "metadata": meta} for name, meta in values
    ]


# ------------------------------------------------------------------------ keys


def test_keys_parse_back_to_their_kind_and_day():
    load = parse_object_key(full_load_key(DMS, "public", "core_customer", 10), DMS)
    assert (load.kind, load.file_name) == (FileKind.FULL_LOAD, "LOAD0000000A.csv")
    written = datetime(2024, 1, 2, 10, 15, 0, 987654, tzinfo=UTC)
    daily = replace(DMS, date_partition=DatePartitioning(enabled=True))
    assert cdc_key(daily, "public", "core_customer", written) == (
        "bronze/dms/public/core_customer/2024/01/02/20240102-101500987.csv"
    )
    hourly = replace(DMS, date_partition=DatePartitioning(True, "YYYYMMDDHH", "DASH"))
    key = cdc_key(hourly, "public", "core_customer", written)
    assert key == "bronze/dms/public/core_customer/2024-01-02-10/20240102-101500987.csv"
    assert parse_object_key(key, hourly).date == date(2024, 1, 2)
    assert cdc_key(DMS, "public", "t", written) == "bronze/dms/public/t/20240102-101500987.csv"


def test_keys_follow_the_data_format():
    parquet = replace(DMS, format="parquet", date_partition=DatePartitioning(enabled=True))
    written = datetime(2024, 1, 2, 10, 15, 0, 987654, tzinfo=UTC)
    assert full_load_key(parquet, "public", "t", 10) == "bronze/dms/public/t/LOAD0000000A.parquet"
    key = cdc_key(parquet, "public", "t", written)
    assert key == "bronze/dms/public/t/2024/01/02/20240102-101500987.parquet"
    assert parse_object_key(key, parquet).kind is FileKind.CDC


# ------------------------------------------------------------------------ DMS text


def test_dms_text_spells_decimals_plain_bytes_as_hex_and_times_in_microseconds():
    tiny = pa.array([Decimal("0.000000123"), Decimal("-0.000000100"), Decimal("0"), None])
    assert dms_text(tiny.cast(pa.decimal128(20, 9))).to_pylist() == [
        "0.000000123",
        "-0.000000100",
        "0.000000000",
        None,
    ]
    assert dms_text(pa.array([Decimal("12.50")], pa.decimal128(12, 2))).to_pylist() == ["12.50"]
    blobs = pa.array([b"\x00\xffab", b"", None, b"\x10"], pa.binary())
    assert dms_text(blobs).to_pylist() == ["\\x00ff6162", "\\x", None, "\\x10"]
    assert dms_text(blobs.slice(1)).to_pylist() == ["\\x", None, "\\x10"]
    assert dms_text(pa.array([time(1, 2, 3)], pa.time32("s"))).to_pylist() == ["01:02:03"]
    assert dms_text(pa.array(["a", "a", None]).dictionary_encode()).to_pylist() == ["a", "a", None]


def test_bytes_and_tiny_decimals_are_written_as_dms_text_in_csv():
    contract = TableContract(
        name="t",
        schema="public",
        primary_key=("id",),
        columns=(Column("id", "bigint", nullable=False), Column("rate", "decimal(20,9)")),
    )
    rows = pa.table(
        {"id": pa.array([1], pa.int64()), "rate": pa.array([Decimal("1E-7")], pa.decimal128(20, 9))}
    )
    key = "bronze/dms/public/t/2024/01/02/20240102-101500000.csv"
    assert round_trip(rows, key=key, contract=contract).column("rate").to_pylist() == [
        "0.000000100"
    ]


# ------------------------------------------------------------------------ header rows


def test_header_rows_name_op_timestamp_columns_and_change_seq():
    dms = replace(DMS, add_column_name=True, change_seq_column=True, timestamp_name="commit_ts")
    data = encode_dms_file(customers(["Ann"]), CDC_KEY, CONTRACT, dms, **cdc_metadata(1))
    assert data.splitlines()[0] == b"Op,commit_ts,id,full_name,metadata,AR_H_CHANGE_SEQ"
    load = encode_dms_file(customers(["Ann"]), LOAD_KEY, CONTRACT, dms, commit_ts=stamps(1))
    assert load.splitlines()[0] == b"commit_ts,id,full_name,metadata,AR_H_CHANGE_SEQ"
    assert read_dms_file(load, LOAD_KEY, CONTRACT, dms).column("full_name").to_pylist() == ["Ann"]


def test_fields_named_alike_are_refused():
    dms = replace(DMS, add_column_name=True, timestamp_name="ID")
    with pytest.raises(ValueError, match="two fields are named 'ID'"):
        encode_dms_file(customers(["Ann"]), CDC_KEY, CONTRACT, dms, **cdc_metadata(1))


def cdc_metadata(n: int) -> dict[str, pa.Array]:
    return {"ops": pa.array(["I"] * n), "commit_ts": stamps(n)}
