"""Merge planning: last-writer-wins per primary key, with tombstones (pure, no I/O).

A change's position is (rank time, kind, commit timestamp, change seq, file order, row in
file). The rank time is the commit time of a CDC change and the start of its load for a
full-load row (generations.py); at equal rank time a CDC change beats a load row (kind).
Within a batch the newest change per key wins; against the table, a change replaces the
stored row only when it is newer. Deletes are stored as tombstones (``_is_deleted``) that
keep their position, so an older insert that arrives later cannot bring the row back.
Hence applying any set of changes, in any order and any number of times, gives the same
table.

A **redelivery** is a change with the same commit timestamp, change seq, op and values as
the stored row (DMS sends changes again after a task restart, under later file names). It
is counted as such, never as an update. With a change-seq column, (commit timestamp,
change seq) identifies a change, so a redelivery is not applied at all: nothing is
rewritten. Without one, two changes of a key may share a commit timestamp and the file
order breaks the tie, so the later copy's position must still be stored, or the result
would depend on the order files are applied in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.contracts import DmsSettings
from lakehouse_assets.dms import (
    CHANGE_SEQ,
    COMMIT_TS,
    OP,
    SOURCE_FILE,
    SOURCE_ROW,
    parse_object_key,
)
from lakehouse_assets.silver.generations import LoadHistory

INGESTED_AT = "_ingested_at"
IS_DELETED = "_is_deleted"
# The application order of a row's file (``DmsObjectKey.order_text``): computed once from
# the key when the file is read, stored with the row, so no engine parses keys again.
FILE_ORDER = "_file_order"
KEY = "_key"
# Derived for comparison, never stored: the rank time (generations.py) and the kind, the
# file order's first character: "" a reload's sweep, "0" a full load, "1" CDC.
ORDER_TS = "_order_ts"
KIND = "_kind"
# A change's position, compared field by field, oldest first, nulls first. Both engines
# compare with it: ``is_newer`` here, ``newer_sql`` (derived from it) in Spark.
POSITION = (ORDER_TS, KIND, COMMIT_TS, CHANGE_SEQ, FILE_ORDER, SOURCE_ROW)


@dataclass(frozen=True)
class MergePlan:
    winners: pa.Table  # silver rows to write: one per key whose change beats the stored row
    inserted: int  # new live rows (no stored row, or the stored row was a tombstone)
    updated: int  # live rows whose values a newer change replaced
    deleted: int  # tombstones written over live rows (or for keys never stored)
    unchanged: int  # changes that changed no value: older, redelivered, or equal
    redelivered: int  # of those, copies of the stored row's change


def key_array(table: pa.Table, primary_key: tuple[str, ...]) -> pa.Array:
    """One comparable value per row: the key column, or the joined text of a composite key."""
    if len(primary_key) == 1:
        values = table[primary_key[0]].combine_chunks()
        # Iceberg scans return large_string/large_binary; batches from the reader do not.
        # Joins and set lookups need one type on both sides.
        if pa.types.is_large_string(values.type):
            return values.cast(pa.string())
        if pa.types.is_large_binary(values.type):
            return values.cast(pa.binary())
        return values
    parts = [pc.cast(table[name], pa.string()) for name in primary_key]
    return pc.binary_join_element_wise(*parts, "\x1f").combine_chunks()


def file_order(source_files: pa.ChunkedArray | pa.Array, dms: DmsSettings) -> pa.Array:
    """The application order of each row's file, as sortable text (parsed once per file)."""
    encoded = pc.dictionary_encode(source_files)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    orders = pa.array(
        [parse_object_key(key, dms).order_text for key in encoded.dictionary.to_pylist()],
        pa.string(),
    )
    return pc.take(orders, encoded.indices)


def with_key(table: pa.Table, primary_key: tuple[str, ...], dms: DmsSettings) -> pa.Table:
    """Add the key column, and the file-order column where the table lacks it (reader
    output)."""
    table = table.append_column(KEY, key_array(table, primary_key))
    if FILE_ORDER in table.column_names:
        return table
    return table.append_column(FILE_ORDER, file_order(table[SOURCE_FILE], dms))


