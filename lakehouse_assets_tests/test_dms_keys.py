"""DMS object keys: every documented layout parses to the right table, kind, day and order."""

from datetime import date

import pytest

from lakehouse_assets.contracts import DatePartitioning, DmsSettings
from lakehouse_assets.dms import (
    DmsKeyError,
    FileKind,
    date_folder,
    date_folder_prefix,
    parse_object_key,
    table_prefix,
)
from lakehouse_assets.dms.keys import FileFormat

FLAT = DmsSettings(bucket_folder="bronze/dms")


def dated(sequence: str, delimiter: str) -> DmsSettings:
    return DmsSettings(
        bucket_folder="bronze/dms",
        date_partition=DatePartitioning(enabled=True, sequence=sequence, delimiter=delimiter),
    )


@pytest.mark.parametrize(
    "name, counter, gzip",
    [
        ("LOAD00000001.csv", 1, False),
        ("LOAD00000009.csv", 9, False),
        ("LOAD0000000A.csv", 10, False),
        ("LOAD00000010.csv", 16, False),
        ("LOAD000000FF.csv.gz", 255, True),
    ],
)
def test_full_load_file_hex_counter(name, counter, gzip):
    key = parse_object_key(f"bronze/dms/public/core_order/{name}", FLAT)
    assert (key.schema, key.table, key.kind) == ("public", "core_order", FileKind.FULL_LOAD)
    assert key.order[-1] == counter
    assert key.gzip is gzip
    assert key.date is None  # the day of a full-load file is its last-modified date


def test_load_counter_orders_numerically_not_by_name():
    names = ["LOAD00000010.csv", "LOAD0000000A.csv", "LOAD00000009.csv", "LOAD00000001.csv"]
    keys = [parse_object_key(f"bronze/dms/s/t/{n}", FLAT) for n in names]
    assert [k.file_name for k in sorted(keys, key=lambda k: k.order)] == list(reversed(names))


def test_segment_prefix_and_sub_folders_for_full_load():
    key = parse_object_key("bronze/dms/sales/orders/part_2/SEGMENT3_LOAD0000000B.csv", FLAT)
    assert key.kind is FileKind.FULL_LOAD and key.table == "orders"
    assert key.order == (0, "part_2", 3, 11)


def test_full_load_sorts_before_cdc_although_its_name_sorts_after():
    load = parse_object_key("bronze/dms/public/t/LOAD00000001.csv", FLAT)
    cdc = parse_object_key("bronze/dms/public/t/20240102-000000001.csv", FLAT)
    assert load.key > cdc.key  # plain name order would apply the load last
    assert load.order < cdc.order


def test_cdc_file_name_gives_day_and_order():
    key = parse_object_key("bronze/dms/public/core_order/20240115-235959123.csv.gz", FLAT)
    assert key.kind is FileKind.CDC and key.gzip
    assert key.date == date(2024, 1, 15)
    later = parse_object_key("bronze/dms/public/core_order/20240116-000000001.csv", FLAT)
    assert key.order < later.order


def test_cdc_names_with_longer_time_digits_order_by_time():
    short = parse_object_key("bronze/dms/s/t/20240115-101500123.csv", FLAT)  # 10:15:00.123
    long = parse_object_key("bronze/dms/s/t/20240115-1015001234567.csv", FLAT)  # 10:15:00.1234567
    assert short.order < long.order


@pytest.mark.parametrize(
    "sequence, delimiter, folder",
    [
        ("YYYYMMDD", "SLASH", "2024/01/15"),
        ("YYYYMMDD", "UNDERSCORE", "2024_01_15"),
        ("YYYYMMDD", "DASH", "2024-01-15"),
        ("YYYYMMDD", "NONE", "20240115"),
        ("YYYYMMDDHH", "SLASH", "2024/01/15/23"),
        ("YYYYMMDDHH", "DASH", "2024-01-15-23"),
        ("MMYYYYDD", "SLASH", "01/2024/15"),
        ("DDMMYYYY", "SLASH", "15/01/2024"),
        ("DDMMYYYY", "NONE", "15012024"),
    ],
)
def test_date_folder_sequences(sequence, delimiter, folder):
    dms = dated(sequence, delimiter)
    # The file name says the 16th: the date folder wins (it is the partition DMS chose).
    key = parse_object_key(f"bronze/dms/public/core_order/{folder}/20240116-000000001.csv", dms)
    assert key.date == date(2024, 1, 15)
    assert date_folder(dms.date_partition, date(2024, 1, 15), hour=23) == folder + "/"
    assert (folder + "/").startswith(date_folder_prefix(dms.date_partition, date(2024, 1, 15)))


