"""Quarantined CDC files fixed or replaced in bronze: taken again, once per new version.

A structurally bad file waits in ``silver.<table>__quarantine`` with the size and ETag it
had. Once it is fixed or replaced under its key it must be applied, but it may be far older
than the CDC stream's lookback window, so each quarantined key is looked up on its own (a
listing of the key: a table has few). A version other than the quarantined one is taken
like a new file: its day's silver run is requested and a bronze materialization recorded.
The cursor remembers the version requested, so the next ticks ask nothing more while the
run is queued; once the run applies the file (the quarantine row goes) or quarantines the
new version too, the key drops out of the cursor.
"""

from __future__ import annotations

from collections.abc import Mapping

from lakehouse_assets.bronze.files import BronzeFile
from lakehouse_assets.contracts import TableContract
from lakehouse_assets.dms import DmsKeyError, FileKind, parse_object_key
from lakehouse_assets.lake import ObjectInfo
from lakehouse_assets.sensors.landing.context import (
    ScanContext,
    WaitForPartition,
    classify,
    object_version,
)
from lakehouse_assets.silver.quarantine import QuarantinedFile


def watch_quarantine(
    context: ScanContext,
    contract: TableContract,
    quarantined: Mapping[str, QuarantinedFile],
    requested: Mapping[str, str],
) -> dict[str, str]:
    """Take the quarantined CDC files rewritten since they were quarantined; return the
    versions requested (``requested`` updated) for the keys still quarantined."""
    scan = context.scan
    taken_now = {landed.key for landed in scan.files}
    pending = {key: version for key, version in requested.items() if key in quarantined}
    for key, entry in sorted(quarantined.items()):
        if entry.kind != FileKind.CDC.value:
            continue  # the load stream lists every LOAD file each tick and sees a new version
        if key in taken_now:
            continue  # the CDC stream took it this tick (a key it had not listed before)
        info = _current(context, key)
        if info is None:
            pending.pop(key, None)  # deleted: the next run of its day clears its row
            continue
        try:
            parsed = parse_object_key(key, context.dms)
        except DmsKeyError:
            continue  # not a DMS data file under the contract any more: nothing to apply
        if entry.same_version(BronzeFile(info=info, key=parsed)):
            pending.pop(key, None)  # still the bad version (or quarantined again)
            continue
        version = object_version(info)
        if pending.get(key) == version:
            continue  # requested already; its run has not applied it yet
        if context.budget.spent:
            scan.backlog = True
            break
        try:
            landed, _ = classify(context, contract, info, rewritten=True)
        except WaitForPartition:
            scan.waiting.append(key)
            continue
        context.budget.take()
        pending[key] = version
        if landed is not None:
            scan.files.append(landed)
    return pending


def _current(context: ScanContext, key: str) -> ObjectInfo | None:
    """The object now under ``key``, if any (a listing of the key: one request on S3)."""
    for info in context.store.list_objects(key):
        context.scan.listed += 1
        # Keys are listed in order and a key sorts before every longer key it starts.
        return info if info.key == key else None
    return None
