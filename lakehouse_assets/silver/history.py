"""``silver.<table>__history``: every version of every row (SCD type 2), as order-independent
as the current state.

One row per applied change of a key, ordered by the merge's position rule (merge.py,
generations.py): ``_valid_from`` is the change's rank time (its commit time; a full load's
or reload's rows: the load's start), ``_valid_to`` the next version's (null: the current
version). A delete is a version with ``_is_deleted``; a completed reload ends the live
version of every key it no longer holds at its start (a sweep version). A redelivered
change (same commit time, change seq, op and values as a recorded version) adds nothing.

The history of a key is a function of the set of its changes, so applying any set of days,
in any order, any number of times, gives the same history: a late change is inserted into
the middle of its key's timeline and its neighbours' ``_valid_to`` fixed in the same
commit. Only the history of the keys a batch touches is read and rewritten (key-bound
pruning, as silver); when the table's loads change (a load applied, its start lowered, a
reload completed) every key's timeline is recomputed, since a load's rank moves them all.
History is written in the same run as the current state, as its own commit; the run's
ledger is written after both, so a crash between the two commits is repaired by the next
run applying the same files again. Maintenance never purges history.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import NestedField, TimestamptzType

from lakehouse_assets.contracts import DmsSettings, TableContract
from lakehouse_assets.dms import CHANGE_SEQ, COMMIT_TS, OP, SOURCE_FILE, SOURCE_ROW
from lakehouse_assets.names import HISTORY, silver_identifier
from lakehouse_assets.silver.changes import ChangeRuns
from lakehouse_assets.silver.generations import SWEEP_FILE_ORDER, LoadHistory
from lakehouse_assets.silver.merge import (
    CHANGE_IDENTITY,
    FILE_ORDER,
    INGESTED_AT,
    IS_DELETED,
    KEY,
    KIND,
    ORDER_TS,
    POSITION,
    key_array,
    with_key,
    with_rank,
)
from lakehouse_assets.silver.pruning import stored_files
from lakehouse_assets.silver.result import with_commit_retries
from lakehouse_assets.silver.tables import (
    ensure_namespace,
    evolve_schema,
    read_data_files,
    silver_schema,
    silver_sort_order,
    silver_table_properties,
    write_data_files,
)
from lakehouse_assets.silver.writer import DEFAULT_WINDOW_ROWS, components_of, windows_of

VALID_FROM = "_valid_from"
VALID_TO = "_valid_to"
_TIMESTAMP = pa.timestamp("us", tz="UTC")


def history_identifier(contract: TableContract) -> str:
    return silver_identifier(contract.name, HISTORY)


def history_schema(contract: TableContract) -> Schema:
    """silver.<table>'s columns, then the validity interval."""
    base = silver_schema(contract)
    last = max(field.field_id for field in base.fields)
    return Schema(
        *base.fields,
        NestedField(last + 1, VALID_FROM, TimestamptzType(), required=False),
        NestedField(last + 2, VALID_TO, TimestamptzType(), required=False),
    )


def load_or_create_history_table(catalog: Catalog, contract: TableContract) -> Table:
    ensure_namespace(catalog)
    schema = history_schema(contract)
    table = catalog.create_table_if_not_exists(
        history_identifier(contract),
        schema=schema,
        sort_order=silver_sort_order(contract, schema),
        properties=silver_table_properties(contract),
    )
    return evolve_schema(table, contract, own_columns=(VALID_FROM, VALID_TO))


# --------------------------------------------------------------------------- versions (pure)


