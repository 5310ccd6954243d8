"""Bronze assets and the bronze IO manager, on a local folder and on a real S3 API."""

from datetime import UTC, date, datetime

import dagster as dg
import pyarrow as pa
import pytest

from lakehouse_assets.bronze.assets import BRONZE_IO_MANAGER, bronze_asset_key, build_bronze_assets
from lakehouse_assets.bronze.files import list_partition_files
from lakehouse_assets.contracts import load_contracts
from lakehouse_assets.io_managers.bronze import BronzeIOManager
from lakehouse_assets.lake import open_lake
from lakehouse_assets.resources import ContractsResource, LakeResource

CONTRACTS = load_contracts()
TABLE = CONTRACTS.table("core_tenant")
PREFIX = "bronze/dms/public/core_tenant/"
DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)
LOAD_TIME = datetime(2024, 1, 1, 6, 0, tzinfo=UTC)

# core_tenant: id, name, slug, plan, settings, is_active, billing_cutoff, created_at, updated_at
LOAD_1 = b"2024-01-01 06:00:00,1,Acme,acme,pro,{},t,10:00:00,2023-12-01 00:00:00,\n"
LOAD_A = b'2024-01-01 06:00:00,2,"Globex, ""Intl""",globex,free,,f,,2023-12-02 00:00:00,\n'
CDC_DAY2 = (
    b'I,2024-01-02 09:00:00.5,3,"Init\nech",initech,pro,'
    b'"{""k"": ""v""}",true,,2024-01-02 09:00:00,\n'
    b"U,2024-01-02 09:30:00,1,Acme,acme,enterprise,{},t,10:00:00,"
    b"2023-12-01 00:00:00,2024-01-02 09:30:00\n"
)
CDC_DAY3 = b"D,2024-01-03 11:00:00,2,,,,,,,,\n"


def seed_lake(uri: str) -> date:
    """Write a small DMS landing; return the day the full-load files belong to."""
    store = open_lake(uri)
    store.put(PREFIX + "LOAD00000001.csv", LOAD_1, last_modified=LOAD_TIME)
    store.put(PREFIX + "LOAD0000000A.csv", LOAD_A, last_modified=LOAD_TIME)
    store.put(PREFIX + "2024/01/02/20240102-093000000.csv", CDC_DAY2)
    store.put(PREFIX + "2024/01/03/20240103-110000000.csv", CDC_DAY3)
    store.put(PREFIX + "2024/01/03/notes.txt", b"not a DMS file")
    # S3 stamps its own upload time on full-load files; a local folder keeps ours.
    return next(store.list_objects(PREFIX + "LOAD")).last_modified.date()


def resources(uri: str) -> dict:
    lake = LakeResource(uri=uri)
    contracts = ContractsResource()
    return {
        "lake": lake,
        "contracts": contracts,
        BRONZE_IO_MANAGER: BronzeIOManager(lake=lake, contracts=contracts),
    }


def bronze_assets(partitions_def: dg.PartitionsDefinition = DAILY) -> list[dg.AssetsDefinition]:
    return build_bronze_assets(CONTRACTS, partitions_def)


def tenant_bronze(partitions_def: dg.PartitionsDefinition = DAILY) -> dg.AssetsDefinition:
    return next(
        a for a in bronze_assets(partitions_def) if a.key == bronze_asset_key("core_tenant")
    )


def materialization_metadata(result: dg.ExecuteInProcessResult) -> dict:
    [event] = result.asset_materializations_for_node("bronze__core_tenant")
    return {key: value.value for key, value in event.metadata.items()}


def test_one_asset_per_contract_table():
    keys = {asset.key for asset in bronze_assets()}
    assert keys == {bronze_asset_key(name) for name in CONTRACTS.tables}


def test_partition_listing_is_per_day_in_application_order(lake_uri):
    load_day = seed_lake(lake_uri)
    store = open_lake(lake_uri)
    day2 = list_partition_files(store, CONTRACTS.dms, TABLE, [date(2024, 1, 2)])
    assert [f.info.key for f in day2 if f.key.kind.value == "cdc"] == [
        PREFIX + "2024/01/02/20240102-093000000.csv"
    ]
    loads = list_partition_files(store, CONTRACTS.dms, TABLE, [load_day])
    assert [f.key.file_name for f in loads if f.key.kind.value == "full_load"] == [
        "LOAD00000001.csv",
        "LOAD0000000A.csv",
    ]
    both = list_partition_files(store, CONTRACTS.dms, TABLE, [date(2024, 1, 3), date(2024, 1, 2)])
    assert [f.key.file_name for f in both if f.key.kind.value == "cdc"] == [
        "20240102-093000000.csv",
        "20240103-110000000.csv",
    ]


