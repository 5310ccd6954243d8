"""Contract loading: the demo contracts load, and every bad contract names file, table and field."""

import copy
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from lakehouse_assets.bronze.files import list_partition_files, read_partition_files
from lakehouse_assets.contracts import ContractError, demo_contracts_path, load_contracts
from lakehouse_assets.lake import open_lake
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for, warehouse_for_lake
from lakehouse_assets.silver.apply import merge_changes

DEMO_TABLES = {
    "core_tenant",
    "core_customer",
    "core_product",
    "core_order",
    "core_orderitem",
    "core_event",
    "core_subscription",
    "core_invoice",
}

GOOD = {
    "dms": {"bucket_folder": "bronze/dms/", "change_seq_column": True},
    "tables": {
        "core_order": {
            "schema": "public",
            "primary_key": ["id"],
            "partition_by": {"column": "created_at", "transform": "month"},
            "columns": [
                {"name": "id", "type": "bigint", "nullable": False},
                {"name": "total", "type": "decimal(12, 2)"},
                {"name": "created_at", "type": "timestamp"},
            ],
        }
    },
}


def write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "contracts.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_demo_contracts_describe_the_saas_source():
    contracts = load_contracts()
    assert set(contracts.tables) == DEMO_TABLES
    assert contracts.source == str(demo_contracts_path())
    order = contracts.table("core_order")
    assert order.primary_key == ("id",)
    assert order.partition_by.column == "created_at" and order.partition_by.transform == "month"
    assert order.arrow_schema.field("total").type == pa.decimal128(12, 2)
    assert contracts.table("core_invoice").arrow_schema.field("issued_at").type == pa.timestamp(
        "us", tz="UTC"
    )
    assert contracts.table("core_customer").partition_by.width == 8
    assert contracts.dms.date_partition.enabled and contracts.dms.date_partition.separator == "/"


def test_good_contract_normalises_types_and_settings(tmp_path):
    contracts = load_contracts(write(tmp_path, GOOD))
    order = contracts.table("core_order")
    assert order.column("total").type == "decimal(12,2)"
    assert order.column("total").decimal == (12, 2)
    assert contracts.dms.bucket_folder == "bronze/dms"
    assert contracts.dms.change_seq_column is True
    assert contracts.dms.include_op_for_full_load is False  # default


def _mutate(path: list, value):
    document = copy.deepcopy(GOOD)
    target = document
    for step in path[:-1]:
        target = target[step]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (
            ["tables", "core_order", "columns", 1, "type"],
            "money",
            "table 'core_order', field 'columns[1].type': column 'total': unknown type 'money'",
        ),
        (
            ["tables", "core_order", "primary_key"],
            KeyError,
            "table 'core_order', field 'primary_key': missing",
        ),
        (
            ["tables", "core_order", "primary_key"],
            ["order_id"],
            "table 'core_order', field 'primary_key': "
            "column 'order_id' is not in the table's columns",
        ),
        (
            ["tables", "core_order", "columns", 2, "name"],
            "id",
            "table 'core_order', field 'columns[2].name': duplicate column 'id'",
        ),
        (
            ["tables", "core_order", "partition_by", "column"],
            "placed_at",
            "table 'core_order', field 'partition_by.column': "
            "column 'placed_at' is not in the table's columns",
        ),
        (
            ["tables", "core_order", "partition_by", "transform"],
            "week",
            "table 'core_order', field 'partition_by.transform': unknown transform 'week'",
        ),
        (
            ["tables", "core_order", "partition_by"],
            {"column": "total", "transform": "day"},
            "table 'core_order', field 'partition_by.transform': "
            "transform 'day' needs a date or timestamp",
        ),
        (
            ["tables", "core_order", "columns", 1, "type"],
            "decimal(4,6)",
            "field 'columns[1].type': column 'total': "
            "decimal(4,6) needs 0 <= scale <= precision <= 38",
        ),
        (
            ["tables", "core_order", "columns", 1, "name"],
            "_op",
            "field 'columns[1].name': column '_op': names starting with '_' are reserved",
        ),
        (
            ["tables", "core_order", "schema"],
            KeyError,
            "table 'core_order', field 'schema': missing",
        ),
        (
            ["tables", "core_order", "colums"],
            [],
            "table 'core_order', field 'colums': unknown field",
        ),
        (["dms", "delimiter"], ";;", "field 'dms.delimiter': must be a single character"),
        (
            ["dms", "date_partition"],
            {"enabled": True, "sequence": "YYYYDDMM"},
            "field 'dms.date_partition.sequence': unknown sequence 'YYYYDDMM'",
        ),
        (
            ["dms", "timestamp_column"],
            "commit time",
            "field 'dms.timestamp_column': must be true, false or a column name",
        ),
        (["dms", "include_op_for_full_load"], "yes", "must be true or false"),
        (["dms", "format"], "avro", "field 'dms.format': must be one of csv, parquet"),
        (["dms", "on_bad_file"], "skip", "must be one of quarantine, fail"),
        (["dms", "load_start_margin_seconds"], -5, "must be a whole number >= 0"),
    ],
)
def test_bad_contract_names_file_table_and_field(tmp_path, path, value, expected):
    contract_file = write(tmp_path, _mutate(path, value))
    with pytest.raises(ContractError) as raised:
        load_contracts(contract_file)
    message = str(raised.value)
    assert message.startswith(str(contract_file)), message
    assert expected in message, message


