"""Listing what landed: each table folder's two key streams, from their cursors.

Each tick lists only what is new under each table's folder, with S3
``list_objects_v2`` ``StartAfter`` (a local lake's ``list_objects`` skips folders
the same way), never the whole prefix. A table folder holds two key streams that
interleave badly in key order, so each has its own cursor:

* ``cdc``: keys starting with a digit, i.e. the date folders
  (``2024/01/02/20240102-101500000.csv``) or, without date partitioning, the
  CDC files themselves. Key order is time order. Files can land late in an
  earlier folder, so each tick lists again from a *lookback floor*: the key of
  the newest CDC file's time minus the lookback window; keys after the floor
  already handled are kept in the cursor (``seen``) and skipped.
* ``load``: everything after the digits: ``LOAD00000001.csv`` (which sorts
  *after* ``2024/...``), ``SEGMENTn_LOAD...``, full-load sub-folders. While a
  full load is landing (a new full-load file within the lookback window) the
  stream is listed from where that full load began, since parallel segments
  finish out of key order; afterwards only after the last key.

Work per tick is bounded: at most ``max_files_per_tick`` keys are taken; a
backlog drains over the following ticks, tables taking turns first. A stream's
cursor never moves past a key that was not taken.

Keys under a table folder that start with a character before ``0`` (none in
the DMS layout) are ignored. A file whose name is more than the lookback
window older than the newest CDC file seen is not picked up: backfill its day.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from lakehouse_assets.contracts import Contracts, DmsSettings, TableContract
from lakehouse_assets.dms import DmsKeyError, FileKind, date_folder, parse_object_key, table_prefix
from lakehouse_assets.lake import LakeStore, ObjectInfo
from lakehouse_assets.sensors.landing.cursor import CDC, LOAD, LandingCursor, StreamCursor
from lakehouse_assets.sensors.landing.settings import LandingSettings

# Digits are the CDC stream; ':' is the first character after '9'.
_CDC_FIRST, _CDC_END = "0", ":"
# DatePartitionSequence values whose folders sort in time order.
_TIME_ORDERED_SEQUENCES = ("YYYYMMDD", "YYYYMMDDHH", "YYYYMM")


def check_layout(dms: DmsSettings) -> None:
    """The sensor relies on CDC keys sorting in time order."""
    partitioning = dms.date_partition
    if partitioning.enabled and partitioning.sequence not in _TIME_ORDERED_SEQUENCES:
        raise ValueError(
            f"the DMS landing sensor needs date folders that sort in time order "
            f"(DatePartitionSequence {', '.join(_TIME_ORDERED_SEQUENCES)}, or date partitioning "
            f"off); the contract has {partitioning.sequence}. Materialize bronze/silver "
            f"partitions with backfills instead."
        )


@dataclass(frozen=True)
class LandedFile:
    table: str
    key: str
    size: int
    last_modified: datetime
    day: date


@dataclass
class LandingScan:
    files: list[LandedFile]  # newly landed DMS files taken this tick, in listing order
    cursor: LandingCursor
    listed: int = 0  # keys read from listings (taken or already seen)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key, why): taken, not requested
    waiting: list[str] = field(default_factory=list)  # keys whose day has no partition yet
    backlog: bool = False  # the per-tick budget stopped the scan: more keys are waiting


@dataclass
class TickBudget:
    """Keys one tick may still take, shared by every stream of every table."""

    remaining: int

    @property
    def spent(self) -> bool:
        return self.remaining <= 0

    def take(self) -> None:
        self.remaining -= 1


@dataclass
class _ScanContext:
    """What every stream's scan of one tick shares: where and when it lists, which days
    have a partition, the budget left, and the result it adds to."""

    store: LakeStore
    dms: DmsSettings
    lookback: timedelta
    first_day: date
    last_day: date
    now: datetime
    budget: TickBudget
    scan: LandingScan


class _Wait(Exception):
    """The key's day is not a partition yet: stop the stream before it."""


def scan_landing(
    store: LakeStore,
    contracts: Contracts,
    cursor: LandingCursor,
    settings: LandingSettings,
    *,
    first_day: date,
    last_day: date,
    now: datetime,
) -> LandingScan:
    """List what landed since ``cursor``; return the new files and the advanced cursor.

    ``first_day``..``last_day`` are the days that have a partition; a file of a
    later day waits (unlisted) until its partition exists, an earlier one is
    skipped with a reason.
    """
    check_layout(contracts.dms)
    cursor = LandingCursor.decode(cursor.encode())  # work on a copy
    tables = list(contracts.tables.values())
    scan = LandingScan(files=[], cursor=cursor)
    if not tables:
        return scan
    context = _ScanContext(
        store=store,
        dms=contracts.dms,
        lookback=settings.lookback,
        first_day=first_day,
        last_day=last_day,
        now=now,
        budget=TickBudget(settings.max_files_per_tick),
        scan=scan,
    )
    start = cursor.next_table % len(tables)
    next_table = (start + 1) % len(tables)
    for offset in range(len(tables)):
        index = (start + offset) % len(tables)
        _scan_table(context, tables[index], cursor)
        if scan.backlog:
            # The tables after this one go first next time, so one table's
            # backlog cannot starve the others.
            next_table = (index + 1) % len(tables)
            break
    cursor.next_table = next_table
    return scan


