"""The DMS landing sensor: new DMS files become bronze partitions and silver runs.

Each tick lists only what is new under each table's folder, with S3
``list_objects_v2`` ``StartAfter`` (a local lake's ``list_objects`` skips
folders the same way), never the whole prefix. A table folder holds two key streams
that interleave badly in key order, so each has its own cursor:

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
backlog drains over the following ticks, tables taking turns first. A
stream's cursor never moves past a key that was not taken. For the files taken
the sensor records one bronze materialization per (table, day) with the files'
count and bytes, and requests silver runs: the days of one table become one
partition-range run (days further apart than ``range_gap_days`` start a new
range). Run keys are derived from the files requested, so evaluating the same
tick twice (a daemon restarted before the cursor was saved) launches nothing
twice, and a tick from the saved cursor finds nothing new.

Keys under a table folder that start with a character before ``0`` (none in
the DMS layout) are ignored. A file whose name is more than the lookback
window older than the newest CDC file seen is not picked up: backfill its day.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from lakehouse_assets.bronze.assets import bronze_asset_key
from lakehouse_assets.contracts import Contracts, DmsSettings, TableContract
from lakehouse_assets.dms import DmsKeyError, FileKind, date_folder, parse_object_key, table_prefix
from lakehouse_assets.lake import LakeStore, ObjectInfo
from lakehouse_assets.resources import LakeResource
from lakehouse_assets.silver.assets import silver_asset_key

SENSOR_NAME = "dms_landing_sensor"
TRIGGER_TAG = "lakehouse/trigger"
NEW_FILES_TAG = "lakehouse/new_files"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

LOOKBACK_VAR = "LAKEHOUSE_SENSOR_LOOKBACK_MINUTES"
MAX_FILES_VAR = "LAKEHOUSE_SENSOR_MAX_FILES_PER_TICK"
INTERVAL_VAR = "LAKEHOUSE_SENSOR_INTERVAL_SECONDS"
RANGE_GAP_VAR = "LAKEHOUSE_SENSOR_RANGE_GAP_DAYS"
IN_PROCESS_VAR = "LAKEHOUSE_SENSOR_RUN_IN_PROCESS"
# A silver run is one merge step and its checks: running them in the run's own
# process saves a Python start per step (seconds each), more than most merges take.
IN_PROCESS_RUN_CONFIG = {"execution": {"config": {"in_process": {}}}}

CDC, LOAD = "cdc", "load"
# Digits are the CDC stream; ':' is the first character after '9'.
_CDC_FIRST, _CDC_END = "0", ":"
# DatePartitionSequence values whose folders sort in time order.
_TIME_ORDERED_SEQUENCES = ("YYYYMMDD", "YYYYMMDDHH", "YYYYMM")
_CURSOR_VERSION = 1
_COMPRESS_OVER = 4096  # characters of JSON


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class LandingSettings:
    lookback: timedelta = timedelta(minutes=60)
    max_files_per_tick: int = 5000
    interval_seconds: int = 30
    range_gap_days: int = 7
    run_in_process: bool = True  # needs the default (multi_or_in_process) executor

    def __post_init__(self) -> None:
        if self.lookback < timedelta(0):
            raise ValueError("the sensor lookback cannot be negative")
        if self.max_files_per_tick < 1:
            raise ValueError("the sensor needs max_files_per_tick >= 1")
        if self.interval_seconds < 1 or self.range_gap_days < 0:
            raise ValueError("the sensor interval must be >= 1 s and the range gap >= 0 days")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> LandingSettings:
        defaults = cls()
        return cls(
            lookback=timedelta(
                minutes=_int_env(environ, LOOKBACK_VAR, defaults.lookback // timedelta(minutes=1))
            ),
            max_files_per_tick=_int_env(environ, MAX_FILES_VAR, defaults.max_files_per_tick),
            interval_seconds=_int_env(environ, INTERVAL_VAR, defaults.interval_seconds),
            range_gap_days=_int_env(environ, RANGE_GAP_VAR, defaults.range_gap_days),
            run_in_process=environ.get(IN_PROCESS_VAR, "1").strip().lower()
            not in ("0", "false", "no"),
        )


def _int_env(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a whole number") from None


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


# --------------------------------------------------------------------------- cursor


@dataclass
class StreamCursor:
    """Where one key stream of one table stands. Keys are relative to the table folder."""

    after: str | None = None  # the next listing starts after this key (None: the stream start)
    pos: str | None = None  # the newest key taken
    seen: set[str] = field(default_factory=set)  # keys taken that sort after ``after``
    hwm: str | None = None  # cdc: newest CDC file time taken, YYYYMMDDHHMMSS
    active_until: float | None = None  # load: a full load is landing until this POSIX time

    def to_json(self) -> dict:
        data = {
            "a": self.after,
            "p": self.pos,
            "s": sorted(self.seen),
            "h": self.hwm,
            "u": self.active_until,
        }
        return {k: v for k, v in data.items() if v not in (None, [])}

    @classmethod
    def from_json(cls, data: Mapping) -> StreamCursor:
        return cls(
            after=data.get("a"),
            pos=data.get("p"),
            seen=set(data.get("s", ())),
            hwm=data.get("h"),
            active_until=data.get("u"),
        )


@dataclass
class LandingCursor:
    streams: dict[str, dict[str, StreamCursor]] = field(default_factory=dict)
    next_table: int = 0  # which table lists first on the next tick

    def stream(self, table: str, name: str) -> StreamCursor:
        return self.streams.setdefault(table, {}).setdefault(name, StreamCursor())

    def encode(self) -> str:
        document = {
            "v": _CURSOR_VERSION,
            "n": self.next_table,
            "t": {
                table: {name: state.to_json() for name, state in streams.items()}
                for table, streams in sorted(self.streams.items())
            },
        }
        text = json.dumps(document, separators=(",", ":"), sort_keys=True)
        if len(text) <= _COMPRESS_OVER:
            return text
        return "z1:" + base64.b64encode(zlib.compress(text.encode(), 6)).decode()

    @classmethod
    def decode(cls, text: str | None) -> LandingCursor:
        if not text:
            return cls()
        if text.startswith("z1:"):
            text = zlib.decompress(base64.b64decode(text[3:])).decode()
        document = json.loads(text)
        if document.get("v") != _CURSOR_VERSION:
            raise ValueError(f"unknown {SENSOR_NAME} cursor version {document.get('v')!r}")
        return cls(
            streams={
                table: {name: StreamCursor.from_json(state) for name, state in streams.items()}
                for table, streams in document.get("t", {}).items()
            },
            next_table=int(document.get("n", 0)),
        )


# --------------------------------------------------------------------------- scanning


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
    budget = [settings.max_files_per_tick]
    start = cursor.next_table % len(tables)
    next_table = (start + 1) % len(tables)
    for offset in range(len(tables)):
        index = (start + offset) % len(tables)
        contract = tables[index]
        for name in (LOAD, CDC):
            state = cursor.stream(contract.name, name)
            _scan_stream(
                store,
                contracts.dms,
                contract,
                name,
                state,
                settings,
                budget,
                scan,
                first_day,
                last_day,
                now,
            )
            if scan.backlog:
                break
        if scan.backlog:
            # The tables after this one go first next time, so one table's
            # backlog cannot starve the others.
            next_table = (index + 1) % len(tables)
            break
    cursor.next_table = next_table
    return scan


def _scan_stream(
    store: LakeStore,
    dms: DmsSettings,
    contract: TableContract,
    name: str,
    state: StreamCursor,
    settings: LandingSettings,
    budget: list[int],
    scan: LandingScan,
    first_day: date,
    last_day: date,
    now: datetime,
) -> None:
    prefix = table_prefix(dms, contract.schema, contract.name)
    if name == CDC:
        start = state.after
    else:
        start = state.after or _CDC_END
    took_new = False
    for info in store.list_objects(prefix, start_after=prefix + start if start else None):
        relative = info.key[len(prefix) :]
        if name == CDC:
            if relative >= _CDC_END:
                break  # the rest of the folder is the load stream
            if relative < _CDC_FIRST:
                continue  # not a DMS key (ignored, see the module docstring)
        scan.listed += 1
        if relative in state.seen:
            continue
        if budget[0] <= 0:
            scan.backlog = True
            break
        try:
            landed, stamp = _classify(info, dms, contract, first_day, last_day, scan)
        except _Wait:
            scan.waiting.append(info.key)
            break
        budget[0] -= 1
        state.seen.add(relative)
        state.pos = max(state.pos or relative, relative)
        if landed is not None:
            scan.files.append(landed)
            took_new = True
        if stamp is not None:
            state.hwm = max(state.hwm or stamp, stamp)

    if name == CDC:
        if state.hwm is not None and state.pos is not None:
            floor = min(_cdc_floor(dms, state.hwm, settings.lookback), state.pos)
            state.after = max(state.after or floor, floor)
    else:
        if took_new:
            state.active_until = (now + settings.lookback).timestamp()
        if state.active_until is None or now.timestamp() >= state.active_until:
            state.active_until = None
            state.after = state.pos if state.pos is not None else state.after
    if state.after is not None:
        state.seen = {key for key in state.seen if key > state.after}


def _classify(
    info: ObjectInfo,
    dms: DmsSettings,
    contract: TableContract,
    first_day: date,
    last_day: date,
    scan: LandingScan,
) -> tuple[LandedFile | None, str | None]:
    """The landed file (None: not a DMS data file of a partition) and its CDC time stamp."""
    try:
        parsed = parse_object_key(info.key, dms)
    except DmsKeyError as exc:
        scan.skipped.append((info.key, str(exc)))
        return None, None
    stamp = _cdc_stamp(parsed.order) if parsed.kind is FileKind.CDC else None
    day = parsed.partition_date(info.last_modified)
    if day > last_day:
        raise _Wait
    if day < first_day:
        scan.skipped.append((info.key, f"its day {day} is before the first partition {first_day}"))
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


# --------------------------------------------------------------------------- requests


def plan_requests(
    scan: LandingScan, settings: LandingSettings
) -> tuple[list[dg.AssetMaterialization], list[dg.RunRequest]]:
    """Bronze materializations per (table, day) and silver range runs per table."""
    by_day: dict[tuple[str, date], list[LandedFile]] = defaultdict(list)
    for landed in scan.files:
        by_day[(landed.table, landed.day)].append(landed)

    events = []
    for (table, day), files in sorted(by_day.items()):
        keys = sorted(f.key for f in files)
        events.append(
            dg.AssetMaterialization(
                asset_key=bronze_asset_key(table),
                partition=day.isoformat(),
                description=f"{len(files)} DMS files landed (recorded by {SENSOR_NAME})",
                metadata={
                    "files": len(files),
                    "bytes": sum(f.size for f in files),
                    "first_file": keys[0],
                    "last_file": keys[-1],
                    "newest_last_modified": dg.MetadataValue.timestamp(
                        max(f.last_modified for f in files)
                    ),
                    "landed_by": SENSOR_NAME,
                },
            )
        )

    requests = []
    days_by_table: dict[str, list[date]] = defaultdict(list)
    for table, day in sorted(by_day):
        days_by_table[table].append(day)
    for table, days in sorted(days_by_table.items()):
        for first, last in day_ranges(days, settings.range_gap_days):
            files = [
                landed
                for (owner, day), landed_files in by_day.items()
                if owner == table and first <= day <= last
                for landed in landed_files
            ]
            digest = hashlib.sha256("\n".join(sorted(f.key for f in files)).encode()).hexdigest()[
                :20
            ]
            requests.append(
                dg.RunRequest(
                    run_key=f"silver/{table}:{first.isoformat()}...{last.isoformat()}:{digest}",
                    asset_selection=[silver_asset_key(table)],
                    run_config=IN_PROCESS_RUN_CONFIG if settings.run_in_process else None,
                    tags={
                        RANGE_START_TAG: first.isoformat(),
                        RANGE_END_TAG: last.isoformat(),
                        TRIGGER_TAG: SENSOR_NAME,
                        NEW_FILES_TAG: str(len(files)),
                    },
                )
            )
    return events, requests


def day_ranges(days: Iterable[date], gap_days: int) -> list[tuple[date, date]]:
    """Sorted ``days`` as (first, last) ranges; days at most ``gap_days`` apart share one."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and (day - ranges[-1][1]).days <= gap_days + 1:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