def test_unreadable_and_invalid_yaml_files_are_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ContractError, match="nope.yaml: cannot read contract file"):
        load_contracts(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("tables: [unclosed\n")
    with pytest.raises(ContractError, match="broken.yaml: not valid YAML"):
        load_contracts(broken)


def test_unknown_table_lookup_lists_known_tables():
    with pytest.raises(ContractError, match="no table 'core_orders' .*core_order"):
        load_contracts().table("core_orders")


def test_dms_columns_may_be_named_and_formats_chosen(tmp_path):
    document = yaml.safe_load(demo_contracts_path().read_text())
    document["dms"].update(
        timestamp_column="COMMIT_TIME",
        change_seq_column="CHANGE_SEQ",
        format="Parquet",
        add_column_name=True,
        on_bad_file="fail",
    )
    dms = load_contracts(write(tmp_path, document)).dms
    assert (dms.timestamp_column, dms.timestamp_name) == (True, "COMMIT_TIME")
    assert (dms.change_seq_column, dms.change_seq_name) == (True, "CHANGE_SEQ")
    assert (dms.format, dms.add_column_name, dms.on_bad_file) == ("parquet", True, "fail")
    plain = load_contracts(write(tmp_path, {**document, "dms": {"change_seq_column": True}})).dms
    assert (plain.change_seq_name, plain.timestamp_name, plain.on_bad_file) == (
        "AR_H_CHANGE_SEQ",
        "",
        "quarantine",
    )


UPPER_CASE_SOURCE = {
    "tables": {
        "CORE_TENANT": {
            "schema": "PUBLIC",
            "primary_key": ["ID"],
            "partition_by": {"column": "CREATED_AT", "transform": "month"},
            "columns": [
                {"name": "ID", "type": "bigint", "nullable": False},
                {"name": "Name", "type": "string"},
                {"name": "CREATED_AT", "type": "timestamp"},
            ],
        }
    },
}


def test_upper_case_source_names_become_lower_case_lake_names(tmp_path):
    contracts = load_contracts(write(tmp_path, UPPER_CASE_SOURCE))
    assert set(contracts.tables) == {"core_tenant"}
    tenant = contracts.table("core_tenant")
    assert tenant.name == "core_tenant" and tenant.dms_name == "CORE_TENANT"
    assert tenant.schema == "PUBLIC"  # DMS's folder, as the source spells it
    assert tenant.column_names == ["id", "name", "created_at"]
    assert tenant.primary_key == ("id",)
    assert tenant.partition_by.column == "created_at"
    assert load_contracts(write(tmp_path, GOOD)).table("core_order").dms_name == "core_order"


def test_upper_case_dms_folder_lands_in_a_lower_case_silver_table(tmp_path):
    """DMS writes the source's spelling (PUBLIC/CORE_TENANT/); bronze finds the files there
    and silver is ``silver.core_tenant`` with lower-case columns, as Glue and Athena need."""
    contracts = load_contracts(write(tmp_path, UPPER_CASE_SOURCE))
    tenant = contracts.table("core_tenant")
    store = open_lake(str(tmp_path / "lake"))
    store.put(
        "bronze/dms/PUBLIC/CORE_TENANT/2024/01/02/20240102-090000000.csv",
        b"I,2024-01-02 09:00:00,1,Acme,2024-01-01 08:00:00\n",
    )
    day = date(2024, 1, 2)
    files = list_partition_files(store, contracts.dms, tenant, [day])
    assert [file.key.key for file in files] == [
        "bronze/dms/PUBLIC/CORE_TENANT/2024/01/02/20240102-090000000.csv"
    ]
    catalog = open_catalog(
        sqlite_uri_for(tmp_path / "catalog.db"), warehouse_for_lake(str(tmp_path / "lake"))
    )
    raw = read_partition_files(store, contracts.dms, tenant, files)
    merge_changes(catalog, tenant, contracts.dms, raw, datetime.now(UTC))
    table = catalog.load_table("silver.core_tenant")
    rows = table.scan(selected_fields=("id", "name")).to_arrow().to_pylist()
    assert rows == [{"id": 1, "name": "Acme"}]
    assert [name for name in table.schema().column_names if not name.startswith("_")] == [
        "id",
        "name",
        "created_at",
    ]


@pytest.mark.parametrize(
    "tables, expected",
    [
        (
            {
                "Core_Order": GOOD["tables"]["core_order"],
                "core_order": GOOD["tables"]["core_order"],
            },
            "tables 'Core_Order' and 'core_order' are both 'core_order' once lower-cased",
        ),
        (
            {
                "core_order": {
                    **GOOD["tables"]["core_order"],
                    "columns": [
                        *GOOD["tables"]["core_order"]["columns"],
                        {"name": "Total", "type": "string"},
                    ],
                }
            },
            "columns 'total' and 'Total' are both 'total' once lower-cased",
        ),
    ],
)
def test_names_that_collide_once_lower_cased_are_refused_naming_both(tmp_path, tables, expected):
    with pytest.raises(ContractError) as raised:
        load_contracts(write(tmp_path, {**GOOD, "tables": tables}))
    assert expected in str(raised.value), str(raised.value)
