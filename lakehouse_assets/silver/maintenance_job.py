"""The ``silver_maintenance`` job and its daily schedule: maintenance.py on every table.

One op per contract table, in that table's pool (``names.silver_pool``): a deployment that
limits pools never runs it beside the table's merge, and where pools are not limited the
operations still retry a commit that loses a race. The job's run config is one mapping
(a ``ConfigMapping`` hands each op its share), every field with a default:

```yaml
tables: [core_order]            # empty or absent: every contract table
snapshot_retention_days: 3
keep_last_snapshots: 10
orphan_min_age_hours: 24
target_file_size_mb: 128
tombstone_horizon_days: 120     # or never
operations: [expire_snapshots, remove_orphan_files]   # absent: all five
```
"""

# No ``from __future__ import annotations``: Dagster reads the config classes from the
# functions' annotations at definition time.
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from pydantic import Field

from lakehouse_assets.contracts import Contracts, DmsSettings, TableContract
from lakehouse_assets.names import MAINTENANCE_JOB, silver_pool
from lakehouse_assets.resources import IcebergCatalogResource, LakeResource
from lakehouse_assets.silver.maintenance import (
    ALL_OPERATIONS,
    DEFAULT_KEEP_LAST_SNAPSHOTS,
    DEFAULT_ORPHAN_MIN_AGE,
    DEFAULT_SNAPSHOT_RETENTION,
    DEFAULT_TARGET_FILE_BYTES,
    DEFAULT_TOMBSTONE_HORIZON,
    MIB,
    MaintenanceOperation,
    MaintenancePolicy,
    OperationReport,
    maintain_table,
)

MAINTENANCE_SCHEDULE = "silver_maintenance_daily"
# 03:00 UTC: after the night's DMS batches, before the working day's queries.
MAINTENANCE_CRON = "0 3 * * *"
NEVER = "never"


class TableMaintenanceConfig(dg.Config):
    """The settings of every table's op (the job's config without ``tables``)."""

    snapshot_retention_days: float = Field(
        default=DEFAULT_SNAPSHOT_RETENTION.days,
        description="expire snapshots older than this (time travel reaches back this far)",
    )
    keep_last_snapshots: int = Field(
        default=DEFAULT_KEEP_LAST_SNAPSHOTS,
        description="never expire the newest N snapshots of the current state, whatever age",
    )
    orphan_min_age_hours: float = Field(
        default=DEFAULT_ORPHAN_MIN_AGE / timedelta(hours=1),
        description=(
            "delete unreferenced files only when older than this (at least 1): a merge in "
            "flight has written files it has not committed yet"
        ),
    )
    target_file_size_mb: float = Field(
        default=DEFAULT_TARGET_FILE_BYTES / MIB,
        description="compaction's data file size on disk",
    )
    # Any: a number of days or the word "never" (Dagster config has no such union type).
    tombstone_horizon_days: Any = Field(
        default=DEFAULT_TOMBSTONE_HORIZON.days,
        description=(
            "purge tombstones positioned this many days before the newest applied commit, "
            f"or '{NEVER}'"
        ),
    )
    operations: list[str] = Field(
        default=[operation.value for operation in ALL_OPERATIONS],
        description=f"which of {', '.join(ALL_OPERATIONS)} to run (always in that order)",
    )

    def policy(self) -> MaintenancePolicy:
        unknown = sorted(set(self.operations) - set(ALL_OPERATIONS))
        if unknown:
            known = ", ".join(ALL_OPERATIONS)
            raise ValueError(f"unknown operation(s) {', '.join(unknown)}: choose from {known}")
        return MaintenancePolicy(
            snapshot_retention=timedelta(days=self.snapshot_retention_days),
            keep_last_snapshots=self.keep_last_snapshots,
            orphan_min_age=timedelta(hours=self.orphan_min_age_hours),
            target_file_bytes=int(self.target_file_size_mb * MIB),
            tombstone_horizon=parse_tombstone_horizon(self.tombstone_horizon_days),
            operations=tuple(MaintenanceOperation(name) for name in self.operations),
        )


class TableOpConfig(TableMaintenanceConfig):
    selected: bool = Field(default=True, description="false: this table is skipped")


class SilverMaintenanceConfig(TableMaintenanceConfig):
    tables: list[str] = Field(
        default=[], description="contract tables to maintain; empty: every table"
    )


def parse_tombstone_horizon(value: Any) -> timedelta | None:
    """``tombstone_horizon_days`` as a horizon: a non-negative number of days, or None for
    'never'."""
    if isinstance(value, str) and value.strip().lower() == NEVER:
        return None
    try:
        days = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"tombstone_horizon_days {value!r}: a number of days or '{NEVER}'"
        ) from None
    if days < 0:
        raise ValueError(f"tombstone_horizon_days {value!r} is negative")
    return timedelta(days=days)