def versions(
    changes: pa.Table, history: LoadHistory, value_columns: list[str], ingested_at: datetime
) -> pa.Table:
    """The timelines of the keys in ``changes`` (recorded versions and new changes, with the
    key and file-order columns): deduplicated, sweeps added, intervals set, in key order."""
    if changes.num_rows == 0:
        return changes
    ranked = with_rank(changes, history)
    ranked = _distinct(ranked, value_columns)
    ranked = _with_sweeps(ranked, history, ingested_at)
    ordered = ranked.sort_by([(KEY, "ascending")] + [(name, "ascending") for name in POSITION])
    keys = ordered[KEY].combine_chunks()
    starts = ordered[ORDER_TS].combine_chunks()
    same_key_next = np.zeros(len(keys), dtype=bool)
    if len(keys) > 1:
        same_key_next[:-1] = pc.equal(keys[:-1], keys[1:]).to_numpy(zero_copy_only=False)
    following = pa.concat_arrays([starts[1:], pa.nulls(1, starts.type)]) if len(starts) else starts
    valid_to = pc.if_else(pa.array(same_key_next), following, pa.nulls(len(keys), starts.type))
    deleted = pc.equal(ordered[OP], "D")
    for name, column in ((VALID_FROM, starts), (VALID_TO, valid_to), (IS_DELETED, deleted)):
        if name in ordered.column_names:
            ordered = ordered.drop_columns([name])
        ordered = ordered.append_column(name, column)
    return ordered


def _distinct(ranked: pa.Table, value_columns: list[str]) -> pa.Table:
    """One row per version: copies of a change (same rank, commit time, change seq, op and
    values) collapse into the one at the latest position."""
    identity = [KEY, ORDER_TS, KIND, *CHANGE_IDENTITY, *value_columns]
    ordered = ranked.sort_by([(name, "ascending") for name in POSITION])
    ordered = ordered.append_column("_lh_index", pa.array(np.arange(ordered.num_rows)))
    keep = ordered.group_by(identity, use_threads=False).aggregate([("_lh_index", "max")])
    indices = keep["_lh_index_max"]
    return ordered.take(pc.take(indices, pc.sort_indices(indices))).drop_columns(["_lh_index"])


def _with_sweeps(ranked: pa.Table, history: LoadHistory, ingested_at: datetime) -> pa.Table:
    """Each completed load ends, at its start, the live version of every key it does not
    hold (the reload's sweep): a delete version ranked first within that load."""
    for generation in (g for g in history.generations if g.complete):
        start = pa.scalar(history.start_us(generation), pa.int64()).cast(_TIMESTAMP)
        ordered = ranked.sort_by([(KEY, "ascending")] + [(name, "ascending") for name in POSITION])
        before = pc.fill_null(pc.less(ordered[ORDER_TS], start), False)
        prior = ordered.filter(before)
        if prior.num_rows == 0:
            continue
        keys = prior[KEY].combine_chunks()
        last = np.ones(len(keys), dtype=bool)
        if len(keys) > 1:
            last[:-1] = pc.not_equal(keys[:-1], keys[1:]).to_numpy(zero_copy_only=False)
        latest = prior.filter(pa.array(last))
        live = latest.filter(pc.not_equal(latest[OP], "D"))
        in_load = ordered.filter(
            pc.and_(pc.equal(ordered[ORDER_TS], start), pc.equal(ordered[KIND], "0"))
        )[KEY]
        ended = live.filter(pc.invert(pc.is_in(live[KEY], value_set=in_load.combine_chunks())))
        if ended.num_rows:
            ranked = pa.concat_tables(
                [ranked, _sweep_versions(ended, generation.first_us, history, ingested_at)],
                promote_options="permissive",
            )
    return ranked


def _sweep_versions(rows: pa.Table, first_us: int, history: LoadHistory, ingested_at) -> pa.Table:
    count = rows.num_rows
    replaced = {
        OP: pa.repeat(pa.scalar("D"), count),
        COMMIT_TS: pa.repeat(pa.scalar(first_us, pa.int64()).cast(_TIMESTAMP), count),
        CHANGE_SEQ: pa.nulls(count, pa.string()),
        SOURCE_FILE: pa.nulls(count, pa.string()),
        SOURCE_ROW: pa.repeat(pa.scalar(0, pa.int64()), count),
        FILE_ORDER: pa.repeat(pa.scalar(SWEEP_FILE_ORDER), count),
        INGESTED_AT: pa.repeat(pa.scalar(ingested_at, _TIMESTAMP), count),
    }
    for name, array in replaced.items():
        if name in rows.column_names:
            rows = rows.set_column(
                rows.schema.get_field_index(name), name, array.cast(rows.schema.field(name).type)
            )
    return with_rank(rows, history)


