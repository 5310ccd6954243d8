"""Typing raw DMS strings into contract types: every type, its edge cases, and rejects.

Changes are real DMS CSV texts read with ``read_dms_file``, so what is typed is
exactly what the reader hands the silver layer.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pyarrow as pa
import pytest

from lakehouse_assets.contracts import Column, DmsSettings, TableContract
from lakehouse_assets.dms import read_dms_file
from lakehouse_assets.silver.casting import REASON, TypedChanges, cast_changes, silver_type

DMS = DmsSettings(bucket_folder="bronze/dms")
KEY = "bronze/dms/public/t/20240102-101500000.csv"
TS = "2024-01-02 10:15:00.000001"


def contract_with(value_type: str, nullable: bool = True) -> TableContract:
    return TableContract(
        name="t",
        schema="public",
        primary_key=("id",),
        columns=(Column("id", "bigint", nullable=False), Column("v", value_type, nullable)),
    )


def dms_csv(rows: list[list[str | None]]) -> bytes:
    """DMS CSV text: None is the null value (an empty field), quoting as RFC 4180."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow(["" if value is None else value for value in row])
    return out.getvalue().encode()


def cast(contract: TableContract, rows: list[list[str | None]]) -> TypedChanges:
    raw = read_dms_file(dms_csv(rows), KEY, contract, DMS)
    assert raw.num_rows == len(rows)
    return cast_changes(raw, contract)


def cast_values(value_type: str, values: list[str | None]) -> tuple[dict, dict]:
    """Cast one value per row: ({id: typed value} of accepted rows, {id: reason} of rejects)."""
    contract = contract_with(value_type)
    result = cast(contract, [["I", TS, str(i), value] for i, value in enumerate(values)])
    typed = result.typed
    accepted = dict(zip(typed["id"].to_pylist(), typed["v"].to_pylist()))
    rejected = dict(
        zip((int(i) for i in result.rejects["id"].to_pylist()), result.rejects[REASON].to_pylist())
    )
    assert sorted([*accepted, *rejected]) == list(range(len(values))), (
        "every row is typed or rejected"
    )
    assert typed.schema.field("v").type == silver_type(contract.column("v"))
    return accepted, rejected


def assert_rejected(rejected: dict, index: int, value: str, value_type: str) -> None:
    reason = rejected[index]
    assert "'v'" in reason and repr(value) in reason and value_type in reason, reason


# ------------------------------------------------------------------ integers


def test_integers_within_range_and_overflow():
    ok, bad = cast_values("smallint", ["0", "32767", "-32768", "32768", "-32769", "1.5", "x", None])
    assert ok == {0: 0, 1: 32767, 2: -32768, 7: None}
    assert set(bad) == {3, 4, 5, 6}
    assert_rejected(bad, 3, "32768", "smallint")
    # Iceberg has no 16-bit integer: smallint lands as int32 once range-checked as int16.
    assert silver_type(Column("v", "smallint")) == pa.int32()

    ok, bad = cast_values("int", ["2147483647", "-2147483648", "2147483648"])
    assert ok == {0: 2147483647, 1: -2147483648}
    assert_rejected(bad, 2, "2147483648", "int")

    ok, bad = cast_values("bigint", ["9223372036854775807", "9223372036854775808", "12abc"])
    assert ok == {0: 9223372036854775807}
    assert set(bad) == {1, 2}


# ------------------------------------------------------------------ decimals and floats


def test_decimals_are_exact_and_reject_lost_digits():
    ok, bad = cast_values(
        "decimal(10,2)",
        ["0.10", "12345678.99", "-0.01", "1.5", "7", "1.234", "123456789.00", "abc", "0.1000"],
    )
    assert ok[0] == Decimal("0.10") and ok[1] == Decimal("12345678.99")
    assert ok[2] == Decimal("-0.01") and ok[3] == Decimal("1.50") and ok[4] == Decimal("7.00")
    # Trailing zeros beyond the scale lose nothing.
    assert ok[8] == Decimal("0.10")
    # A third fraction digit would be rounded away; too many integer digits overflow.
    assert set(bad) == {5, 6, 7}
    assert_rejected(bad, 5, "1.234", "decimal(10,2)")
    assert_rejected(bad, 6, "123456789.00", "decimal(10,2)")
    # No float detour: 38 significant digits survive.
    ok, bad = cast_values("decimal(38,10)", ["1234567890123456789012345678.0123456789"])
    assert ok[0] == Decimal("1234567890123456789012345678.0123456789") and not bad


def test_real_and_double_including_nan_and_infinity():
    ok, bad = cast_values("double", ["1.5", "-2e-3", "NaN", "Infinity", "-Infinity", "x"])
    assert ok[0] == 1.5 and ok[1] == -0.002
    assert math.isnan(ok[2]) and ok[3] == math.inf and ok[4] == -math.inf
    assert_rejected(bad, 5, "x", "double")

    ok, bad = cast_values("real", ["0.25", "NaN", "-1.5e-3", "one"])
    assert ok[0] == 0.25 and math.isnan(ok[1]) and ok[2] == pytest.approx(-1.5e-3)
    assert set(bad) == {3}
    assert silver_type(Column("v", "real")) == pa.float32()


