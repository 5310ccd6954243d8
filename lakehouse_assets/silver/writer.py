"""Apply a batch of bronze changes to a silver Iceberg table in one commit.

Copy-on-write, touching only data files whose key range holds a changed key:
1. type the batch (rejects aside) and keep the newest change per key;
2. prune the table's data files by their key bounds (min/max statistics) and
   read only the files that may hold a changed key;
3. plan: a change wins when its key is not stored or it is newer than the
   stored row (merge.py);
4. rewrite the files that hold a winning key without it, add the winners, and
   commit both as one overwrite snapshot. A conflicting concurrent commit makes
   the whole plan run again on the new table state.
"""

from __future__ import annotations

import time
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.conversions import from_bytes
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import AlwaysTrue, And, GreaterThanOrEqual, In, LessThanOrEqual
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.table import FileScanTask, Table

from lakehouse_assets.contracts import DmsSettings, TableContract
from lakehouse_assets.dms import COMMIT_TS, SOURCE_FILE
from lakehouse_assets.silver.casting import cast_changes
from lakehouse_assets.silver.merge import (
    KEY,
    key_array,
    newest_per_key,
    plan_merge,
    with_position,
)
from lakehouse_assets.silver.tables import (
    load_or_create_rejects_table,
    load_or_create_silver_table,
    rejects_identifier,
)

# Snapshot summary property: the newest source commit applied by any merge so far.
MAX_COMMIT_TS_PROPERTY = "lakehouse.max-commit-ts"
COMMIT_ATTEMPTS = 8
# A concurrent commit surfaces as CommitFailedException, or, once pyiceberg's own
# retry has refreshed the table and found files added since our plan, as
# ValidationException. Either way nothing landed and the merge must be planned again.
_CONFLICTS = (CommitFailedException, ValidationException)


@dataclass(frozen=True)
class MergeResult:
    changes: int  # rows read from bronze
    inserted: int
    updated: int
    deleted: int
    stale: int
    rejected: int
    files_scanned: int  # data files whose key range could hold a changed key
    files_rewritten: int
    files_added: int
    snapshot_id: int | None
    max_commit_ts: datetime | None  # newest commit timestamp in this batch
    attempts: int
    # Per date/timestamp column, the business dates (ISO) of the rows this merge changed,
    # old and new values: which daily gold partitions must be refreshed (gold/refresh.py).
    touched_dates: dict[str, list[str]] = field(default_factory=dict)


def merge_changes(
    catalog: Catalog,
    contract: TableContract,
    dms: DmsSettings,
    raw: pa.Table,
    ingested_at: datetime,
) -> MergeResult:
    """Merge a bronze batch (DMS reader output) into ``silver.<table>``; safe to repeat."""
    typed = cast_changes(raw, contract)
    latest = newest_per_key(with_position(typed.typed, contract.primary_key, dms))
    batch_max = pc.max(raw[COMMIT_TS]).as_py() if raw.num_rows else None
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        table = load_or_create_silver_table(catalog, contract)
        try:
            outcome = _merge_once(table, latest, contract, dms, ingested_at, batch_max)
            break
        except _CONFLICTS:
            if attempt == COMMIT_ATTEMPTS:
                raise
            # Another run committed first: plan again on its result.
            _backoff(attempt)
    _replace_rejects(catalog, contract, raw, typed.rejects)
    return MergeResult(
        changes=raw.num_rows,
        rejected=typed.rejects.num_rows,
        max_commit_ts=batch_max,
        attempts=attempt,
        **outcome,
    )


def _backoff(attempt: int) -> None:
    time.sleep(min(0.05 * 2**attempt, 2.0) * (1 + np.random.random()))


def _merge_once(
    table: Table,
    latest: pa.Table,
    contract: TableContract,
    dms: DmsSettings,
    ingested_at: datetime,
    batch_max: datetime | None,
) -> dict:
    schema = table.schema()
    arrow_schema = schema.as_arrow()
    keys = latest[KEY].combine_chunks()
    candidates = _candidate_files(table, contract, keys) if len(keys) else []
    scan = ArrowScan(table.metadata, table.io, schema, AlwaysTrue())

    holding: list[tuple[FileScanTask, pa.Table, pa.Array]] = []
    for task in candidates:
        data = scan.to_table([task])
        data_keys = key_array(data, contract.primary_key)
        if pc.any(pc.is_in(data_keys, value_set=keys)).as_py():
            holding.append((task, data, data_keys))
    # promote_options: files written by other engines (Spark) read as string, pyiceberg's as large_string.
    stored = pa.concat_tables([data.filter(pc.is_in(k, value_set=keys)) for _, data, k in holding], promote_options="permissive") if holding else arrow_schema.empty_table()
    plan = plan_merge(latest, with_position(stored, contract.primary_key, dms), pa.scalar(ingested_at, pa.timestamp("us", tz="UTC")))
    outcome = {
        "inserted": plan.inserted,
        "updated": plan.updated,
        "deleted": plan.deleted,
        "stale": plan.stale,
        "files_scanned": len(candidates),
        "files_rewritten": 0,
        "files_added": 0,
        "snapshot_id": table.metadata.current_snapshot_id,
    }
    if plan.winners.num_rows == 0:
        return outcome  # nothing newer than the table: no commit, nothing written

    winner_keys = plan.winners[KEY].combine_chunks()
    winners = plan.winners.select(arrow_schema.names).cast(arrow_schema)
    replaced_rows = stored.filter(pc.is_in(key_array(stored, contract.primary_key), value_set=winner_keys))
    outcome["touched_dates"] = touched_dates(contract, [winners, replaced_rows])
    # Each rewritten file is replaced by its kept rows plus the winners of its own keys, so
    # file key ranges stay as tight as they were and later merges keep pruning. (Writing all
    # rewritten rows together would merge their ranges: over time every merge would touch
    # every file.) Winners of keys no file held go to files of their own.
    sort_keys = [(name, "ascending") for name in contract.primary_key]
    rewritten, groups = [], []
    placed = np.zeros(winners.num_rows, dtype=bool)
    for task, data, data_keys in holding:
        replaced = pc.is_in(data_keys, value_set=winner_keys)
        if pc.any(replaced).as_py():
            rewritten.append(task.file)
            own = pc.is_in(winner_keys, value_set=data_keys).to_numpy(zero_copy_only=False) & ~placed
            placed |= own
            kept = data.filter(pc.invert(replaced)).cast(arrow_schema)
            groups.append(pa.concat_tables([kept, winners.filter(pa.array(own))]).sort_by(sort_keys))
    if not placed.all():
        groups.append(winners.filter(pa.array(~placed)).sort_by(sort_keys))

    properties = {MAX_COMMIT_TS_PROPERTY: _max_commit_ts(table, batch_max)}
    with table.transaction() as transaction:
        data_files = [
            data_file for rows in groups for data_file in _write_data_files(transaction, table, rows)
        ]
        with transaction.update_snapshot(snapshot_properties=properties).overwrite() as overwrite:
            for data_file in rewritten:
                overwrite.delete_data_file(data_file)
            for data_file in data_files:
                overwrite.append_data_file(data_file)
    outcome.update(
        files_rewritten=len(rewritten),
        files_added=len(data_files),
        snapshot_id=table.refresh().metadata.current_snapshot_id,
    )
    return outcome


