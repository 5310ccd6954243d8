"""What both silver engines share: the typed merge result, commit retries, snapshot properties.

An engine's merge ends in a ``TableWrite`` (what it did to ``silver.<table>``);
``MergeResult`` adds what the run read. Every commit to a silver table or a side
table retries through ``with_commit_retries``, and every silver snapshot carries
the properties that merges and checks read back (``snapshot_properties``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.table import Table

from lakehouse_assets.names import MAX_COMMIT_TS_PROPERTY, TOMBSTONE_HORIZON_PROPERTY

COMMIT_ATTEMPTS = 8
# How a lost commit race surfaces: pyiceberg raises CommitFailedException, or, once its
# own retry has refreshed the table and found files added since the plan,
# ValidationException; Iceberg's Java side (Spark) names the same exceptions in its error.
_CONFLICT_TYPES = (CommitFailedException, ValidationException)
_CONFLICT_MARKERS = ("ValidationException", "CommitFailedException", "CommitStateUnknownException")

T = TypeVar("T")


@dataclass(frozen=True)
class TableWrite:
    """What one engine's merge did to ``silver.<table>``."""

    inserted: int  # new live rows (no stored row, or the stored row was a tombstone)
    updated: int  # live rows whose values a newer change replaced
    deleted: int  # tombstones written over live rows (or for keys never stored)
    unchanged: int  # changes that changed no value: older, redelivered, before a reload
    redelivered: int  # of those, copies of the stored row's change
    swept: int  # live rows a completed reload tombstoned (keys the reload no longer holds)
    files_scanned: int  # data files read: their key range may hold a changed key
    files_rewritten: int
    files_added: int
    snapshot_id: int | None  # the table's current snapshot after the merge
    # Per date/timestamp column, the business dates (ISO) of the rows this merge changed,
    # old and new values: which daily gold partitions must be refreshed (gold/refresh.py).
    touched_dates: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def nothing(cls, snapshot_id: int | None) -> TableWrite:
        return cls(0, 0, 0, 0, 0, 0, 0, 0, 0, snapshot_id)


@dataclass(frozen=True)
class FileCounts:
    """Which of a run's bronze files it applied (the ledger decides)."""

    new: int = 0  # never applied
    changed: int = 0  # applied before with another size or ETag: applied again
    already_applied: int = 0  # skipped
    quarantined: int = 0  # structurally bad: recorded in the quarantine table, not merged
    reapplied: int = 0  # applied again on request (reapply: true)


@dataclass(frozen=True)
class MergeResult:
    changes: int  # rows read from bronze
    inserted: int
    updated: int
    deleted: int
    unchanged: int
    redelivered: int
    swept: int
    rejected: int
    files_scanned: int
    files_rewritten: int
    files_added: int
    snapshot_id: int | None
    max_commit_ts: datetime | None  # newest commit timestamp in this batch
    attempts: int
    touched_dates: dict[str, list[str]] = field(default_factory=dict)
    files: FileCounts = field(default_factory=FileCounts)
    quarantined: dict[str, str] = field(default_factory=dict)  # key -> error, this run's
    schema_drift: dict[str, list[str]] = field(default_factory=dict)  # key -> extra columns

    @classmethod
    def of(
        cls,
        write: TableWrite,
        *,
        changes: int,
        rejected: int,
        max_commit_ts: datetime | None,
        attempts: int,
    ) -> MergeResult:
        return cls(
            changes=changes,
            inserted=write.inserted,
            updated=write.updated,
            deleted=write.deleted,
            unchanged=write.unchanged,
            redelivered=write.redelivered,
            swept=write.swept,
            rejected=rejected,
            files_scanned=write.files_scanned,
            files_rewritten=write.files_rewritten,
            files_added=write.files_added,
            snapshot_id=write.snapshot_id,
            max_commit_ts=max_commit_ts,
            attempts=attempts,
            touched_dates=write.touched_dates,
        )

    @classmethod
    def empty(cls, snapshot_id: int | None = None) -> MergeResult:
        return cls.of(
            TableWrite.nothing(snapshot_id), changes=0, rejected=0, max_commit_ts=None, attempts=0
        )


# --------------------------------------------------------------------------- retries


def is_commit_conflict(exc: BaseException) -> bool:
    """A commit that lost a race with another writer: nothing landed, plan again."""
    if isinstance(exc, _CONFLICT_TYPES):
        return True
    text = str(exc)
    return any(marker in text for marker in _CONFLICT_MARKERS)


def backoff(attempt: int) -> None:
    """Exponential backoff with jitter, so racing writers do not retry in lock step."""
    time.sleep(min(0.05 * 2**attempt, 2.0) * (1 + random.random()))


def with_commit_retries(
    operation: Callable[[], T], attempts: int = COMMIT_ATTEMPTS
) -> tuple[T, int]:
    """Run ``operation`` (which loads the table's current state itself) until it commits
    without a conflict; returns its result and the attempts it took."""
    for attempt in range(1, attempts + 1):
        try:
            return operation(), attempt
        except Exception as exc:
            if attempt == attempts or not is_commit_conflict(exc):
                raise
            backoff(attempt)
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- snapshot properties


def snapshot_property(table: Table, name: str) -> str | None:
    snapshot = table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return None
    return snapshot.summary.additional_properties.get(name)


def max_commit_ts(table: Table) -> datetime | None:
    """The newest source commit any merge has applied to ``table`` (UTC)."""
    value = snapshot_property(table, MAX_COMMIT_TS_PROPERTY)
    if not value:
        return None
    newest = datetime.fromisoformat(value)
    return newest if newest.tzinfo else newest.replace(tzinfo=UTC)


def tombstone_horizon(table: Table) -> datetime | None:
    """Before this time, maintenance purged the tombstones (names.TOMBSTONE_HORIZON_PROPERTY)."""
    value = table.properties.get(TOMBSTONE_HORIZON_PROPERTY)
    if not value:
        return None
    horizon = datetime.fromisoformat(value)
    return horizon if horizon.tzinfo else horizon.replace(tzinfo=UTC)


class HorizonMovedError(RuntimeError):
    """Maintenance raised the tombstone horizon while a merge was being planned."""


def check_horizon(
    table: Table, split_at: datetime | None, earliest_rank: Callable[[], datetime | None]
) -> None:
    """Refuse to merge a batch split at an older tombstone horizon than ``table``'s when one
    of its changes (``earliest_rank``: the earliest position, asked only then) lies before
    the new one: it would be ordered against purged tombstones and could bring a key back.
    Nothing is committed and the ledger is not written, so the next run applies the same
    files again, split at the new horizon."""
    moved_to = tombstone_horizon(table)
    if moved_to is None or moved_to == split_at:
        return
    earliest = earliest_rank()
    if earliest is not None and earliest < moved_to:
        raise HorizonMovedError(
            f"{table.name()}: maintenance raised the tombstone horizon from {split_at} to "
            f"{moved_to} while this run merged changes from {earliest}; nothing was "
            "committed, run it again"
        )


def snapshot_properties(table: Table, batch_max: datetime | None) -> dict[str, str]:
    """The summary properties of the next snapshot of ``table``: carried forward from the
    current one, the newest commit timestamp raised to this batch's."""
    newest = [value for value in (max_commit_ts(table), batch_max) if value is not None]
    return {MAX_COMMIT_TS_PROPERTY: max(newest).isoformat() if newest else ""}