def test_materialize_partition_records_files_bytes_rows_and_commit_range(lake_uri):
    seed_lake(lake_uri)
    result = dg.materialize(
        [tenant_bronze()], partition_key="2024-01-02", resources=resources(lake_uri)
    )
    assert result.success
    metadata = materialization_metadata(result)
    assert metadata["files"] == 1
    assert metadata["bytes"] == len(CDC_DAY2)
    assert metadata["rows"] == 2
    assert metadata["first_commit_ts"] == "2024-01-02T09:00:00.500000+00:00"
    assert metadata["last_commit_ts"] == "2024-01-02T09:30:00+00:00"


def test_downstream_asset_loads_the_partition_as_arrow(lake_uri):
    load_day = seed_lake(lake_uri)
    loaded: dict[str, pa.Table] = {}

    @dg.asset(
        key=["probe"],
        partitions_def=DAILY,
        backfill_policy=dg.BackfillPolicy.single_run(),
        ins={"raw": dg.AssetIn(key=bronze_asset_key("core_tenant"))},
    )
    def probe(context: dg.AssetExecutionContext, raw: pa.Table) -> None:
        loaded[context.partition_key] = raw

    for day in sorted({"2024-01-02", "2024-01-03", load_day.isoformat()}):
        assert dg.materialize(
            [tenant_bronze(), probe], partition_key=day, resources=resources(lake_uri)
        ).success

    day2 = loaded["2024-01-02"]
    assert day2.column("_op").to_pylist()[-2:] == ["I", "U"]
    assert day2.column("name").to_pylist()[-2:] == ["Init\nech", "Acme"]
    assert day2.column("settings").to_pylist()[-2] == '{"k": "v"}'
    day3 = loaded["2024-01-03"]
    assert day3.column("_op").to_pylist()[-1] == "D"
    assert day3.column("id").to_pylist()[-1] == "2"
    loads = loaded[load_day.isoformat()]
    full_load = loads.filter(pa.compute.starts_with(loads["_source_file"], PREFIX + "LOAD"))
    # Hex counters: LOAD00000001 then LOAD0000000A, rows in file order.
    assert full_load.column("id").to_pylist() == ["1", "2"]
    assert full_load.column("name").to_pylist() == ["Acme", 'Globex, "Intl"']


def test_partition_range_in_one_run(lake_uri):
    seed_lake(lake_uri)
    # A range in one run, as `dagster asset materialize --partition-range` and backfills launch it.
    result = dg.materialize(
        [tenant_bronze()],
        resources=resources(lake_uri),
        tags={
            "dagster/asset_partition_range_start": "2024-01-02",
            "dagster/asset_partition_range_end": "2024-01-03",
        },
    )
    assert result.success
    events = result.asset_materializations_for_node("bronze__core_tenant")
    assert sorted(event.partition for event in events) == ["2024-01-02", "2024-01-03"]
    metadata = {key: value.value for key, value in events[0].metadata.items()}
    assert [entry["day"] for entry in metadata["per_day"]] == ["2024-01-02", "2024-01-03"]
    assert metadata["first_commit_ts"] == "2024-01-02T09:00:00.500000+00:00"
    assert metadata["last_commit_ts"] == "2024-01-03T11:00:00+00:00"


def test_broken_file_fails_the_partition_naming_file_and_line(lake_uri):
    store = open_lake(lake_uri)
    key = PREFIX + "2024/01/04/20240104-080000000.csv"
    store.put(
        key,
        b"I,2024-01-04 08:00:00,5,Ok,ok,,,,,2024-01-04 08:00:00,\nI,2024-01-04 08:00:01,6,short\n",
    )
    with pytest.raises(Exception) as raised:
        dg.materialize([tenant_bronze()], partition_key="2024-01-04", resources=resources(lake_uri))
    assert f"{key}, line 2: expected 11 fields" in str(raised.value)