# --------------------------------------------------------------------------- the sensor


def partition_bounds(partitions_def: dg.PartitionsDefinition, now: datetime) -> tuple[date, date]:
    """First and last day that have a daily partition at ``now``."""
    with dg.partition_loading_context(effective_dt=now):
        first = partitions_def.get_first_partition_key()
        last = partitions_def.get_last_partition_key()
    if first is None or last is None:
        raise ValueError("the partitions definition has no partitions yet")
    return date.fromisoformat(first), date.fromisoformat(last)


def build_dms_landing_sensor(
    contracts: Contracts,
    partitions_def: dg.PartitionsDefinition,
    settings: LandingSettings | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dg.SensorDefinition:
    settings = settings or LandingSettings()
    try:
        check_layout(contracts.dms)
        layout_error = None
    except ValueError as exc:
        # Keep the code location loadable (backfills still work); every tick says why not.
        layout_error = str(exc)
    silver_keys = [silver_asset_key(name) for name in contracts.tables]

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=settings.interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        target=silver_keys,
        description=(
            "Lists new AWS DMS files under each table folder (StartAfter per key stream, "
            f"{settings.lookback} lookback for late files, at most "
            f"{settings.max_files_per_tick} files per tick), records a bronze materialization "
            "per landed partition and requests one silver partition-range run per table."
        ),
    )
    def dms_landing_sensor(
        context: dg.SensorEvaluationContext, lake: LakeResource
    ) -> dg.SensorResult:
        if layout_error:
            raise ValueError(layout_error)
        now = clock()
        first_day, last_day = partition_bounds(partitions_def, now)
        scan = scan_landing(
            lake.store(),
            contracts,
            LandingCursor.decode(context.cursor),
            settings,
            first_day=first_day,
            last_day=last_day,
            now=now,
        )
        events, requests = plan_requests(scan, settings)
        for key, reason in scan.skipped[:20]:
            context.log.warning(f"skipped {key}: {reason}")
        if scan.waiting:
            context.log.info(
                f"waiting for the partition of {len(scan.waiting)} files, e.g. {scan.waiting[0]}"
            )
        context.log.info(
            f"{len(scan.files)} new files ({sum(f.size for f in scan.files)} bytes) in "
            f"{len(events)} bronze partitions, {len(requests)} silver runs requested; "
            f"{scan.listed} keys listed" + ("; backlog remains" if scan.backlog else "")
        )
        return dg.SensorResult(
            run_requests=requests, asset_events=events, cursor=scan.cursor.encode()
        )

    return dms_landing_sensor