# --------------------------------------------------------------------------- the table


def merge_history(
    catalog: Catalog,
    contract: TableContract,
    dms: DmsSettings,
    runs: ChangeRuns,
    history: LoadHistory,
    ingested_at: datetime,
    everything: bool,
    window_rows: int = DEFAULT_WINDOW_ROWS,
) -> int:
    """Add the batch's changes (``runs``: every change, not only the newest per key) to the
    history, in one commit; ``everything``: recompute every key's timeline (the loads
    changed). Returns the versions written."""

    def merge_once() -> int:
        table = load_or_create_history_table(catalog, contract)
        return _merge(table, runs, contract, dms, history, ingested_at, everything, window_rows)

    written, _ = with_commit_retries(merge_once)
    return written


def _merge(table, runs, contract, dms, history, ingested_at, everything, window_rows) -> int:
    arrow_schema = table.schema().as_arrow()
    key_range = runs.bounds()
    if key_range is None and not everything:
        return 0
    files = stored_files(table, contract, None if everything else key_range)
    windows = windows_of(components_of(files), runs, window_rows)
    transaction = table.transaction()
    rewritten, added, written = [], [], 0
    stamp = pa.scalar(ingested_at, _TIMESTAMP)
    for window in windows:
        changes = runs.slice(window.low, window.high)
        if changes.num_rows:
            changes = changes.append_column(INGESTED_AT, pa.repeat(stamp, changes.num_rows))
        keys = pc.unique(changes[KEY]) if changes.num_rows else None
        held = []
        for component in window.components:
            for task, data in read_data_files(table, [file.task for file in component.files]):
                data_keys = key_array(data, contract.primary_key)
                touched = (
                    np.ones(data.num_rows, dtype=bool)
                    if everything
                    else pc.is_in(data_keys, value_set=keys).to_numpy(zero_copy_only=False)
                    if keys is not None
                    else np.zeros(data.num_rows, dtype=bool)
                )
                if touched.any():
                    held.append((task, data, data_keys, touched))
        recorded = [
            with_key(data.filter(pa.array(touched)), contract.primary_key, dms)
            for _, data, _, touched in held
        ]
        parts = [part.drop_columns([VALID_FROM, VALID_TO]) for part in recorded]
        if changes.num_rows:
            parts.append(changes)
        if not parts:
            continue
        timeline = versions(
            pa.concat_tables(parts, promote_options="permissive"),
            history,
            contract.column_names,
            ingested_at,
        )
        timeline_keys = timeline[KEY].combine_chunks()
        rows = timeline.select(arrow_schema.names).cast(arrow_schema)
        placed = np.zeros(rows.num_rows, dtype=bool)
        for task, data, data_keys, touched in held:
            own = pc.is_in(timeline_keys, value_set=data_keys).to_numpy(zero_copy_only=False)
            own &= ~placed
            placed |= own
            kept = data.filter(pa.array(~touched)).cast(arrow_schema)
            rewritten.append(task.file)
            added += write_data_files(
                transaction,
                table,
                _by_key(pa.concat_tables([kept, rows.filter(pa.array(own))]), contract),
            )
        if not placed.all():
            added += write_data_files(
                transaction, table, _by_key(rows.filter(pa.array(~placed)), contract)
            )
        written += rows.num_rows
    if not (rewritten or added):
        return 0
    with transaction.update_snapshot().overwrite() as overwrite:
        for data_file in rewritten:
            overwrite.delete_data_file(data_file)
        for data_file in added:
            overwrite.append_data_file(data_file)
    transaction.commit_transaction()
    return written


def _by_key(rows: pa.Table, contract: TableContract) -> pa.Table:
    names = [*contract.primary_key, VALID_FROM]
    return rows.sort_by([(name, "ascending") for name in names])