# ------------------------------------------------------------------ booleans


def test_booleans_in_every_dms_spelling():
    ok, bad = cast_values("boolean", ["t", "f", "true", "false", "T", "FALSE", "yes", "", None])
    assert ok == {0: True, 1: False, 2: True, 3: False, 4: True, 5: False, 7: None, 8: None}
    assert set(bad) == {6}
    assert_rejected(bad, 6, "yes", "boolean")


# ------------------------------------------------------------------ dates and times


def test_dates():
    ok, bad = cast_values("date", ["2024-01-02", "1970-01-01", "2024-02-30", "02/01/2024"])
    assert ok == {0: date(2024, 1, 2), 1: date(1970, 1, 1)}
    assert set(bad) == {2, 3}
    assert_rejected(bad, 2, "2024-02-30", "date")


def test_time_with_zero_to_six_fraction_digits():
    fractions = ["", ".1", ".12", ".123", ".1234", ".12345", ".123456"]
    micros = [0, 100000, 120000, 123000, 123400, 123450, 123456]
    ok, bad = cast_values(
        "time",
        [f"13:45:59{f}" for f in fractions] + ["23:59:59.9999999", "24:00:00", "12:60:00", "noon"],
    )
    assert [ok[i] for i in range(7)] == [time(13, 45, 59, m) for m in micros]
    assert set(bad) == {7, 8, 9, 10}
    assert_rejected(bad, 8, "24:00:00", "time")


def test_timestamp_with_zero_to_six_fraction_digits():
    fractions = ["", ".1", ".12", ".123", ".1234", ".12345", ".123456"]
    micros = [0, 100000, 120000, 123000, 123400, 123450, 123456]
    values = [f"2024-03-04 05:06:07{f}" for f in fractions] + [
        "2024-03-04 05:06:07.1234567",
        "2024-13-01 00:00:00",
        "2024-03-04 05:06:07+02:00",  # a naive timestamp column takes no offset
    ]
    ok, bad = cast_values("timestamp", values)
    assert [ok[i] for i in range(7)] == [datetime(2024, 3, 4, 5, 6, 7, m) for m in micros]
    assert set(bad) == {7, 8, 9}
    assert_rejected(bad, 7, "2024-03-04 05:06:07.1234567", "timestamp")


def test_timestamptz_without_offset_is_utc_and_offsets_are_honoured():
    ok, bad = cast_values(
        "timestamptz",
        [
            "2024-03-04 05:06:07",
            "2024-03-04 05:06:07.5",
            "2024-03-04 05:06:07.123456+02:00",
            "2024-03-04 05:06:07-05",
            "2024-03-04 05:06:07+0530",
            "2024-03-04 05:06:07Z",
            "yesterday",
        ],
    )
    utc = UTC
    assert ok[0] == datetime(2024, 3, 4, 5, 6, 7, tzinfo=utc)
    assert ok[1] == datetime(2024, 3, 4, 5, 6, 7, 500000, tzinfo=utc)
    assert ok[2] == datetime(2024, 3, 4, 3, 6, 7, 123456, tzinfo=utc)
    assert ok[3] == datetime(2024, 3, 4, 10, 6, 7, tzinfo=utc)
    assert ok[4] == datetime(2024, 3, 3, 23, 36, 7, tzinfo=utc)
    assert ok[5] == datetime(2024, 3, 4, 5, 6, 7, tzinfo=utc)
    assert set(bad) == {6}
    assert_rejected(bad, 6, "yesterday", "timestamptz")


# ------------------------------------------------------------------ text-like types


def test_json_is_validated_and_kept_as_text():
    valid = ['{"a": [1, 2, {"b": null}]}', "[]", '"text, with comma"', "42", "true"]
    invalid = ["{bad", "{'a': 1}", "NaN", '{"a": Infinity}', "[1,]"]
    ok, bad = cast_values("json", valid + invalid)
    assert [ok[i] for i in range(len(valid))] == valid
    assert set(bad) == set(range(len(valid), len(valid) + len(invalid)))
    assert_rejected(bad, len(valid), "{bad", "json")


def test_uuid_is_validated_and_lowercased():
    ok, bad = cast_values(
        "uuid",
        [
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "not-a-uuid",
        ],
    )
    assert ok == {
        0: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        1: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    }
    assert set(bad) == {2, 3, 4}


def test_bytes_from_postgres_hex_form():
    ok, bad = cast_values(
        "bytes", ["\\xdeadbeef", "\\xDEADBEEF", "\\x", "\\x00ff", "\\xabc", "\\xzz"]
    )
    assert ok == {0: b"\xde\xad\xbe\xef", 1: b"\xde\xad\xbe\xef", 2: b"", 3: b"\x00\xff"}
    assert set(bad) == {4, 5}
    assert_rejected(bad, 4, "\\xabc", "bytes")


