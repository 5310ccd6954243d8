"""Applying bronze files to a silver table: which files, reading them, merging, recording.

A run for days D1..Dn:

1. lists the days' DMS files and reads the ledger of those days (ledger.py) and the
   quarantine (quarantine.py): it merges only files never applied, or applied with another
   size or ETag (``reapply``: all of them);
2. reads them; a structurally bad file is quarantined and the rest merged
   (``dms.on_bad_file: fail``: the run stops instead);
3. merges them with an engine (the arrow engine here, writer.py; Spark in spark/);
4. replaces the files' rejects, then records the files in the ledger and the quarantine.

A run with nothing new reads no data file and commits nothing. Crashing between the merge
and the ledger only makes the next run apply the same files again, which changes nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog

from lakehouse_assets.bronze.files import BronzeFile, list_load_objects, list_partition_files
from lakehouse_assets.contracts import DmsSettings, TableContract
from lakehouse_assets.dms import (
    COMMIT_TS,
    SOURCE_FILE,
    DmsFormatError,
    FileKind,
    extra_columns_by_file,
    read_dms_file,
)
from lakehouse_assets.dms.keys import DmsObjectKey, parse_object_key
from lakehouse_assets.lake import LakeStore, ObjectInfo
from lakehouse_assets.silver.casting import REASON, cast_changes
from lakehouse_assets.silver.changes import DEFAULT_SPILL_ROWS, ChangeRuns
from lakehouse_assets.silver.generations import (
    GENERATIONS_PROPERTY,
    LoadHistory,
    cdc_name_time_us,
    transfer_range,
)
from lakehouse_assets.silver.history import merge_history
from lakehouse_assets.silver.ledger import (
    DEFAULT_LEDGER_RETENTION_DAYS,
    LOAD_SHARD,
    LedgerEntry,
    commit_range,
    entry_for,
    read_ledger,
    record_applied,
    shard_of,
)
from lakehouse_assets.silver.merge import too_old_reason
from lakehouse_assets.silver.quarantine import (
    QuarantinedFile,
    quarantined,
    read_quarantine,
    update_quarantine,
)
from lakehouse_assets.silver.rejects import replace_rejects
from lakehouse_assets.silver.result import (
    FileCounts,
    MergeResult,
    check_horizon,
    snapshot_properties,
    tombstone_horizon,
    with_commit_retries,
)
from lakehouse_assets.silver.tables import load_or_create_silver_table, table_identifier
from lakehouse_assets.silver.writer import (
    DEFAULT_WINDOW_ROWS,
    MergeOptions,
    merge_runs,
    prepare_changes,
)

# Reads are I/O bound on S3; Arrow parses each file with its own threads. At most
# _READ_AHEAD files are held read but not yet typed.
_READ_WORKERS = 8
_READ_AHEAD = 2 * _READ_WORKERS


@dataclass(frozen=True)
class ReadFile:
    """One bronze file as the DMS reader returned it."""

    key: DmsObjectKey
    raw: pa.Table
    bronze: BronzeFile | None = None  # its listing (size, ETag), when read from the lake


# --------------------------------------------------------------------------- which files


@dataclass(frozen=True)
class FileSelection:
    apply: list[BronzeFile]  # new, changed, or asked for again
    counts: FileCounts


def select_files(
    listed: Sequence[BronzeFile],
    ledger: dict[str, LedgerEntry],
    quarantine: dict[str, QuarantinedFile],
    reapply: bool = False,
) -> FileSelection:
    """The files of a run to read: never applied, applied (or quarantined) as another
    version, or every one with ``reapply``."""
    apply, new, changed, already, waiting, again = [], 0, 0, 0, 0, 0
    for file in listed:
        applied, bad = ledger.get(file.info.key), quarantine.get(file.info.key)
        if bad is not None and bad.same_version(file) and not reapply:
            waiting += 1
        elif applied is not None and applied.same_version(file):
            if reapply:
                apply.append(file)
                again += 1
            else:
                already += 1
        else:
            apply.append(file)
            if applied is None and bad is None:
                new += 1
            else:
                changed += 1
    return FileSelection(apply, FileCounts(new, changed, already, waiting, again))


# --------------------------------------------------------------------------- reading


def read_files(
    store: LakeStore,
    contract: TableContract,
    dms: DmsSettings,
    files: Sequence[BronzeFile],
    bad: dict[str, str],
) -> Iterator[ReadFile]:
    """The files that read, in order, a few read ahead in threads (so a batch is never held
    whole); the structural error of each one that does not goes to ``bad`` (by key), or,
    with ``dms.on_bad_file: fail``, is raised."""

    def read(file: BronzeFile) -> ReadFile | str:
        try:
            raw = read_dms_file(store.get(file.info.key), file.info.key, contract, dms)
        except DmsFormatError as exc:
            if dms.on_bad_file == "fail":
                raise
            return str(exc)
        return ReadFile(file.key, raw, file)

    if not files:
        return
    with ThreadPoolExecutor(max_workers=min(_READ_WORKERS, len(files))) as pool:
        pending: deque = deque()
        for file in files:
            pending.append((file, pool.submit(read, file)))
            if len(pending) >= _READ_AHEAD:
                yield from _ready(pending.popleft(), bad)
        while pending:
            yield from _ready(pending.popleft(), bad)


def _ready(item, bad: dict[str, str]) -> Iterator[ReadFile]:
    file, future = item
    result = future.result()
    if isinstance(result, str):
        bad[file.info.key] = result
    else:
        yield result


# --------------------------------------------------------------------------- merging


@dataclass(frozen=True)
class MergeSettings:
    reapply: bool = False
    window_rows: int = DEFAULT_WINDOW_ROWS
    spill_rows: int = DEFAULT_SPILL_ROWS


@dataclass
class _Batch:
    """A batch being read: its typed changes as runs, its rejects, what the files say about
    loads, and each file's rows and commit range (for the ledger)."""

    runs: ChangeRuns
    rejects: list[pa.Table] = field(default_factory=list)
    changes: int = 0
    batch_max: datetime | None = None
    load_ranges: list[tuple[int, int]] = field(default_factory=list)
    cdc_names: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # files with rows (their rejects replaced)
    stats: dict[str, tuple[int, tuple[datetime | None, datetime | None]]] = field(
        default_factory=dict
    )
    drift: dict[str, list[str]] = field(default_factory=dict)
    earliest_rank: datetime | None = None  # the earliest position of a change kept

    def add(
        self,
        file: ReadFile,
        contract: TableContract,
        dms: DmsSettings,
        history: LoadHistory,
        horizon: datetime | None,
    ) -> None:
        raw = file.raw
        self.stats[file.key.key] = (raw.num_rows, commit_range(raw[COMMIT_TS]))
        self.drift.update(extra_columns_by_file(raw))
        if file.key.kind is FileKind.FULL_LOAD:
            found = transfer_range(raw[COMMIT_TS]) if raw.num_rows else None
            if found is not None:
                self.load_ranges.append(found)
        else:
            stamp = cdc_name_time_us(file.key)
            if stamp is not None:
                self.cdc_names.append(stamp)
        if raw.num_rows == 0:
            return
        self.keys.append(file.key.key)
        self.changes += raw.num_rows
        newest = pc.max(raw[COMMIT_TS]).as_py()
        if newest is not None:
            self.batch_max = max(newest, self.batch_max) if self.batch_max else newest
        raw, too_old, earliest = _split_at_horizon(raw, file.key, history, horizon)
        if too_old is not None:
            self.rejects.append(too_old)
        if earliest is not None:
            self.earliest_rank = min(earliest, self.earliest_rank or earliest)
        typed = cast_changes(raw, contract)
        self.runs.add(prepare_changes(typed.typed, contract, dms))
        self.rejects.append(typed.rejects)


