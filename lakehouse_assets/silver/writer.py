"""The arrow engine: merge a batch of changes into a silver Iceberg table in one commit.

Copy-on-write, with memory bounded by a key range of the batch plus one data file:

1. The batch arrives as key-sorted runs (changes.py), spilled to disk when large.
2. The table's data files that may hold a batch key are found by their key bounds
   (pruning.py). Files whose key ranges overlap form a *component*, merged together.
3. The key space is cut into *windows* of about ``window_rows`` changes, never inside a
   component. Window by window: the window's changes are ranked (merge.py, with the
   table's load generations), those before the reload barrier dropped, the newest per key
   kept; each component's files are read one at a time, planned against, and the files
   holding a winning key rewritten with their kept rows and the winners of their own keys
   (so key ranges stay tight and later merges keep pruning); winners of keys no file held
   go to new files of their own.
4. All rewrites and new files, and the table properties, are one overwrite snapshot. A
   conflicting concurrent commit makes the whole merge run again on the new table state.

A reload's sweep (generations.py) runs in the same pass: every data file is then read,
and live rows positioned before the completed load's start become tombstones.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.table import Table

from lakehouse_assets.contracts import DmsSettings, TableContract
from lakehouse_assets.dms import CHANGE_SEQ, COMMIT_TS, OP, SOURCE_FILE, SOURCE_ROW
from lakehouse_assets.silver.changes import ChangeRuns
from lakehouse_assets.silver.generations import SWEEP_FILE_ORDER, Generation, LoadHistory
from lakehouse_assets.silver.merge import (
    FILE_ORDER,
    INGESTED_AT,
    IS_DELETED,
    KEY,
    ORDER_TS,
    key_array,
    newest_per_key,
    plan_merge,
    with_key,
    with_rank,
)
from lakehouse_assets.silver.pruning import StoredFile, may_hold, may_hold_before, stored_files
from lakehouse_assets.silver.result import TableWrite
from lakehouse_assets.silver.tables import read_data_files, write_data_files

DEFAULT_WINDOW_ROWS = 1_000_000
_TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class MergeOptions:
    ingested_at: datetime
    history: LoadHistory  # the table's loads, this batch's included
    reapply: bool = False  # a change at the stored row's own position replaces it too
    # The load completed with this batch: tombstone the live rows positioned before it.
    sweep: Generation | None = None
    window_rows: int = DEFAULT_WINDOW_ROWS


@dataclass
class _Outcome:
    """What the windows add up to."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    redelivered: int = 0
    swept: int = 0
    files_scanned: int = 0
    rewritten: list = field(default_factory=list)
    added: list = field(default_factory=list)
    touched: dict[str, set] = field(default_factory=lambda: defaultdict(set))


@dataclass(frozen=True)
class _Component:
    """Data files whose key ranges overlap: merged together. ``low``/``high``: None when a
    file has no bound (composite keys), so the component spans every key."""

    files: tuple[StoredFile, ...]
    low: Any
    high: Any


@dataclass(frozen=True)
class _Window:
    low: Any  # inclusive; None: no lower bound
    high: Any  # exclusive; None: no upper bound
    components: tuple[_Component, ...]


def prepare_changes(typed: pa.Table, contract: TableContract, dms: DmsSettings) -> pa.Table:
    """Typed changes (casting.py) with the key and file-order columns, as runs hold them."""
    return with_key(typed, contract.primary_key, dms)