def _scan_table(context: _ScanContext, contract: TableContract, cursor: LandingCursor) -> None:
    for name in (LOAD, CDC):
        _scan_stream(context, contract, name, cursor.stream(contract.name, name))
        if context.scan.backlog:
            return


def _scan_stream(
    context: _ScanContext, contract: TableContract, name: str, state: StreamCursor
) -> None:
    """Take the stream's new keys within the budget, then move its cursor on."""
    prefix = table_prefix(context.dms, contract.schema, contract.name)
    took_new = _take_new_keys(context, contract, prefix, name, state)
    if name == CDC:
        _advance_cdc(context, state)
    else:
        _advance_load(context, state, took_new)
    if state.after is not None:
        state.seen = {key for key in state.seen if key > state.after}


def _stream_keys(
    store: LakeStore, prefix: str, name: str, state: StreamCursor
) -> Iterator[tuple[ObjectInfo, str]]:
    """The stream's objects after its cursor, each with its key relative to the table folder."""
    start = state.after if name == CDC else state.after or _CDC_END
    for info in store.list_objects(prefix, start_after=prefix + start if start else None):
        relative = info.key[len(prefix) :]
        if name == CDC:
            if relative >= _CDC_END:
                return  # the rest of the folder is the load stream
            if relative < _CDC_FIRST:
                continue  # not a DMS key (ignored, see the module docstring)
        yield info, relative


def _take_new_keys(
    context: _ScanContext, contract: TableContract, prefix: str, name: str, state: StreamCursor
) -> bool:
    """Record the stream's keys not seen before; True if a file to request was among them."""
    scan = context.scan
    took_new = False
    for info, relative in _stream_keys(context.store, prefix, name, state):
        scan.listed += 1
        if relative in state.seen:
            continue
        if context.budget.spent:
            scan.backlog = True
            break
        try:
            landed, stamp = _classify(context, contract, info)
        except _Wait:
            scan.waiting.append(info.key)
            break
        context.budget.take()
        state.seen.add(relative)
        state.pos = max(state.pos or relative, relative)
        if landed is not None:
            scan.files.append(landed)
            took_new = True
        if stamp is not None:
            state.hwm = max(state.hwm or stamp, stamp)
    return took_new


def _advance_cdc(context: _ScanContext, state: StreamCursor) -> None:
    """List from the lookback floor next time, never past the newest key taken."""
    if state.hwm is not None and state.pos is not None:
        floor = min(_cdc_floor(context.dms, state.hwm, context.lookback), state.pos)
        state.after = max(state.after or floor, floor)


def _advance_load(context: _ScanContext, state: StreamCursor, took_new: bool) -> None:
    """Keep listing from where a full load began while it lands, then after the last key."""
    if took_new:
        state.active_until = (context.now + context.lookback).timestamp()
    if state.active_until is None or context.now.timestamp() >= state.active_until:
        state.active_until = None
        state.after = state.pos if state.pos is not None else state.after


def _classify(
    context: _ScanContext, contract: TableContract, info: ObjectInfo
) -> tuple[LandedFile | None, str | None]:
    """The landed file (None: not a DMS data file of a partition) and its CDC time stamp."""
    scan = context.scan
    try:
        parsed = parse_object_key(info.key, context.dms)
    except DmsKeyError as exc:
        scan.skipped.append((info.key, str(exc)))
        return None, None
    stamp = _cdc_stamp(parsed.order) if parsed.kind is FileKind.CDC else None
    day = parsed.partition_date(info.last_modified)
    if day > context.last_day:
        raise _Wait
    if day < context.first_day:
        scan.skipped.append(
            (info.key, f"its day {day} is before the first partition {context.first_day}")
        )
        return None, stamp
    landed = LandedFile(
        table=contract.name,
        key=info.key,
        size=info.size,
        last_modified=info.last_modified,
        day=day,
    )
    return landed, stamp


def _cdc_stamp(order: tuple) -> str | None:
    """YYYYMMDDHHMMSS of a CDC file's name, or None if it is not a real time."""
    stamp = str(order[1])[:14]
    try:
        datetime.strptime(stamp, "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return stamp


def _cdc_floor(dms: DmsSettings, hwm: str, lookback: timedelta) -> str:
    """The relative key that every CDC key of a time >= ``hwm - lookback`` sorts after."""
    floor = datetime.strptime(hwm, "%Y%m%d%H%M%S") - lookback
    name = floor.strftime("%Y%m%d-%H%M%S")
    if not dms.date_partition.enabled:
        return name
    return date_folder(dms.date_partition, floor.date(), floor.hour) + name
