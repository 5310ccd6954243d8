"""Listing what landed: each table folder's two key streams, and its quarantined files.

A table folder holds two key streams that interleave badly in key order, so each is listed
its own way:

* ``cdc``: keys starting with a digit, i.e. the date folders
  (``2024/01/02/20240102-101500000.csv``) or, without date partitioning, the CDC files
  themselves. Key order is time order, and a table gets ~1,440 files a day, so only what is
  new is listed, with S3 ``list_objects_v2`` ``StartAfter`` (a local lake's ``list_objects``
  skips folders the same way), never the whole prefix. Files can land late in an earlier
  folder, so each tick lists again from a *lookback floor*: the key of the newest CDC file's
  time minus the lookback window; keys after the floor already taken are kept in the cursor
  with their version (``seen``) and skipped, unless rewritten (a new version: taken again).
* ``load``: everything after the digits: ``LOAD00000001.csv`` (which sorts *after*
  ``2024/...``), ``SEGMENTn_LOAD...``, full-load sub-folders. A table has tens to hundreds
  of them, so the stream is listed whole every tick and each key is known with its version
  (``object_version``): parallel segments that finish out of key order are found, and a
  reload (DMS empties the folder and writes new LOAD files, often under the first load's
  names) shows as new versions of known keys.

A quarantined CDC file that is fixed or replaced (a new ETag or size) may be far older than
the lookback window: ``quarantine`` looks each one up by its key. Quarantined LOAD files
need nothing more: the load stream sees their new version.

Work per tick is bounded: at most ``max_files_per_tick`` keys are taken; a backlog drains
over the following ticks, tables taking turns first. A stream's cursor never moves past a
key that was not taken.

Keys under a table folder that start with a character before ``0`` (none in the DMS
layout) are ignored. A CDC file whose name is more than the lookback window older than the
newest CDC file seen is not picked up, nor is a rewrite of one (unless it is quarantined):
backfill its day (its silver run applies what the ledger does not hold at that size and ETag).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta

from lakehouse_assets.contracts import Contracts, DmsSettings, TableContract
from lakehouse_assets.dms import FileKind, date_folder, table_prefix
from lakehouse_assets.lake import LakeStore, ObjectInfo
from lakehouse_assets.sensors.landing.context import (
    LandingScan,
    ScanContext,
    TickBudget,
    WaitForPartition,
    classify,
    object_version,
)
from lakehouse_assets.sensors.landing.cursor import CdcCursor, LandingCursor, LoadCursor
from lakehouse_assets.sensors.landing.quarantine import watch_quarantine
from lakehouse_assets.sensors.landing.settings import LandingSettings
from lakehouse_assets.silver.quarantine import QuarantinedFile

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


def scan_landing(
    store: LakeStore,
    contracts: Contracts,
    cursor: LandingCursor,
    settings: LandingSettings,
    *,
    first_day: date,
    last_day: date,
    quarantined: Mapping[str, Mapping[str, QuarantinedFile]] | None = None,
) -> LandingScan:
    """List what landed since ``cursor``; return the new files and the advanced cursor.

    ``first_day``..``last_day`` are the days that have a partition; a file of a later day
    waits (unlisted) until its partition exists, an earlier one is skipped with a reason.
    ``quarantined`` holds each table's ``silver.<table>__quarantine`` entries by key (None:
    unknown this tick, e.g. the catalog is unreachable: quarantined files are not looked up,
    and the cursor keeps what it had requested of them).
    """
    check_layout(contracts.dms)
    cursor = LandingCursor.decode(cursor.encode())  # work on a copy
    tables = list(contracts.tables.values())
    scan = LandingScan(files=[], cursor=cursor)
    if not tables:
        return scan
    context = ScanContext(
        store=store,
        dms=contracts.dms,
        lookback=settings.lookback,
        first_day=first_day,
        last_day=last_day,
        budget=TickBudget(settings.max_files_per_tick),
        scan=scan,
    )
    start = cursor.next_table % len(tables)
    next_table = (start + 1) % len(tables)
    for offset in range(len(tables)):
        index = (start + offset) % len(tables)
        table_quarantine = None if quarantined is None else quarantined.get(tables[index].name, {})
        _scan_table(context, tables[index], cursor, table_quarantine)
        if scan.backlog:
            # The tables after this one go first next time, so one table's
            # backlog cannot starve the others.
            next_table = (index + 1) % len(tables)
            break
    cursor.next_table = next_table
    return scan


def _scan_table(
    context: ScanContext,
    contract: TableContract,
    cursor: LandingCursor,
    quarantined: Mapping[str, QuarantinedFile] | None,
) -> None:
    state = cursor.table(contract.name)
    prefix = table_prefix(context.dms, contract.schema, contract.dms_name)
    _scan_load_stream(context, contract, prefix, state.load)
    if context.scan.backlog:
        return
    _scan_cdc_stream(context, contract, prefix, state.cdc)
    if context.scan.backlog:
        return
    if quarantined is not None:
        state.quarantine = watch_quarantine(context, contract, quarantined, state.quarantine)


# --------------------------------------------------------------------------- the load stream


def _scan_load_stream(
    context: ScanContext, contract: TableContract, prefix: str, state: LoadCursor
) -> None:
    """List every full-load file; take the keys whose version was not taken before."""
    scan = context.scan
    versions: dict[str, str] = {}
    stopped_at: str | None = None
    for info in context.store.list_objects(prefix, start_after=prefix + _CDC_END):
        relative = info.key[len(prefix) :]
        scan.listed += 1
        version = object_version(info)
        if state.known(relative, version):
            versions[relative] = version
            continue
        if context.budget.spent:
            scan.backlog = True
            stopped_at = relative
            break
        try:
            landed, _ = classify(context, contract, info, rewritten=relative in state.versions)
        except WaitForPartition:
            scan.waiting.append(info.key)
            if relative in state.versions:  # still the version taken before, for now
                versions[relative] = state.versions[relative]
            continue
        context.budget.take()
        versions[relative] = version
        if landed is not None:
            scan.files.append(landed)
    if stopped_at is None:
        # A complete listing: keys no longer in the folder (a reload emptied it) drop out.
        state.versions = versions
        state.v1_after, state.v1_seen = None, set()
    else:
        # The keys not listed keep what the cursor knew of them.
        state.versions = versions | {k: v for k, v in state.versions.items() if k >= stopped_at}


# --------------------------------------------------------------------------- the CDC stream


def _scan_cdc_stream(
    context: ScanContext, contract: TableContract, prefix: str, state: CdcCursor
) -> None:
    """Take the stream's new keys within the budget, then move its cursor on."""
    _take_new_cdc_keys(context, contract, prefix, state)
    if state.hwm is not None and state.pos is not None:
        # List from the lookback floor next time, never past the newest key taken.
        floor = min(_cdc_floor(context.dms, state.hwm, context.lookback), state.pos)
        state.after = max(state.after or floor, floor)
    if state.after is not None:
        state.seen = {key: version for key, version in state.seen.items() if key > state.after}