def _split_at_horizon(raw: pa.Table, key: DmsObjectKey, history: LoadHistory, horizon):
    """Changes positioned before the tombstone horizon go to the rejects: the tombstones
    they would be ordered against are purged, so applying them could bring a key back.
    Returns the kept changes, the rejected ones and the earliest position kept."""
    orders = pa.array([key.order_text] * raw.num_rows, pa.string())
    rank = history.order_ts(raw[COMMIT_TS].combine_chunks(), orders)
    if horizon is None:
        return raw, None, pc.min(rank).as_py()
    before = history.positioned_before(raw[COMMIT_TS].combine_chunks(), orders, horizon)
    if not pc.any(before).as_py():
        return raw, None, pc.min(rank).as_py()
    old = raw.filter(before)
    old = old.append_column(REASON, pa.array([too_old_reason(horizon)] * old.num_rows, pa.string()))
    return raw.filter(pc.invert(before)), old, pc.min(rank.filter(pc.invert(before))).as_py()


def merge_read_files(
    catalog: Catalog,
    contract: TableContract,
    dms: DmsSettings,
    files: Iterable[ReadFile],
    ingested_at: datetime,
    settings: MergeSettings | None = None,
    reread: Callable[[list[tuple[int, int]]], Iterable[ReadFile]] | None = None,
    loads_ready: Callable[[Sequence[str]], bool] = lambda read_keys: True,
) -> tuple[MergeResult, _Batch]:
    """Merge the files' changes into ``silver.<table>`` with the arrow engine, in one commit.
    ``files`` are consumed one at a time (a file's raw rows are dropped once typed), so a
    batch of any size is held as spilled runs, not in memory.

    ``reread``: when a load turns out to start earlier than known (an earlier file of it
    arrived), the CDC files applied earlier with commits in [new start, old start) are
    compared again; it returns them (the ledger knows them). ``loads_ready``, asked once the
    files are read: may a load be declared complete (and reconciled)? Only when no LOAD file
    is quarantined and every LOAD file in bronze has been applied."""
    settings = settings or MergeSettings()
    table = load_or_create_silver_table(catalog, contract, dms)
    before = _history(table, dms)
    horizon = tombstone_horizon(table)
    with ChangeRuns(settings.spill_rows) as runs:
        batch = _Batch(runs)
        for file in files:
            batch.add(file, contract, dms, before, horizon)
        windows = before.advanced(batch.load_ranges, batch.cdc_names).lowered_windows(before)
        if windows and reread is not None:
            for file in reread(windows):
                if file.key.key not in batch.stats:
                    batch.add(file, contract, dms, before, horizon)

        ready = loads_ready(list(batch.stats))
        applied_history: list[LoadHistory] = []

        def merge_once():
            current = load_or_create_silver_table(catalog, contract, dms)
            check_horizon(current, horizon, lambda: batch.earliest_rank)
            known = _history(current, dms)
            history = known.advanced(batch.load_ranges, batch.cdc_names, ready)
            applied_history[:] = [history]  # what the committed attempt applied
            options = MergeOptions(
                ingested_at=ingested_at,
                history=history,
                reapply=settings.reapply,
                sweep=history.completed_now(known),
                window_rows=settings.window_rows,
            )
            return merge_runs(
                current,
                runs,
                contract,
                dms,
                options,
                snapshot_properties(current, batch.batch_max),
                {GENERATIONS_PROPERTY: history.to_property()},
            )

        write, attempts = with_commit_retries(merge_once)
        if contract.history:
            (history,) = applied_history
            merge_history(
                catalog,
                contract,
                dms,
                runs,
                history,
                ingested_at,
                window_rows=settings.window_rows,
            )
    rejects = (
        pa.concat_tables(batch.rejects, promote_options="permissive") if batch.rejects else None
    )
    if rejects is not None:
        replace_rejects(catalog, contract, batch.keys, rejects)
    result = MergeResult.of(
        write,
        changes=batch.changes,
        rejected=rejects.num_rows if rejects is not None else 0,
        max_commit_ts=batch.batch_max,
        attempts=attempts,
    )
    return result, batch


