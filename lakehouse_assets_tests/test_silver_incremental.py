"""Silver at DMS cadence, through real Dagster runs on real Iceberg tables: each run merges
only the files the ledger does not hold, redeliveries write nothing where that is safe, a
crash loses nothing, and ``reapply`` re-merges a range."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.compute as pc
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from lakehouse_assets.contracts import load_contracts
from lakehouse_assets.definitions import lake_resources
from lakehouse_assets.dms import encode_csv_rows
from lakehouse_assets.lake import open_lake
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for, warehouse_for_lake
from lakehouse_assets.names import silver_asset_key
from lakehouse_assets.silver import ledger as ledger_module
from lakehouse_assets.silver.assets import build_silver_assets
from lakehouse_assets.silver.ledger import ledger_identifier, read_ledger
from lakehouse_assets.silver.tables import rejects_identifier, table_identifier

CONTRACT_YAML = """
dms:
  bucket_folder: bronze/dms
  change_seq_column: {change_seq}
  date_partition: {{enabled: true}}
tables:
  orders:
    schema: public
    primary_key: [id]
    columns:
      - {{name: id, type: bigint, nullable: false}}
      - {{name: name, type: string}}
      - {{name: amount, type: "decimal(10,2)"}}
"""
DAY = date(2024, 3, 4)
PREFIX = "bronze/dms/public/orders/"


class Pipeline:
    """A lake, a SQLite catalog and the silver asset of one contract table."""

    def __init__(self, root: Path, change_seq: bool = False, extra_columns: str = ""):
        self.root = root
        self.contract_path = root / "contracts.yaml"
        text = CONTRACT_YAML.format(change_seq="true" if change_seq else "false")
        self.contract_path.write_text(text + extra_columns)
        self.contracts = load_contracts(self.contract_path)
        self.contract = self.contracts.table("orders")
        self.lake = root / "lake"
        self.store = open_lake(str(self.lake))
        self.catalog_uri = sqlite_uri_for(root / "catalog.db")
        self.change_seq = change_seq
        self.daily = dg.DailyPartitionsDefinition(start_date="2024-03-01")

    @property
    def catalog(self) -> SqlCatalog:
        return open_catalog(self.catalog_uri, warehouse_for_lake(str(self.lake)))

    def put(self, key: str, rows: list[list], modified: datetime | None = None) -> str:
        if self.change_seq:
            rows = [
                [*row, f"{row[1].replace('-', '').replace(' ', '').replace(':', '')}{n:06d}"]
                for n, row in enumerate(rows)
            ]
        self.store.put(PREFIX + key, encode_csv_rows(rows, self.contracts.dms), modified)
        return PREFIX + key

    def run(self, day: date = DAY, **config) -> dict:
        assets = build_silver_assets(self.contracts, self.daily)
        result = dg.materialize(
            assets,
            partition_key=day.isoformat(),
            resources=lake_resources(str(self.lake), self.catalog_uri, str(self.contract_path)),
            run_config={"ops": {"silver__orders": {"config": config}}} if config else None,
        )
        assert result.success
        [event] = result.get_asset_materialization_events()
        metadata = event.event_specific_data.materialization.metadata
        return {name: value.value for name, value in metadata.items()}

    def snapshots(self) -> dict[str, list[int]]:
        catalog = self.catalog
        found = {}
        for identifier in (
            table_identifier(self.contract),
            rejects_identifier(self.contract),
            ledger_identifier(self.contract),
        ):
            if catalog.table_exists(identifier):
                found[identifier] = [
                    s.snapshot_id for s in catalog.load_table(identifier).snapshots()
                ]
        return found

    def live(self) -> dict[int, str]:
        rows = self.catalog.load_table(table_identifier(self.contract)).scan().to_arrow()
        rows = rows.filter(pc.invert(rows["_is_deleted"]))
        return dict(zip(rows["id"].to_pylist(), rows["name"].to_pylist()))


def day_file(clock: str) -> str:
    return f"{DAY:%Y/%m/%d}/{DAY:%Y%m%d}-{clock}.csv"


def change(op: str, minute: int, key: int, name: str | None = None, amount: str = "1.00") -> list:
    ts = f"{DAY} 10:{minute:02d}:00"
    return [op, ts, str(key), None, None] if op == "D" else [op, ts, str(key), name, amount]


@pytest.fixture
def pipeline(tmp_path) -> Pipeline:
    return Pipeline(tmp_path)


def test_a_second_run_of_the_same_day_applies_nothing_and_commits_nothing(pipeline):
    pipeline.put(day_file("100000000"), [change("I", 0, 1, "a"), change("I", 0, 2, "b")])
    pipeline.put(day_file("110000000"), [change("U", 5, 1, "a2")])
    first = pipeline.run()
    # One batch: key 1's update is its newest change, inserted as such.
    assert (first["files_new"], first["changes"], first["inserted"], first["updated"]) == (
        2,
        3,
        2,
        0,
    )
    before = pipeline.snapshots()
    assert ledger_identifier(pipeline.contract) in before

    second = pipeline.run()
    assert (second["files_new"], second["files_changed"], second["files_already_applied"]) == (
        0,
        0,
        2,
    )
    assert second["changes"] == 0 and second["files_scanned"] == 0
    assert pipeline.snapshots() == before  # silver, rejects and ledger: no new snapshot
    assert pipeline.live() == {1: "a2", 2: "b"}


def test_one_file_added_to_a_merged_day_is_merged_alone(pipeline):
    pipeline.put(day_file("100000000"), [change("I", 0, k, f"n{k}") for k in range(1, 6)])
    pipeline.run()
    pipeline.put(day_file("101500000"), [change("U", 15, 3, "three"), change("D", 15, 4)])
    again = pipeline.run()
    assert (again["files_new"], again["files_already_applied"], again["changes"]) == (1, 1, 2)
    assert (again["updated"], again["deleted"], again["inserted"]) == (1, 1, 0)
    assert pipeline.live() == {1: "n1", 2: "n2", 3: "three", 5: "n5"}


def test_an_object_rewritten_under_the_same_key_is_applied_again(pipeline):
    key = day_file("100000000")
    pipeline.put(key, [change("I", 0, 1, "first")])
    pipeline.run()
    pipeline.put(key, [change("I", 0, 1, "first"), change("U", 1, 1, "fixed")])
    again = pipeline.run()
    assert (again["files_new"], again["files_changed"], again["changes"]) == (0, 1, 2)
    assert pipeline.live() == {1: "fixed"}
    entry = read_ledger(pipeline.catalog, pipeline.contract)[PREFIX + key]
    assert entry.rows == 2 and entry.size == (pipeline.lake / PREFIX / key).stat().st_size


@pytest.mark.parametrize("change_seq", [False, True])
def test_a_redelivered_file_counts_as_redelivered_never_updated(tmp_path, change_seq):
    pipeline = Pipeline(tmp_path, change_seq=change_seq)
    rows = [change("I", 0, 1, "a"), change("U", 1, 1, "b"), change("I", 2, 2, "c")]
    pipeline.put(day_file("100000000"), rows)
    pipeline.run()
    silver = table_identifier(pipeline.contract)
    before = pipeline.snapshots()[silver]
    # A task restart: the same rows again under a later name.
    pipeline.put(day_file("120000000"), rows)
    again = pipeline.run()
    assert (again["files_new"], again["changes"]) == (1, 3)
    assert (again["updated"], again["inserted"], again["deleted"]) == (0, 0, 0)
    assert again["redelivered"] == 2 and again["unchanged"] == 2
    assert pipeline.live() == {1: "b", 2: "c"}
    after = pipeline.snapshots()[silver]
    if change_seq:
        # (commit ts, change seq) names the change: the copy writes nothing.
        assert after == before and again["files_rewritten"] == 0
    else:
        # Without it the later copy's position is stored (order independence needs it).
        assert len(after) == len(before) + 1


def test_a_newer_change_with_equal_values_advances_the_position_but_is_no_update(pipeline):
    pipeline.put(day_file("100000000"), [change("I", 0, 1, "same")])
    pipeline.run()
    pipeline.put(day_file("110000000"), [change("U", 30, 1, "same")])
    again = pipeline.run()
    assert (again["updated"], again["unchanged"], again["redelivered"]) == (0, 1, 0)
    row = pipeline.catalog.load_table(table_identifier(pipeline.contract)).scan().to_arrow()
    assert row["_source_file"].to_pylist() == [PREFIX + day_file("110000000")]


def test_a_crash_between_merge_and_ledger_loses_nothing(pipeline, monkeypatch):
    pipeline.put(day_file("100000000"), [change("I", 0, 1, "a")])
    real = ledger_module.record_applied

    def crash(*args, **kwargs):
        raise RuntimeError("the process died here")

    monkeypatch.setattr("lakehouse_assets.silver.apply.record_applied", crash)
    with pytest.raises(Exception, match="died"):
        dg.materialize(
            build_silver_assets(pipeline.contracts, pipeline.daily),
            partition_key=DAY.isoformat(),
            resources=lake_resources(
                str(pipeline.lake), pipeline.catalog_uri, str(pipeline.contract_path)
            ),
        )
    assert pipeline.live() == {1: "a"}  # the merge committed, the ledger did not
    monkeypatch.setattr("lakehouse_assets.silver.apply.record_applied", real)
    again = pipeline.run()
    assert (again["files_new"], again["inserted"], again["unchanged"]) == (1, 0, 1)
    assert pipeline.run()["files_already_applied"] == 1


def test_a_crash_before_the_merge_commits_loses_nothing(pipeline, monkeypatch):
    pipeline.put(day_file("100000000"), [change("I", 0, 1, "a")])
    real_commit = SqlCatalog.commit_table

    def crash(self, table, requirements, updates):
        if table.name()[-1] == "orders":
            raise RuntimeError("the process died before the commit")
        return real_commit(self, table, requirements, updates)

    monkeypatch.setattr(SqlCatalog, "commit_table", crash)
    with pytest.raises(Exception, match="died"):
        dg.materialize(
            build_silver_assets(pipeline.contracts, pipeline.daily),
            partition_key=DAY.isoformat(),
            resources=lake_resources(
                str(pipeline.lake), pipeline.catalog_uri, str(pipeline.contract_path)
            ),
        )
    monkeypatch.setattr(SqlCatalog, "commit_table", real_commit)
    assert read_ledger(pipeline.catalog, pipeline.contract) == {}
    again = pipeline.run()
    assert (again["files_new"], again["inserted"]) == (1, 1)


def test_reapply_re_merges_the_range_and_a_new_column_reaches_old_rows(tmp_path):
    pipeline = Pipeline(tmp_path)
    pipeline.put(day_file("100000000"), [change("I", 0, 1, "a"), change("I", 0, 2, "b")])
    pipeline.run()
    assert pipeline.run(reapply=True)["files_reapplied"] == 1
    # The contract gains a column DMS sends (the source's 4th column); the day's file is
    # replaced by its export with that column.
    grown = Pipeline(tmp_path, extra_columns="      - {name: note, type: string}\n")
    grown.put(
        day_file("100000000"),
        [[*change("I", 0, 1, "a"), "n-1"], [*change("I", 0, 2, "b"), "n-2"]],
    )
    plain = grown.run()  # a new version of the file: applied, but its changes are not newer
    assert plain["files_changed"] == 1 and plain["updated"] == 0
    again = grown.run(reapply=True)
    assert again["files_reapplied"] == 1 and again["updated"] == 2
    notes = grown.catalog.load_table(table_identifier(grown.contract)).scan().to_arrow()["note"]
    assert sorted(notes.to_pylist()) == ["n-1", "n-2"]


def test_the_ledger_keeps_shards_within_its_retention(pipeline):
    contract = pipeline.contract
    old = DAY - timedelta(days=200)
    entry = ledger_module.LedgerEntry(
        shard=old.isoformat(),
        key=PREFIX + "old.csv",
        size=1,
        etag="x",
        last_modified=None,
        kind="cdc",
        rows=1,
        min_commit_ts=None,
        max_commit_ts=None,
        applied_at=datetime.now(UTC),
    )
    ledger_module.record_applied(pipeline.catalog, contract, [entry])
    pipeline.put(day_file("100000000"), [change("I", 0, 1, "a")])
    pipeline.run()
    shards = {e.shard for e in read_ledger(pipeline.catalog, contract).values()}
    assert shards == {DAY.isoformat()}  # the 200-day-old shard is past the 100-day retention


def test_a_partition_range_merges_every_day_of_the_range(pipeline):
    """Backfills keep working: one run, one merge for the whole range."""
    for offset in range(3):
        day = DAY + timedelta(days=offset)
        key = f"{day:%Y/%m/%d}/{day:%Y%m%d}-100000000.csv"
        pipeline.put(key, [["I", f"{day} 10:00:00", str(offset + 1), f"d{offset}", "1.00"]])
    result = dg.materialize(
        build_silver_assets(pipeline.contracts, pipeline.daily),
        resources=lake_resources(
            str(pipeline.lake), pipeline.catalog_uri, str(pipeline.contract_path)
        ),
        tags={
            "dagster/asset_partition_range_start": DAY.isoformat(),
            "dagster/asset_partition_range_end": (DAY + timedelta(days=2)).isoformat(),
        },
    )
    events = result.get_asset_materialization_events()
    # One run and one merge: a materialization per day, the same figures on each.
    assert sorted(e.partition for e in events) == [
        (DAY + timedelta(days=n)).isoformat() for n in range(3)
    ]
    assert {e.asset_key for e in events} == {silver_asset_key("orders")}
    metadata = events[0].event_specific_data.materialization.metadata
    assert metadata["files_new"].value == 3 and metadata["inserted"].value == 3
    assert pipeline.live() == {1: "d0", 2: "d1", 3: "d2"}
