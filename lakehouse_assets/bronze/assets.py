"""bronze/<table>: one daily-partitioned asset per contract table.
Materializing a partition lists that day's DMS files, parses them (so a broken
file fails here, naming file and line, before anything downstream runs) and
records files, bytes, rows and the commit-timestamp range.
"""

from datetime import date

import dagster as dg

from lakehouse_assets.bronze.files import bronze_stats, list_partition_files, read_partition_files
from lakehouse_assets.contracts import Contracts, DmsSettings, TableContract
from lakehouse_assets.names import BRONZE_IO_MANAGER, bronze_asset_key
from lakehouse_assets.resources import LakeResource


def build_bronze_assets(
    contracts: Contracts, partitions_def: dg.PartitionsDefinition
) -> list[dg.AssetsDefinition]:
    return [
        _bronze_asset(contract, contracts.dms, partitions_def)
        for contract in contracts.tables.values()
    ]


def _bronze_asset(
    contract: TableContract, dms: DmsSettings, partitions_def: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    @dg.asset(
        key=bronze_asset_key(contract.name),
        group_name="bronze",
        partitions_def=partitions_def,
        # A backfill over many days is one run that lists and checks them all.
        backfill_policy=dg.BackfillPolicy.single_run(),
        io_manager_key=BRONZE_IO_MANAGER,
        kinds={"s3", "csv"},
        description=f"AWS DMS files of {contract.schema}.{contract.name} (CSV, raw strings).",
    )
    def bronze(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        store = lake.store()
        days = [date.fromisoformat(key) for key in context.partition_keys]
        per_day = []
        totals = {"files": 0, "bytes": 0, "rows": 0}
        first, last = None, None
        for day in days:
            files = list_partition_files(store, dms, contract, [day])
            stats = bronze_stats(files, read_partition_files(store, dms, contract, files))
            per_day.append(
                {
                    "day": day.isoformat(),
                    "files": stats.files,
                    "bytes": stats.bytes,
                    "rows": stats.rows,
                }
            )
            totals = {
                "files": totals["files"] + stats.files,
                "bytes": totals["bytes"] + stats.bytes,
                "rows": totals["rows"] + stats.rows,
            }
            if stats.first_commit_ts is not None:
                first = min(first or stats.first_commit_ts, stats.first_commit_ts)
                last = max(last or stats.last_commit_ts, stats.last_commit_ts)
            context.log.info(f"{day}: {stats.files} files, {stats.bytes} bytes, {stats.rows} rows")
        metadata: dict[str, dg.RawMetadataValue] = {
            "files": totals["files"],
            "bytes": totals["bytes"],
            "rows": totals["rows"],
            "first_commit_ts": first.isoformat() if first else None,
            "last_commit_ts": last.isoformat() if last else None,
        }
        if len(per_day) > 1:
            metadata["per_day"] = dg.MetadataValue.json(per_day)
        return dg.MaterializeResult(metadata=metadata)

    return bronze