def with_rank(table: pa.Table, history: LoadHistory) -> pa.Table:
    """Add the derived position columns (rank time and kind) for ``history``'s loads."""
    for name in (ORDER_TS, KIND):
        if name in table.column_names:
            table = table.drop_columns([name])
    orders = table[FILE_ORDER].combine_chunks() if table.num_rows else pa.array([], pa.string())
    return table.append_column(
        ORDER_TS, history.order_ts(table[COMMIT_TS].combine_chunks(), orders)
    ).append_column(KIND, pc.utf8_slice_codeunits(orders, 0, 1))


def with_position(
    table: pa.Table,
    primary_key: tuple[str, ...],
    dms: DmsSettings,
    history: LoadHistory | None = None,
) -> pa.Table:
    """Add every column merge planning sorts and compares on (``history``: the table's
    loads; none known when omitted)."""
    return with_rank(with_key(table, primary_key, dms), history or LoadHistory.for_dms(dms))


def newest_per_key(changes: pa.Table) -> pa.Table:
    """Keep the newest change of every key (input from ``with_position``)."""
    if changes.num_rows == 0:
        return changes
    keys = changes[KEY].combine_chunks()
    if pc.count_distinct(keys).as_py() == changes.num_rows:
        # One change per key already (a full load): nothing to choose, only key order.
        if len(keys) < 2 or pc.all(pc.less(keys[:-1], keys[1:])).as_py():
            return changes
        return changes.sort_by([(KEY, "ascending")])
    ordered = changes.sort_by(
        [(KEY, "ascending", "at_start")] + [(name, "ascending", "at_start") for name in POSITION]
    )
    keys = ordered[KEY].combine_chunks()
    last_of_key = np.ones(len(keys), dtype=bool)
    if len(keys) > 1:
        last_of_key[:-1] = pc.not_equal(keys[:-1], keys[1:]).to_numpy(zero_copy_only=False)
    return ordered.filter(pa.array(last_of_key))