def merge_changes(
    catalog: Catalog,
    contract: TableContract,
    dms: DmsSettings,
    raw: pa.Table,
    ingested_at: datetime,
    reapply: bool = False,
) -> MergeResult:
    """Merge a bronze batch (DMS reader output, any number of files) into ``silver.<table>``;
    safe to repeat. The batch is all that is known of bronze: no ledger, no listing."""
    files = [
        ReadFile(parse_object_key(key, dms), raw.filter(pc.equal(raw[SOURCE_FILE], key)))
        for key in pc.unique(raw[SOURCE_FILE]).to_pylist()
    ]
    result, _ = merge_read_files(
        catalog, contract, dms, files, ingested_at, MergeSettings(reapply=reapply)
    )
    return result


def _history(table, dms: DmsSettings) -> LoadHistory:
    return LoadHistory.from_property(dms, table.properties.get(GENERATIONS_PROPERTY))


# --------------------------------------------------------------------------- a run


@dataclass(frozen=True)
class RunSettings:
    reapply: bool = False
    ledger_retention_days: int = DEFAULT_LEDGER_RETENTION_DAYS
    merge: MergeSettings = field(default_factory=MergeSettings)


@dataclass(frozen=True)
class EngineRun:
    """What an engine made of a run's files."""

    result: MergeResult
    applied: list[LedgerEntry]  # the files that read (their changes merged, or all lost)
    bad: dict[str, str]  # key -> structural error: to quarantine
    drift: dict[str, list[str]] = field(default_factory=dict)  # key -> columns not contracted


