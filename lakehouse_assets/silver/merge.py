"""Merge planning: last-writer-wins per primary key, with tombstones (pure, no I/O).

A change's position is (commit timestamp, change seq, file order, row in file).
Within a batch the newest change per key wins; against the table, a change
replaces the stored row only when it is newer. Deletes are stored as
tombstones (``_is_deleted``) that keep their position, so an older insert that
arrives later cannot bring the row back. Hence applying any set of changes, in
any order and any number of times, gives the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

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

INGESTED_AT = "_ingested_at"
IS_DELETED = "_is_deleted"
# The application order of a row's file (``DmsObjectKey.order_text``): computed once from
# the key when the file is read, stored with the row, so no engine parses keys again.
FILE_ORDER = "_file_order"
KEY = "_key"
# A change's position, compared field by field, oldest first, nulls first. Both engines
# compare with it: ``is_newer`` here, ``newer_sql`` (derived from it) in Spark.
POSITION = (COMMIT_TS, CHANGE_SEQ, FILE_ORDER, SOURCE_ROW)


@dataclass(frozen=True)
class MergePlan:
    winners: pa.Table  # silver rows to write: one per key whose change beats the stored row
    inserted: int  # new live rows (no stored row, or the stored row was a tombstone)
    updated: int  # live rows replaced by a newer version
    deleted: int  # tombstones written
    stale: int  # keys whose change is not newer than the stored row (re-deliveries, old days)


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


def with_position(table: pa.Table, primary_key: tuple[str, ...], dms: DmsSettings) -> pa.Table:
    """Add the key column, and the file-order column where the table lacks it (reader
    output), that merge planning sorts and compares on."""
    table = table.append_column(KEY, key_array(table, primary_key))
    if FILE_ORDER in table.column_names:
        return table
    return table.append_column(FILE_ORDER, file_order(table[SOURCE_FILE], dms))


def newest_per_key(changes: pa.Table) -> pa.Table:
    """Keep the newest change of every key (input from ``with_position``)."""
    if changes.num_rows == 0:
        return changes
    ordered = changes.sort_by(
        [(KEY, "ascending", "at_start")] + [(name, "ascending", "at_start") for name in POSITION]
    )
    keys = ordered[KEY].combine_chunks()
    last_of_key = np.ones(len(keys), dtype=bool)
    if len(keys) > 1:
        last_of_key[:-1] = pc.not_equal(keys[:-1], keys[1:]).to_numpy(zero_copy_only=False)
    return ordered.filter(pa.array(last_of_key))


def is_newer(changes: pa.Table, stored: pa.Table) -> np.ndarray:
    """Row-wise: is the change's position after the stored row's? (Nulls sort first.)"""
    newer = np.zeros(changes.num_rows, dtype=bool)
    decided = np.zeros(changes.num_rows, dtype=bool)
    for name in POSITION:
        left, right = changes[name], stored[name]
        left_null = pc.is_null(left).to_numpy(zero_copy_only=False)
        right_null = pc.is_null(right).to_numpy(zero_copy_only=False)
        greater = pc.fill_null(pc.greater(left, right), False).to_numpy(zero_copy_only=False)
        less = pc.fill_null(pc.less(left, right), False).to_numpy(zero_copy_only=False)
        greater |= ~left_null & right_null
        less |= left_null & ~right_null
        newer |= ~decided & greater
        decided |= greater | less
    return newer


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


def plan_merge(latest: pa.Table, stored: pa.Table, ingested_at: pa.Scalar) -> MergePlan:
    """Decide which of ``latest`` (one change per key, from ``newest_per_key``) to write.

    ``stored`` holds the table's current rows for those keys, with ``_key``
    and ``_file_order`` (from ``with_position``).
    """
    position = [KEY, *POSITION, IS_DELETED]
    joined = latest.select([KEY]).append_column(
        "_change_index", pa.array(np.arange(latest.num_rows))
    )
    stored_part = stored.select(position).rename_columns([f"_stored{name}" for name in position])
    matched = joined.join(
        stored_part, keys=KEY, right_keys=f"_stored{KEY}", join_type="left outer"
    ).sort_by("_change_index")
    changes = latest.take(matched["_change_index"])
    previous = matched.select([f"_stored{name}" for name in POSITION]).rename_columns(
        list(POSITION)
    )
    has_stored = pc.is_valid(matched[f"_stored{SOURCE_ROW}"]).to_numpy(zero_copy_only=False)
    stored_live = has_stored & ~pc.fill_null(matched[f"_stored{IS_DELETED}"], True).to_numpy(
        zero_copy_only=False
    )
    wins = ~has_stored | is_newer(changes, previous)
    is_delete = pc.equal(changes[OP], "D").to_numpy(zero_copy_only=False)

    winners = changes.filter(pa.array(wins))
    winners = winners.append_column(
        INGESTED_AT, pa.repeat(ingested_at, winners.num_rows)
    ).append_column(IS_DELETED, pc.equal(winners[OP], "D"))
    return MergePlan(
        winners=winners,
        inserted=int(np.sum(wins & ~is_delete & ~stored_live)),
        updated=int(np.sum(wins & ~is_delete & stored_live)),
        deleted=int(np.sum(wins & is_delete)),
        stale=int(np.sum(~wins)),
    )