def _compare(left: pa.ChunkedArray, right: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise (left after right, left before right), nulls first."""
    if left.type != right.type:
        right = right.cast(left.type)
    left_null = pc.is_null(left).to_numpy(zero_copy_only=False)
    right_null = pc.is_null(right).to_numpy(zero_copy_only=False)
    greater = pc.fill_null(pc.greater(left, right), False).to_numpy(zero_copy_only=False)
    less = pc.fill_null(pc.less(left, right), False).to_numpy(zero_copy_only=False)
    return greater | (~left_null & right_null), less | (left_null & ~right_null)


def is_newer(changes: pa.Table, stored: pa.Table) -> np.ndarray:
    """Row-wise: is the change's position after the stored row's? (Nulls sort first.)"""
    newer = np.zeros(changes.num_rows, dtype=bool)
    decided = np.zeros(changes.num_rows, dtype=bool)
    for name in POSITION:
        greater, less = _compare(changes[name], stored[name])
        newer |= ~decided & greater
        decided |= greater | less
    return newer


def equal_rows(changes: pa.Table, stored: pa.Table, names: list[str]) -> np.ndarray:
    """Row-wise: do the two tables hold equal values (nulls equal) in every column of ``names``?"""
    equal = np.ones(changes.num_rows, dtype=bool)
    for name in names:
        greater, less = _compare(changes[name], stored[name])
        equal &= ~greater & ~less
    return equal


def newer_sql(change: dict[str, str], stored: dict[str, str]) -> str:
    """``is_newer`` as a SQL condition over the position fields' expressions (Spark SQL:
    ``<=>`` is null-safe equality)."""

    def after(left: str, right: str) -> str:
        return f"(coalesce({left} > {right}, false) OR ({left} IS NOT NULL AND {right} IS NULL))"

    *leading, last = POSITION
    condition = after(change[last], stored[last])
    for name in reversed(leading):
        condition = (
            f"({after(change[name], stored[name])} OR "
            f"({change[name]} <=> {stored[name]} AND {condition}))"
        )
    return condition


def equal_sql(change: dict[str, str], stored: dict[str, str], names: list[str]) -> str:
    """``equal_rows`` as a SQL condition."""
    return " AND ".join(f"({change[name]} <=> {stored[name]})" for name in names) or "true"


def too_old_reason(horizon: datetime) -> str:
    """The reject reason of a change positioned before the tombstone horizon."""
    return (
        f"positioned before the tombstone horizon {horizon.isoformat()}: tombstones older than "
        "it were purged, so this change can no longer be ordered against them"
    )


# The fields that identify a change (with its op and values: a redelivery).
CHANGE_IDENTITY = (COMMIT_TS, CHANGE_SEQ, OP)


def plan_merge(
    latest: pa.Table,
    stored: pa.Table,
    ingested_at: pa.Scalar,
    value_columns: list[str],
    reapply: bool = False,
) -> MergePlan:
    """Decide which of ``latest`` (one change per key, from ``newest_per_key``) to write.

    ``stored`` holds the table's current rows for those keys, with the position columns
    (``with_position``). ``value_columns``: the contract's columns, compared to tell an
    update from a redelivery or an equal-valued change. ``reapply``: a change at the
    stored row's own position replaces it too (a backfill after a contract change).
    """
    if stored.num_rows == 0:
        # Nothing stored for these keys (a first load): every change wins as it is.
        winners = latest.append_column(
            INGESTED_AT, pa.repeat(ingested_at, latest.num_rows)
        ).append_column(IS_DELETED, pc.equal(latest[OP], "D"))
        deleted = pc.sum(winners[IS_DELETED].cast(pa.int64())).as_py() or 0
        return MergePlan(winners, latest.num_rows - deleted, 0, deleted, 0, 0)
    compared = [*POSITION, OP, *value_columns]
    joined = latest.select([KEY]).append_column(
        "_change_index", pa.array(np.arange(latest.num_rows))
    )
    stored_part = stored.select([KEY, *compared, IS_DELETED]).rename_columns(
        [f"_stored{name}" for name in [KEY, *compared, IS_DELETED]]
    )
    matched = joined.join(
        stored_part, keys=KEY, right_keys=f"_stored{KEY}", join_type="left outer"
    ).sort_by("_change_index")
    changes = latest.take(matched["_change_index"])
    previous = matched.select([f"_stored{name}" for name in compared]).rename_columns(compared)
    has_stored = pc.is_valid(matched[f"_stored{SOURCE_ROW}"]).to_numpy(zero_copy_only=False)
    stored_deleted = pc.fill_null(matched[f"_stored{IS_DELETED}"], True).to_numpy(
        zero_copy_only=False
    )
    stored_live = has_stored & ~stored_deleted

    newer = is_newer(changes, previous)
    same_values = has_stored & equal_rows(changes, previous, value_columns)
    same_change = has_stored & equal_rows(changes, previous, list(CHANGE_IDENTITY))
    redelivery = same_change & same_values
    # With a change seq, (commit ts, change seq) names the change: a copy changes nothing.
    identified = pc.is_valid(changes[CHANGE_SEQ]).to_numpy(zero_copy_only=False)
    skip = redelivery & identified
    wins = ~has_stored | (newer & ~skip)
    if reapply:
        wins |= has_stored & equal_rows(changes, previous, list(POSITION))
    is_delete = pc.equal(changes[OP], "D").to_numpy(zero_copy_only=False)

    winners = changes.filter(pa.array(wins))
    winners = winners.append_column(
        INGESTED_AT, pa.repeat(ingested_at, winners.num_rows)
    ).append_column(IS_DELETED, pc.equal(winners[OP], "D"))
    inserted = int(np.sum(wins & ~is_delete & ~stored_live))
    updated = int(np.sum(wins & ~is_delete & stored_live & ~same_values))
    deleted = int(np.sum(wins & is_delete & (stored_live | ~has_stored)))
    return MergePlan(
        winners=winners,
        inserted=inserted,
        updated=updated,
        deleted=deleted,
        unchanged=latest.num_rows - inserted - updated - deleted,
        redelivered=int(np.sum(redelivery)),
    )