class Engine(Protocol):
    def __call__(
        self,
        catalog: Catalog,
        contract: TableContract,
        dms: DmsSettings,
        files: list[BronzeFile],
        ingested_at: datetime,
        settings: MergeSettings,
        reread: Callable[[list[tuple[int, int]]], list[BronzeFile]],
        loads: LoadReadiness,
    ) -> EngineRun: ...


@dataclass(frozen=True)
class LoadReadiness:
    """Whether a load may be declared complete: every LOAD file in bronze applied (the
    ledger's, or read fine in this run) and none quarantined."""

    in_bronze: tuple[ObjectInfo, ...]
    applied: dict[str, tuple[int, str]]  # key -> (size, ETag) the ledger holds
    quarantined: frozenset[str]  # LOAD keys quarantined before this run

    def ready(self, read_now: Sequence[BronzeFile], bad_now: Iterable[str]) -> bool:
        versions = dict(self.applied)
        versions.update({file.info.key: (file.info.size, file.info.etag) for file in read_now})
        bad = (self.quarantined - {file.info.key for file in read_now}) | set(bad_now)
        return all(
            obj.key not in bad and versions.get(obj.key) == (obj.size, obj.etag)
            for obj in self.in_bronze
        )


def arrow_engine(store: LakeStore) -> Engine:
    """The arrow engine: this process reads the files (dms/reader.py) and merges them."""

    def run(catalog, contract, dms, files, ingested_at, settings, reread, loads) -> EngineRun:
        bad: dict[str, str] = {}
        by_key = {file.info.key: file for file in files}

        def read_again(windows: list[tuple[int, int]]) -> Iterator[ReadFile]:
            extra = reread(windows)
            by_key.update({file.info.key: file for file in extra})
            return read_files(store, contract, dms, extra, bad)

        def ready(read_keys: Sequence[str]) -> bool:
            return loads.ready([by_key[key] for key in read_keys if key in by_key], bad)

        result, batch = merge_read_files(
            catalog,
            contract,
            dms,
            read_files(store, contract, dms, files, bad),
            ingested_at,
            settings,
            read_again,
            ready,
        )
        applied = [
            entry_for(by_key[key], rows, commit, ingested_at)
            for key, (rows, commit) in batch.stats.items()
            if key in by_key
        ]
        return EngineRun(result, applied, bad, batch.drift)

    return run