def merge_runs(
    table: Table,
    runs: ChangeRuns,
    contract: TableContract,
    dms: DmsSettings,
    options: MergeOptions,
    snapshot_properties: dict[str, str],
    table_properties: dict[str, str],
) -> TableWrite:
    """Merge ``runs`` into ``table`` and commit (nothing is committed when nothing changes
    and ``table_properties`` are already the table's)."""
    arrow_schema = table.schema().as_arrow()
    key_range = runs.bounds()
    if key_range is None and options.sweep is None:
        files = []
    else:
        files = stored_files(table, contract, None if options.sweep else key_range)
    components = components_of(files)
    windows = windows_of(components, runs, options.window_rows)
    outcome = _Outcome()
    transaction = table.transaction()
    for window in windows:
        _merge_window(
            transaction, table, arrow_schema, runs, window, contract, dms, options, outcome
        )

    properties_changed = any(table.properties.get(k) != v for k, v in table_properties.items())
    changed = bool(outcome.rewritten or outcome.added)
    if changed:
        with transaction.update_snapshot(snapshot_properties=snapshot_properties).overwrite() as ow:
            for data_file in outcome.rewritten:
                ow.delete_data_file(data_file)
            for data_file in outcome.added:
                ow.append_data_file(data_file)
    if properties_changed:
        transaction.set_properties(table_properties)
    if changed or properties_changed:
        transaction.commit_transaction()
        table = table.refresh()
    return TableWrite(
        inserted=outcome.inserted,
        updated=outcome.updated,
        deleted=outcome.deleted,
        unchanged=outcome.unchanged,
        redelivered=outcome.redelivered,
        swept=outcome.swept,
        files_scanned=outcome.files_scanned,
        files_rewritten=len(outcome.rewritten),
        files_added=len(outcome.added),
        snapshot_id=table.metadata.current_snapshot_id,
        touched_dates={
            name: sorted(day.isoformat() for day in days)
            for name, days in sorted(outcome.touched.items())
            if days
        },
    )


# --------------------------------------------------------------------------- windows


def components_of(files: list[StoredFile]) -> list[_Component]:
    """Files grouped where their key ranges overlap, in key order."""
    if not files:
        return []
    if any(not file.bounded for file in files):
        return [_Component(tuple(files), None, None)]
    ordered = sorted(files, key=lambda file: file.low)
    groups: list[list[StoredFile]] = [[ordered[0]]]
    high = ordered[0].high
    for file in ordered[1:]:
        if file.low <= high:
            groups[-1].append(file)
            high = max(high, file.high)
        else:
            groups.append([file])
            high = file.high
    return [
        _Component(tuple(group), group[0].low, max(file.high for file in group)) for group in groups
    ]


def windows_of(components: list[_Component], runs: ChangeRuns, window_rows: int) -> list[_Window]:
    """Cut the key space where about ``window_rows`` changes have passed, never inside a
    component; each component lands in the window that holds its keys."""
    if components and components[0].low is None:  # unbounded: one window for everything
        return [_Window(None, None, tuple(components))]
    lows = [component.low for component in components]
    cuts = []
    samples = runs.sample_keys()
    per_sample = runs.rows / len(samples) if samples else 0
    passed = 0.0
    for value in samples:
        passed += per_sample
        if passed < window_rows:
            continue
        # A cut inside a component moves to the component's start.
        index = bisect.bisect_right(lows, value) - 1
        if index >= 0 and components[index].low < value <= components[index].high:
            value = components[index].low
        if not cuts or value > cuts[-1]:
            cuts.append(value)
            passed = 0.0
    edges = [None, *cuts, None]
    windows = []
    for low, high in zip(edges, edges[1:]):
        inside = tuple(
            component
            for component in components
            if (low is None or component.low >= low) and (high is None or component.low < high)
        )
        windows.append(_Window(low, high, inside))
    return windows


# --------------------------------------------------------------------------- one window


def _merge_window(
    transaction,
    table: Table,
    arrow_schema: pa.Schema,
    runs: ChangeRuns,
    window: _Window,
    contract: TableContract,
    dms: DmsSettings,
    options: MergeOptions,
    outcome: _Outcome,
) -> None:
    latest = _latest(runs.slice(window.low, window.high), options, outcome)
    placed = np.zeros(latest.num_rows, dtype=bool) if latest is not None else None
    for component in window.components:
        mine = None
        if latest is not None:
            in_component = _within(latest[KEY].combine_chunks(), component)
            placed |= in_component
            mine = latest.filter(pa.array(in_component)) if in_component.any() else None
        if mine is None and options.sweep is None:
            continue
        _merge_component(
            transaction, table, arrow_schema, mine, component, contract, dms, options, outcome
        )
    if latest is not None and not placed.all():
        # Keys no data file's range holds: not stored anywhere.
        rest = latest.filter(pa.array(~placed)) if placed.any() else latest
        plan = _plan(rest, None, arrow_schema, contract, dms, options)
        _count(outcome, plan)
        winners = plan.winners.select(arrow_schema.names).cast(arrow_schema)
        _touch(outcome, contract, [winners])
        outcome.added += write_data_files(table, _sorted(winners, contract))