def _cdc_keys(store: LakeStore, prefix: str, state: CdcCursor) -> Iterator[tuple[ObjectInfo, str]]:
    """The stream's objects after its cursor, each with its key relative to the table folder."""
    start_after = prefix + state.after if state.after else None
    for info in store.list_objects(prefix, start_after=start_after):
        relative = info.key[len(prefix) :]
        if relative >= _CDC_END:
            return  # the rest of the folder is the load stream
        if relative < _CDC_FIRST:
            continue  # not a DMS key (ignored, see the module docstring)
        yield info, relative


def _take_new_cdc_keys(
    context: ScanContext, contract: TableContract, prefix: str, state: CdcCursor
) -> None:
    scan = context.scan
    for info, relative in _cdc_keys(context.store, prefix, state):
        scan.listed += 1
        version = object_version(info)
        if state.known(relative, version):
            continue
        if context.budget.spent:
            scan.backlog = True
            break
        try:
            landed, parsed = classify(context, contract, info, rewritten=relative in state.seen)
        except WaitForPartition:
            scan.waiting.append(info.key)
            break  # the cursor may not move past it
        context.budget.take()
        state.seen[relative] = version
        state.pos = max(state.pos or relative, relative)
        if landed is not None:
            scan.files.append(landed)
        stamp = _cdc_stamp(parsed.order) if parsed and parsed.kind is FileKind.CDC else None
        if stamp is not None:
            state.hwm = max(state.hwm or stamp, stamp)


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