def maintenance_op_name(table: str) -> str:
    return f"{MAINTENANCE_JOB}__{table}"


def build_maintenance_job(contracts: Contracts) -> dg.JobDefinition:
    """``silver_maintenance``: one op per contract table (needs resources ``iceberg`` and
    ``lake``)."""
    tables = sorted(contracts.tables)

    @dg.config_mapping
    def per_table(config: SilverMaintenanceConfig) -> dg.RunConfig:
        unknown = sorted(set(config.tables) - set(tables))
        if unknown:
            raise ValueError(
                f"unknown table(s) {', '.join(unknown)}: {contracts.source} has {', '.join(tables)}"
            )
        config.policy()  # a bad setting fails the launch, not every op
        settings = config.model_dump(exclude={"tables"})
        return dg.RunConfig(
            ops={
                maintenance_op_name(table): TableOpConfig(
                    **settings, selected=not config.tables or table in config.tables
                )
                for table in tables
            }
        )

    ops = [_table_op(contracts.tables[table], contracts.dms) for table in tables]

    @dg.job(
        name=MAINTENANCE_JOB,
        config=per_table,
        description=(
            "Iceberg maintenance of every silver table and its side tables: purge old "
            "tombstones, compact small files, rewrite manifests, expire snapshots, remove "
            "orphan files."
        ),
        tags={"dagster/kind/iceberg": ""},
    )
    def silver_maintenance() -> None:
        for op in ops:
            op()

    return silver_maintenance


def build_maintenance_schedule(job: dg.JobDefinition) -> dg.ScheduleDefinition:
    """Daily, on by default; its runs take the job config's defaults."""
    return dg.ScheduleDefinition(
        name=MAINTENANCE_SCHEDULE,
        job=job,
        cron_schedule=MAINTENANCE_CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Daily Iceberg maintenance of the silver tables (03:00 UTC).",
    )


def _table_op(contract: TableContract, dms: DmsSettings) -> dg.OpDefinition:
    @dg.op(
        name=maintenance_op_name(contract.name),
        pool=silver_pool(contract.name),
        required_resource_keys={"iceberg", "lake"},
        out=dg.Out(dg.Nothing),
        description=f"Maintenance of silver.{contract.name} and its side tables.",
    )
    def maintain(context: dg.OpExecutionContext, config: TableOpConfig) -> None:
        if not config.selected:
            context.log.info(f"silver.{contract.name}: not selected, skipped")
            return
        iceberg: IcebergCatalogResource = context.resources.iceberg
        lake: LakeResource = context.resources.lake
        reports = maintain_table(
            iceberg.catalog(), lake.store(), contract, dms, datetime.now(UTC), config.policy()
        )
        for report in reports:
            context.log.info(_log_line(report))
        context.add_output_metadata(report_metadata(reports))

    return maintain


def _change(before: int, after: int) -> str:
    return str(before) if before == after else f"{before} → {after}"


def _log_line(report: OperationReport) -> str:
    before, after = report.before, report.after
    done = ", ".join(f"{key} {value}" for key, value in report.details.items())
    return (
        f"{report.table} {report.operation}: {done}; data files "
        f"{_change(before.data_files, after.data_files)}, snapshots "
        f"{_change(before.snapshots, after.snapshots)}, manifests "
        f"{_change(before.manifests, after.manifests)} ({report.attempts} attempt(s))"
    )


def report_metadata(reports: list[OperationReport]) -> dict[str, dg.MetadataValue]:
    """One JSON entry per table and operation (before, after, what it did) and a table of
    all of them."""
    header = (
        "| table | operation | data files | bytes | snapshots | manifests | metadata.json | "
        "done |\n|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for report in reports:
        before, after = report.before, report.after
        done = ", ".join(f"{key}: {value}" for key, value in report.details.items())
        rows.append(
            f"| {report.table} | {report.operation} | "
            f"{_change(before.data_files, after.data_files)} | "
            f"{_change(before.data_bytes, after.data_bytes)} | "
            f"{_change(before.snapshots, after.snapshots)} | "
            f"{_change(before.manifests, after.manifests)} | "
            f"{_change(before.metadata_json_bytes, after.metadata_json_bytes)} | {done} |"
        )
    return {
        "summary": dg.MetadataValue.md(header + "\n".join(rows)),
        **{
            f"{report.table}: {report.operation}": dg.MetadataValue.json(report.as_metadata())
            for report in reports
        },
    }