def _latest(changes: pa.Table, options: MergeOptions, outcome: _Outcome) -> pa.Table | None:
    """The window's newest change per key (None: no change), those positioned before the
    reload barrier dropped: they are stale whenever they arrive (counted unchanged)."""
    if changes.num_rows == 0:
        return None
    ranked = with_rank(changes, options.history)
    barrier = options.history.barrier_us
    if barrier is not None:
        before = pc.fill_null(pc.less(ranked[ORDER_TS], _timestamp(barrier)), False)
        outcome.unchanged += pc.sum(before.cast(pa.int64())).as_py() or 0
        ranked = ranked.filter(pc.invert(before))
    return newest_per_key(ranked) if ranked.num_rows else None


def _within(keys: pa.Array, component: _Component) -> np.ndarray:
    if component.low is None:
        return np.ones(len(keys), dtype=bool)
    inside = pc.and_(
        pc.greater_equal(keys, pa.scalar(component.low, keys.type)),
        pc.less_equal(keys, pa.scalar(component.high, keys.type)),
    )
    return pc.fill_null(inside, False).to_numpy(zero_copy_only=False)


def _merge_component(
    transaction,
    table: Table,
    arrow_schema: pa.Schema,
    latest: pa.Table | None,
    component: _Component,
    contract: TableContract,
    dms: DmsSettings,
    options: MergeOptions,
    outcome: _Outcome,
) -> None:
    """Plan ``latest`` (None: only the sweep) against the component's files, one file read
    at a time, and rewrite the files that change."""
    keys = latest[KEY].combine_chunks() if latest is not None else None
    sweeping = options.sweep is not None
    # The sweep tombstones rows positioned before the load's start: only rows transferred or
    # committed before its first transfer can be (its own rows, and changes after it, not).
    commit_ts = table.schema().find_field(COMMIT_TS)
    tasks = [
        file.task
        for file in component.files
        if (sweeping and may_hold_before(file, commit_ts, options.sweep.first_us))
        or (keys is not None and may_hold(file, keys))
    ]
    held: list[tuple[Any, pa.Table, pa.Array]] = []
    for task, data in read_data_files(table, tasks):
        outcome.files_scanned += 1
        data_keys = key_array(data, contract.primary_key)
        holds = keys is not None and pc.any(pc.is_in(data_keys, value_set=keys)).as_py()
        if holds or sweeping:
            held.append((task, data, data_keys))
    winners = arrow_schema.empty_table()
    winner_keys = None
    if latest is not None:
        stored = _stored_rows(held, keys, arrow_schema, contract, dms, options.history)
        plan = _plan(latest, stored, arrow_schema, contract, dms, options)
        _count(outcome, plan)
        winners = plan.winners.select(arrow_schema.names).cast(arrow_schema)
        winner_keys = plan.winners[KEY].combine_chunks()
        replaced_rows = stored.filter(pc.is_in(stored[KEY], value_set=winner_keys))
        _touch(outcome, contract, [winners, replaced_rows])
    placed = np.zeros(winners.num_rows, dtype=bool)
    for task, data, data_keys in held:
        replaced = np.zeros(data.num_rows, dtype=bool)
        own = placed
        if winner_keys is not None and len(winner_keys):
            replaced = pc.is_in(data_keys, value_set=winner_keys).to_numpy(zero_copy_only=False)
            own = (
                pc.is_in(winner_keys, value_set=data_keys).to_numpy(zero_copy_only=False) & ~placed
            )
        swept = _to_sweep(data, replaced, options)
        if not replaced.any() and not swept.any():
            continue
        placed = placed | own
        parts = [data.filter(pa.array(~replaced & ~swept)).cast(arrow_schema)]
        parts.append(winners.filter(pa.array(own)))
        if swept.any():
            tombstones = _tombstones(data.filter(pa.array(swept)), options).cast(arrow_schema)
            outcome.swept += tombstones.num_rows
            _touch(outcome, contract, [tombstones])
            parts.append(tombstones)
        outcome.rewritten.append(task.file)
        rows = _sorted(pa.concat_tables(parts), contract)
        outcome.added += write_data_files(table, rows)
    if not placed.all():
        rest = _sorted(winners.filter(pa.array(~placed)), contract)
        outcome.added += write_data_files(table, rest)