def apply_days(
    catalog: Catalog,
    store: LakeStore,
    contract: TableContract,
    dms: DmsSettings,
    days: Sequence[date],
    ingested_at: datetime,
    settings: RunSettings = RunSettings(),
    engine: Engine | None = None,
) -> MergeResult:
    """A silver run for ``days`` (one commit at most): see the module docstring."""
    listed = list_partition_files(store, dms, contract, days)
    shards = {shard_of(file) for file in listed} | {LOAD_SHARD}
    ledger = read_ledger(catalog, contract, shards)
    quarantine = read_quarantine(catalog, contract)
    selection = select_files(listed, ledger, quarantine, settings.reapply)
    if not selection.apply:
        identifier = table_identifier(contract)
        table = catalog.load_table(identifier) if catalog.table_exists(identifier) else None
        snapshot = table.metadata.current_snapshot_id if table is not None else None
        return replace(MergeResult.empty(snapshot), files=selection.counts)
    loads = LoadReadiness(
        in_bronze=tuple(list_load_objects(store, dms, contract)),
        applied={k: (e.size, e.etag) for k, e in ledger.items() if e.shard == LOAD_SHARD},
        quarantined=frozenset(
            key for key, bad in quarantine.items() if bad.kind == FileKind.FULL_LOAD.value
        ),
    )
    run = (engine or arrow_engine(store))(
        catalog,
        contract,
        dms,
        selection.apply,
        ingested_at,
        replace(settings.merge, reapply=settings.reapply),
        lambda windows: _applied_cdc_files(store, catalog, contract, dms, windows),
        loads,
    )
    by_key = {file.info.key: file for file in selection.apply}
    update_quarantine(
        catalog,
        contract,
        quarantine,
        [quarantined(by_key[key], error, ingested_at) for key, error in run.bad.items()],
        [entry.key for entry in run.applied] + _removed(quarantine, listed, loads, days, dms),
    )
    record_applied(catalog, contract, run.applied, settings.ledger_retention_days)
    # A file that did not read was not applied: it counts as quarantined, not as new.
    bad_new = sum(1 for key in run.bad if key not in ledger and key not in quarantine)
    counts = replace(
        selection.counts,
        new=selection.counts.new - bad_new,
        changed=selection.counts.changed - (len(run.bad) - bad_new),
        quarantined=selection.counts.quarantined + len(run.bad),
    )
    return replace(run.result, files=counts, quarantined=run.bad, schema_drift=run.drift)


def _removed(
    quarantine: dict[str, QuarantinedFile],
    listed: Sequence[BronzeFile],
    loads: LoadReadiness,
    days: Sequence[date],
    dms: DmsSettings,
) -> list[str]:
    """Quarantined files of this run's days that bronze no longer holds: deleting a bad file
    releases it."""
    present = {file.info.key for file in listed} | {obj.key for obj in loads.in_bronze}
    removed = []
    for key in quarantine:
        if key in present:
            continue
        parsed = parse_object_key(key, dms)
        if parsed.kind is FileKind.FULL_LOAD or parsed.date in days:
            removed.append(key)
    return removed


def _applied_cdc_files(
    store: LakeStore,
    catalog: Catalog,
    contract: TableContract,
    dms: DmsSettings,
    windows: list[tuple[int, int]],
) -> list[BronzeFile]:
    """The applied CDC files with commits inside ``windows``, as bronze holds them now (a file
    bronze no longer holds cannot be compared again)."""
    wanted = []
    for entry in read_ledger(catalog, contract).values():
        if entry.kind != FileKind.CDC.value or entry.min_commit_ts is None:
            continue
        low, high = _micros(entry.min_commit_ts), _micros(entry.max_commit_ts)
        if any(low < end and high >= start for start, end in windows):
            wanted.append(entry.key)
    return [
        BronzeFile(info=info, key=parse_object_key(info.key, dms))
        for key in wanted
        for info in store.list_objects(key)
        if info.key == key
    ]


def _micros(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond
