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
pruning, as silver). The history table records the loads it has absorbed (its own
``lakehouse.load-generations``): when a load's start is lowered or two loads merge, every
key's timeline is recomputed, since a load's rank moves them all; when a load completes,
the keys with a version from before its first transfer are (its sweep). History is written
in the same run as the current state, as its own commit; the run's ledger is written after
both, so a crash between the two commits is repaired by the next run applying the same
files again. Maintenance never purges history.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from lakehouse_assets.silver.generations import GENERATIONS_PROPERTY, SWEEP_FILE_ORDER, LoadHistory
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
from lakehouse_assets.silver.pruning import may_hold, may_hold_before, stored_files
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
    window_rows: int = DEFAULT_WINDOW_ROWS,
) -> int:
    """Add the batch's changes (``runs``: every change, not only the newest per key) to the
    history, in one commit, and recompute the timelines the loads' changes since the history
    last absorbed them move (``recompute_for``). Returns the versions written."""

    def merge_once() -> int:
        table = load_or_create_history_table(catalog, contract)
        absorbed = LoadHistory.from_property(dms, table.properties.get(GENERATIONS_PROPERTY))
        recompute = recompute_for(absorbed, history)
        return _merge(table, runs, contract, dms, history, ingested_at, recompute, window_rows)

    written, _ = with_commit_retries(merge_once)
    return written


@dataclass(frozen=True)
class Recompute:
    """Which stored timelines a batch must recompute beyond its own keys."""

    everything: bool = False  # a load's start moved, or two loads merged: every rank moves
    # A load completed: the keys with a version from before its first transfer get its
    # sweep (microseconds; None: no load completed).
    before_us: int | None = None


def recompute_for(absorbed: LoadHistory, history: LoadHistory) -> Recompute:
    """What moving from the loads the history ``absorbed`` (its table property) to
    ``history`` recomputes. Kept in the history table, not taken from silver's, so a run that
    crashed between the silver and the history commits is repaired by the next one."""
    starts = {generation.first_us for generation in history.generations}
    if any(generation.first_us not in starts for generation in absorbed.generations):
        return Recompute(everything=True)
    done = {generation.first_us for generation in absorbed.generations if generation.complete}
    completed = [g.first_us for g in history.generations if g.complete and g.first_us not in done]
    return Recompute(before_us=min(completed) if completed else None)


def _keys_before(table: Table, files, contract: TableContract, before_us: int) -> pa.Array | None:
    """The keys with a version committed or transferred before ``before_us`` (a superset of
    those a completed load's sweep can end)."""
    commit_ts = table.schema().find_field(COMMIT_TS)
    tasks = [file.task for file in files if may_hold_before(file, commit_ts, before_us)]
    moment = pa.scalar(before_us, pa.int64()).cast(_TIMESTAMP)
    found = [
        pc.filter(
            key_array(data, contract.primary_key),
            pc.fill_null(pc.less(data[COMMIT_TS].combine_chunks(), moment), False),
        )
        for _, data in read_data_files(table, tasks)
    ]
    found = [keys for keys in found if len(keys)]
    return pc.unique(pa.concat_arrays(found)) if found else None


def _merge(table, runs, contract, dms, history, ingested_at, recompute, window_rows) -> int:
    arrow_schema = table.schema().as_arrow()
    everything = recompute.everything
    key_range = runs.bounds()
    swept_keys = None
    if recompute.before_us is not None and not everything:
        every_file = stored_files(table, contract, None)
        swept_keys = _keys_before(table, every_file, contract, recompute.before_us)
    properties = {GENERATIONS_PROPERTY: history.to_property()}
    properties_changed = table.properties.get(GENERATIONS_PROPERTY) != history.to_property()
    if everything or swept_keys is not None:
        files = stored_files(table, contract, None)
    elif key_range is not None:
        files = stored_files(table, contract, key_range)
    elif properties_changed:
        files = []
    else:
        return 0
    windows = windows_of(components_of(files), runs, window_rows)
    transaction = table.transaction()
    rewritten, added, written = [], [], 0
    stamp = pa.scalar(ingested_at, _TIMESTAMP)
    for window in windows:
        changes = runs.slice(window.low, window.high)
        if changes.num_rows:
            changes = changes.append_column(INGESTED_AT, pa.repeat(stamp, changes.num_rows))
        keys = _union(pc.unique(changes[KEY]) if changes.num_rows else None, swept_keys)
        held = []
        for component in window.components:
            tasks = [
                file.task
                for file in component.files
                if everything or (keys is not None and may_hold(file, keys))
            ]
            for task, data in read_data_files(table, tasks):
                data_keys = key_array(data, contract.primary_key)
                touched = (
                    np.ones(data.num_rows, dtype=bool)
                    if everything
                    else pc.is_in(data_keys, value_set=keys).to_numpy(zero_copy_only=False)
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
                table,
                _by_key(pa.concat_tables([kept, rows.filter(pa.array(own))]), contract),
            )
        if not placed.all():
            added += write_data_files(table, _by_key(rows.filter(pa.array(~placed)), contract))
        written += rows.num_rows
    if not (rewritten or added or properties_changed):
        return 0
    if properties_changed:
        transaction.set_properties(properties)
    if rewritten or added:
        with transaction.update_snapshot().overwrite() as overwrite:
            for data_file in rewritten:
                overwrite.delete_data_file(data_file)
            for data_file in added:
                overwrite.append_data_file(data_file)
    transaction.commit_transaction()
    return written


def _union(first: pa.Array | None, second: pa.Array | None) -> pa.Array | None:
    if first is None or second is None:
        return first if second is None else second
    return pc.unique(pa.concat_arrays([first, second.cast(first.type)]))


def _by_key(rows: pa.Table, contract: TableContract) -> pa.Table:
    names = [*contract.primary_key, VALID_FROM]
    return rows.sort_by([(name, "ascending") for name in names])