def touched_dates(contract: TableContract, tables: list[pa.Table]) -> dict[str, list[str]]:
    """Per date/timestamp contract column, the sorted distinct dates (UTC) in ``tables``."""
    touched: dict[str, list[str]] = {}
    for column in contract.columns:
        if column.type not in ("date", "timestamp", "timestamptz"):
            continue
        days = set()
        for table in tables:
            if column.name in table.column_names and table.num_rows:
                days.update(pc.unique(pc.cast(table[column.name], pa.date32())).drop_null().to_pylist())
        if days:
            touched[column.name] = sorted(day.isoformat() for day in days)
    return touched


def _write_data_files(transaction, table: Table, rows: pa.Table):
    # pyiceberg has no public "write data files, commit them myself" call; this is the
    # function its own append and copy-on-write delete use for exactly that.
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    return _dataframe_to_data_files(
        table_metadata=transaction.table_metadata, df=rows, io=table.io, write_uuid=uuid.uuid4()
    )


def _max_commit_ts(table: Table, batch_max: datetime | None) -> str:
    snapshot = table.current_snapshot()
    previous = snapshot.summary.additional_properties.get(MAX_COMMIT_TS_PROPERTY) if snapshot and snapshot.summary else None
    candidates = [value for value in (previous, batch_max.isoformat() if batch_max else None) if value]
    return max(candidates) if candidates else ""


def _candidate_files(table: Table, contract: TableContract, keys: pa.Array) -> list[FileScanTask]:
    """Data files whose key bounds may hold one of ``keys`` (sorted, unique)."""
    if len(contract.primary_key) != 1:
        # Composite keys: no single bound to prune on; every file is a candidate.
        return list(table.scan().plan_files())
    name = contract.primary_key[0]
    low, high = keys[0].as_py(), keys[-1].as_py()
    # The range filter lets pyiceberg skip manifests and files by partition and stats.
    tasks = table.scan(row_filter=And(GreaterThanOrEqual(name, low), LessThanOrEqual(name, high))).plan_files()
    field = table.schema().find_field(name)
    sorted_keys = _comparable_with_bounds(keys).to_numpy(zero_copy_only=False)
    chosen = []
    for task in tasks:
        lower = task.file.lower_bounds.get(field.field_id) if task.file.lower_bounds else None
        upper = task.file.upper_bounds.get(field.field_id) if task.file.upper_bounds else None
        if lower is None or upper is None:
            chosen.append(task)
            continue
        lo = from_bytes(field.field_type, lower)
        hi = from_bytes(field.field_type, upper)
        if np.searchsorted(sorted_keys, lo, side="left") < np.searchsorted(sorted_keys, hi, side="right"):
            chosen.append(task)
    return chosen


def _comparable_with_bounds(keys: pa.Array) -> pa.Array:
    """Keys in the form ``from_bytes`` decodes Iceberg bounds to: dates as days and
    timestamps and times as microseconds (plain integers); other types as they are."""
    if pa.types.is_date32(keys.type):
        return keys.view(pa.int32())
    if pa.types.is_timestamp(keys.type) or pa.types.is_time64(keys.type):
        return keys.view(pa.int64())  # silver stores microseconds, as Iceberg does
    return keys


def _replace_rejects(catalog: Catalog, contract: TableContract, raw: pa.Table, rejects: pa.Table) -> None:
    """Rejects of this batch's files replace earlier rejects of the same files (idempotent reruns)."""
    if rejects.num_rows == 0 and not catalog.table_exists(rejects_identifier(contract)):
        return
    files = pc.unique(raw[SOURCE_FILE]).to_pylist()
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        table = load_or_create_rejects_table(catalog, contract)
        arrow_schema = table.schema().as_arrow()
        try:
            with table.transaction() as transaction:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="Delete operation did not match any records")
                    transaction.delete(In(SOURCE_FILE, files))
                if rejects.num_rows:
                    transaction.append(rejects.select(arrow_schema.names).cast(arrow_schema))
            return
        except _CONFLICTS:
            # Another run replaced its files' rejects first: replace ours on top of its commit.
            if attempt == COMMIT_ATTEMPTS:
                raise
            _backoff(attempt)