def test_strings_pass_through_with_quotes_commas_and_newlines():
    ok, bad = cast_values("string", ['Smith, "Jo"\nline two', "ü€", None])
    assert ok == {0: 'Smith, "Jo"\nline two', 1: "ü€", 2: None} and not bad


# ------------------------------------------------------------------ rows, nulls, deletes


WIDE = TableContract(
    name="t",
    schema="public",
    primary_key=("id",),
    columns=(
        Column("id", "bigint", nullable=False),
        Column("name", "string", nullable=False),
        Column("amount", "decimal(10,2)"),
        Column("created_at", "timestamp", nullable=False),
    ),
)


def test_not_null_violations_are_rejected_with_column_named():
    result = cast(
        WIDE,
        [
            ["I", TS, "1", "ann", "1.00", "2024-01-01 00:00:00"],
            ["I", TS, "2", None, "1.00", "2024-01-01 00:00:00"],  # required name empty
            ["U", TS, "3", "cy", "1.00", None],  # required created_at empty
            ["I", TS, None, "dee", "1.00", "2024-01-01 00:00:00"],  # key empty
            ["I", TS, "5", "eve", None, "2024-01-01 00:00:00"],  # nullable amount empty: fine
        ],
    )
    assert result.typed["id"].to_pylist() == [1, 5]
    reasons = dict(
        zip(result.rejects["_source_row"].to_pylist(), result.rejects[REASON].to_pylist())
    )
    assert set(reasons) == {2, 3, 4}
    assert "'name'" in reasons[2] and "required" in reasons[2]
    assert "'created_at'" in reasons[3] and "required" in reasons[3]
    assert "'id'" in reasons[4]


def test_delete_rows_carrying_only_the_key_are_valid():
    result = cast(
        WIDE,
        [
            ["D", TS, "7", None, None, None],
            ["D", TS, "8", "bo", "not-a-number", "garbage"],  # a bad before-image is dropped
            ["D", TS, None, None, None, None],  # a delete without its key is useless
        ],
    )
    assert result.typed["id"].to_pylist() == [7, 8]
    assert result.typed["_op"].to_pylist() == ["D", "D"]
    assert result.typed["amount"].to_pylist() == [None, None]
    assert result.rejects.num_rows == 1
    assert "'id'" in result.rejects[REASON][0].as_py()


def test_rejects_keep_raw_strings_metadata_and_the_first_reason():
    result = cast(
        WIDE,
        [
            ["I", TS, "1", "ann", "12.345", "2024-01-01 00:00:00"],
            ["I", TS, "2", "bo", "oops", "not a time"],
            ["I", TS, "3", "cy", "3.00", "2024-01-01 00:00:00"],
        ],
    )
    assert result.typed["id"].to_pylist() == [3]
    rejects = result.rejects
    assert rejects.column_names == [
        *WIDE.column_names,
        "_op",
        "_commit_ts",
        "_change_seq",
        "_source_file",
        "_source_row",
        REASON,
    ]
    assert rejects["amount"].to_pylist() == ["12.345", "oops"]  # raw, untyped
    assert rejects["_source_file"].to_pylist() == [KEY, KEY]
    assert rejects["_source_row"].to_pylist() == [1, 2]
    first, second = rejects[REASON].to_pylist()
    assert first == "column 'amount': '12.345' is not a valid decimal(10,2)"
    assert second.startswith(
        "column 'amount': 'oops'"
    )  # one reason per row: the first column at fault


def test_typed_table_keeps_metadata_and_contract_types():
    result = cast(WIDE, [["I", TS, "1", "ann", "1.10", "2024-01-01 00:00:00"]])
    typed = result.typed
    assert typed.column_names == [
        *WIDE.column_names,
        "_op",
        "_commit_ts",
        "_change_seq",
        "_source_file",
        "_source_row",
    ]
    assert typed.schema.field("amount").type == pa.decimal128(10, 2)
    assert typed.schema.field("created_at").type == pa.timestamp("us")
    assert typed["_commit_ts"][0].as_py() == datetime(2024, 1, 2, 10, 15, 0, 1, tzinfo=UTC)
    assert result.rejects.num_rows == 0


def test_empty_batch():
    raw = read_dms_file(b"", KEY, WIDE, DMS)
    result = cast_changes(raw, WIDE)
    assert result.typed.num_rows == 0 and result.rejects.num_rows == 0


@pytest.mark.parametrize(
    "value_type", ["smallint", "decimal(10,2)", "time", "json", "bytes", "boolean"]
)
def test_all_null_nullable_columns_type_to_nulls(value_type):
    ok, bad = cast_values(value_type, [None, None])
    assert ok == {0: None, 1: None} and not bad
