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

from dataclasses import replace
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
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
from lakehouse_assets.silver.pruning import candidate_files
from lakehouse_assets.silver.rejects import replace_rejects
from lakehouse_assets.silver.result import (
    MergeResult,
    TableWrite,
    snapshot_properties,
    with_commit_retries,
)
from lakehouse_assets.silver.tables import (
    load_or_create_silver_table,
    read_data_files,
    write_data_files,
)


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

    def merge_once() -> TableWrite:
        table = load_or_create_silver_table(catalog, contract, dms)
        return _merge_once(table, latest, contract, dms, ingested_at, batch_max)

    write, attempts = with_commit_retries(merge_once)
    replace_rejects(catalog, contract, pc.unique(raw[SOURCE_FILE]).to_pylist(), typed.rejects)
    return MergeResult.of(
        write,
        changes=raw.num_rows,
        rejected=typed.rejects.num_rows,
        max_commit_ts=batch_max,
        attempts=attempts,
    )


def _merge_once(
    table: Table,
    latest: pa.Table,
    contract: TableContract,
    dms: DmsSettings,
    ingested_at: datetime,
    batch_max: datetime | None,
) -> TableWrite:
    arrow_schema = table.schema().as_arrow()
    keys = latest[KEY].combine_chunks()
    candidates = candidate_files(table, contract, keys)

    holding: list[tuple[FileScanTask, pa.Table, pa.Array]] = []
    for task, data in read_data_files(table, candidates):
        data_keys = key_array(data, contract.primary_key)
        if pc.any(pc.is_in(data_keys, value_set=keys)).as_py():
            holding.append((task, data, data_keys))
    # promote_options: files written by other engines (Spark) read as string, pyiceberg's as
    # large_string.
    stored = (
        pa.concat_tables(
            [data.filter(pc.is_in(k, value_set=keys)) for _, data, k in holding],
            promote_options="permissive",
        )
        if holding
        else arrow_schema.empty_table()
    )
    plan = plan_merge(
        latest,
        with_position(stored, contract.primary_key, dms),
        pa.scalar(ingested_at, pa.timestamp("us", tz="UTC")),
    )
    unchanged = TableWrite(
        inserted=plan.inserted,
        updated=plan.updated,
        deleted=plan.deleted,
        stale=plan.stale,
        files_scanned=len(candidates),
        files_rewritten=0,
        files_added=0,
        snapshot_id=table.metadata.current_snapshot_id,
    )
    if plan.winners.num_rows == 0:
        return unchanged  # nothing newer than the table: no commit, nothing written

    winner_keys = plan.winners[KEY].combine_chunks()
    winners = plan.winners.select(arrow_schema.names).cast(arrow_schema)
    replaced_rows = stored.filter(
        pc.is_in(key_array(stored, contract.primary_key), value_set=winner_keys)
    )
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
            own = (
                pc.is_in(winner_keys, value_set=data_keys).to_numpy(zero_copy_only=False) & ~placed
            )
            placed |= own
            kept = data.filter(pc.invert(replaced)).cast(arrow_schema)
            groups.append(
                pa.concat_tables([kept, winners.filter(pa.array(own))]).sort_by(sort_keys)
            )
    if not placed.all():
        groups.append(winners.filter(pa.array(~placed)).sort_by(sort_keys))

    properties = snapshot_properties(table, batch_max)
    with table.transaction() as transaction:
        data_files = [
            data_file for rows in groups for data_file in write_data_files(transaction, table, rows)
        ]
        with transaction.update_snapshot(snapshot_properties=properties).overwrite() as overwrite:
            for data_file in rewritten:
                overwrite.delete_data_file(data_file)
            for data_file in data_files:
                overwrite.append_data_file(data_file)
    return replace(
        unchanged,
        files_rewritten=len(rewritten),
        files_added=len(data_files),
        snapshot_id=table.refresh().metadata.current_snapshot_id,
        touched_dates=touched_dates(contract, [winners, replaced_rows]),
    )


def touched_dates(contract: TableContract, tables: list[pa.Table]) -> dict[str, list[str]]:
    """Per date/timestamp contract column, the sorted distinct dates (UTC) in ``tables``."""
    touched: dict[str, list[str]] = {}
    for column in contract.columns:
        if column.type not in ("date", "timestamp", "timestamptz"):
            continue
        days = set()
        for table in tables:
            if column.name in table.column_names and table.num_rows:
                days.update(
                    pc.unique(pc.cast(table[column.name], pa.date32())).drop_null().to_pylist()
                )
        if days:
            touched[column.name] = sorted(day.isoformat() for day in days)
    return touched