def test_month_folders_take_the_day_from_the_file_name():
    dms = dated("YYYYMM", "SLASH")
    key = parse_object_key("bronze/dms/public/t/2024/01/20240117-080000000.csv", dms)
    assert key.date == date(2024, 1, 17)
    assert date_folder_prefix(dms.date_partition, date(2024, 1, 17)) == "2024/01/"


def test_full_load_beside_date_folders_has_no_folder_day():
    key = parse_object_key("bronze/dms/public/t/LOAD00000002.csv", dated("YYYYMMDD", "SLASH"))
    assert key.kind is FileKind.FULL_LOAD and key.date is None


def test_table_prefix_without_bucket_folder():
    assert table_prefix(DmsSettings(bucket_folder=""), "public", "t") == "public/t/"
    assert table_prefix(FLAT, "public", "t") == "bronze/dms/public/t/"
    key = parse_object_key("public/t/LOAD00000001.csv", DmsSettings(bucket_folder=""))
    assert (key.schema, key.table) == ("public", "t")


@pytest.mark.parametrize(
    "key, dms, message",
    [
        ("other/public/t/LOAD00000001.csv", FLAT, "not under the DMS bucket folder"),
        ("bronze/dms/public/LOAD00000001.csv", FLAT, "expected <schema>/<table>"),
        ("bronze/dms/public/t/notes.txt", FLAT, "neither a full-load file"),
        ("bronze/dms/public/t/LOADXYZ.csv", FLAT, "neither a full-load file"),
        ("bronze/dms/public/t/20241399-000000000.csv", FLAT, "not a valid YYYYMMDD date"),
        (
            "bronze/dms/public/t/20240115-000000000.csv",
            dated("YYYYMMDD", "SLASH"),
            "the CDC file is not in a date folder",
        ),
        (
            "bronze/dms/public/t/2024/1/15/20240115-000000000.csv",
            dated("YYYYMMDD", "SLASH"),
            "does not match the date partitioning YYYYMMDD",
        ),
        (
            "bronze/dms/public/t/2024/02/30/20240115-000000000.csv",
            dated("YYYYMMDD", "SLASH"),
            "is not a valid date",
        ),
    ],
)
def test_bad_keys_say_what_is_wrong(key, dms, message):
    with pytest.raises(DmsKeyError) as raised:
        parse_object_key(key, dms)
    assert str(raised.value).startswith(key)
    assert message in str(raised.value)


def test_order_text_sorts_like_order():
    keys = [
        parse_object_key(f"bronze/dms/s/t/{name}", FLAT)
        for name in (
            "sub/LOAD00000001.csv",
            "LOAD00000002.csv",
            "LOAD0000000A.csv",
            "SEGMENT2_LOAD00000001.csv",
            "a/b/LOAD00000001.csv",
            "a/LOAD00000003.csv",
            "20240102-000000001.csv",
            "20240101-235959999.csv",
        )
    ]
    assert sorted(keys, key=lambda k: k.order) == sorted(keys, key=lambda k: k.order_text)


@pytest.mark.parametrize(
    "name, kind",
    [
        ("LOAD00000001.parquet", FileKind.FULL_LOAD),
        ("SEGMENT2_LOAD0000000A.parquet", FileKind.FULL_LOAD),
        ("2024/01/15/20240115-101500000.parquet", FileKind.CDC),
    ],
)
def test_parquet_keys_have_the_csv_layouts_and_order(name: str, kind: FileKind):
    dms = dated("YYYYMMDD", "SLASH")
    parquet = parse_object_key(f"bronze/dms/public/t/{name}", dms)
    csv = parse_object_key(f"bronze/dms/public/t/{name.replace('.parquet', '.csv')}", dms)
    assert (parquet.kind, parquet.format, parquet.gzip) == (kind, FileFormat.PARQUET, False)
    assert csv.format is FileFormat.CSV
    assert (parquet.date, parquet.order_text) == (
        csv.date,
        csv.order_text.replace(".csv", ".parquet"),
    )
    assert parquet.order[:-1] == csv.order[:-1]


def test_parquet_full_load_sorts_before_parquet_cdc():
    load = parse_object_key("bronze/dms/public/t/LOAD00000002.parquet", FLAT)
    cdc = parse_object_key("bronze/dms/public/t/20240102-000000001.parquet", FLAT)
    assert load.order < cdc.order and load.order_text < cdc.order_text
    assert load.order == (0, "", 0, 2)


@pytest.mark.parametrize("name", ["LOAD00000001.parquet.gz", "20240115-101500000.pq"])
def test_other_extensions_are_not_dms_files(name: str):
    with pytest.raises(DmsKeyError, match="neither a full-load file"):
        parse_object_key(f"bronze/dms/public/t/{name}", FLAT)