def _plan(latest, stored, arrow_schema, contract, dms, options):
    if stored is None:
        stored = _empty_stored(arrow_schema, contract, dms, options.history)
    return plan_merge(
        latest,
        stored,
        pa.scalar(options.ingested_at, _TIMESTAMP),
        contract.column_names,
        options.reapply,
    )


def _sorted(rows: pa.Table, contract: TableContract) -> pa.Table:
    """Key order inside a data file keeps its key range tight (merges prune by it)."""
    if len(contract.primary_key) == 1 and rows.num_rows > 1:
        keys = rows[contract.primary_key[0]].combine_chunks()
        if pc.all(pc.less_equal(keys[:-1], keys[1:])).as_py():
            return rows  # already in key order (a window of a run)
    return rows.sort_by([(name, "ascending") for name in contract.primary_key])


def _timestamp(micros: int) -> pa.Scalar:
    return pa.scalar(micros, pa.int64()).cast(_TIMESTAMP)


def _stored_rows(held, keys, arrow_schema, contract, dms, history) -> pa.Table:
    """The stored rows of the changed keys, with their positions."""
    if not held or keys is None:
        return _empty_stored(arrow_schema, contract, dms, history)
    parts = [data.filter(pc.is_in(data_keys, value_set=keys)) for _, data, data_keys in held]
    # promote_options: files written by other engines (Spark) read as string, pyiceberg's as
    # large_string.
    stored = pa.concat_tables(parts, promote_options="permissive")
    return with_rank(with_key(stored, contract.primary_key, dms), history)


def _empty_stored(arrow_schema, contract, dms, history) -> pa.Table:
    return with_rank(with_key(arrow_schema.empty_table(), contract.primary_key, dms), history)


def _to_sweep(data: pa.Table, replaced: np.ndarray, options: MergeOptions) -> np.ndarray:
    """Live rows of ``data`` (not replaced now) positioned before the completed load."""
    if options.sweep is None or data.num_rows == 0:
        return np.zeros(data.num_rows, dtype=bool)
    start = options.history.start_us(options.sweep)
    ranked = with_rank(data.select([COMMIT_TS, FILE_ORDER]), options.history)
    before = pc.fill_null(pc.less(ranked[ORDER_TS], _timestamp(start)), False)
    before = before.to_numpy(zero_copy_only=False)
    live = ~pc.fill_null(data[IS_DELETED], True).to_numpy(zero_copy_only=False)
    return before & live & ~replaced


def _tombstones(rows: pa.Table, options: MergeOptions) -> pa.Table:
    """The sweep's tombstones: ranked at the load's start, first within it (SWEEP_FILE_ORDER),
    so a late file of the same load still restores its keys."""
    count = rows.num_rows
    first = pa.scalar(options.sweep.first_us, pa.int64()).cast(_TIMESTAMP)
    values = {
        OP: pa.repeat(pa.scalar("D"), count),
        COMMIT_TS: pa.repeat(first, count),
        CHANGE_SEQ: pa.nulls(count, pa.string()),
        SOURCE_FILE: pa.nulls(count, pa.string()),
        SOURCE_ROW: pa.repeat(pa.scalar(0, pa.int64()), count),
        FILE_ORDER: pa.repeat(pa.scalar(SWEEP_FILE_ORDER), count),
        INGESTED_AT: pa.repeat(pa.scalar(options.ingested_at, _TIMESTAMP), count),
        IS_DELETED: pa.repeat(pa.scalar(True), count),
    }
    for name, array in values.items():
        index = rows.schema.get_field_index(name)
        rows = rows.set_column(index, name, array.cast(rows.schema.field(name).type))
    return rows


# --------------------------------------------------------------------------- accounting


def _count(outcome: _Outcome, plan) -> None:
    outcome.inserted += plan.inserted
    outcome.updated += plan.updated
    outcome.deleted += plan.deleted
    outcome.unchanged += plan.unchanged
    outcome.redelivered += plan.redelivered


def _touch(outcome: _Outcome, contract: TableContract, tables: Iterable[pa.Table]) -> None:
    """Per date/timestamp contract column, the dates (UTC) of the rows this merge changed."""
    for column in contract.columns:
        if column.type not in ("date", "timestamp", "timestamptz"):
            continue
        for table in tables:
            if column.name in table.column_names and table.num_rows:
                days = pc.unique(pc.cast(table[column.name], pa.date32())).drop_null()
                outcome.touched[column.name].update(days.to_pylist())
