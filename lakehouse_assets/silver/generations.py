"""Full loads and reloads: load generations, where each ranks, and the reload barrier (pure).

DMS starts capturing a table's changes when its full load begins and applies them after
the load, while a full-load row's timestamp is the time DMS *transferred* it, not the time
its value was read (a PostgreSQL source reads the table in one snapshot when the load
starts). So a load's rows rank as of the load's **start**, not their own timestamps: before
every CDC change committed at or after the start, after every change before it. A reload
(new LOAD files, often under the same names) is a new generation ranked the same way.

A generation's start is its earliest transfer time less ``load_start_margin_seconds``
(DMS writes no snapshot time; the margin covers the moments between the snapshot and the
first row's transfer). It is kept in the table's properties, so every later run finds it,
and it is lowered when an earlier file of the same load turns up (a load crossing midnight
spans partitions, and runs may apply them in any order). LOAD files belong to one load when
their transfer times lie within ``load_gap_minutes`` of each other.

A stored load row's rank is looked up from its transfer time (``_commit_ts``) each time
it is compared, so lowering a start re-ranks every row of that load at once.

Once a generation is **complete** (decided from the data: a CDC file named after the load's
last transfer has been applied, and no LOAD file is quarantined or, where the listing is
known, unapplied), its start is the table's **barrier**: every change positioned before it
is stale whenever it arrives, and the live rows positioned before it are tombstoned (the
reload's sweep: keys deleted at the source while nothing was captured, or a truncate). The
sweep's tombstones rank lowest within their generation, so a late file of the same load
still restores its keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.contracts import DmsSettings
from lakehouse_assets.dms import DmsObjectKey

# Table property of silver.<table> holding the generations (JSON).
GENERATIONS_PROPERTY = "lakehouse.load-generations"
# File-order text of a sweep's tombstones: sorts before every file's ("0|..." LOAD, "1|..."
# CDC), so they rank first within their generation.
SWEEP_FILE_ORDER = ""


@dataclass(frozen=True)
class Generation:
    """One full load: the range of its rows' transfer times (UTC, microseconds)."""

    first_us: int
    last_us: int
    complete: bool = False


@dataclass(frozen=True)
class LoadHistory:
    generations: tuple[Generation, ...] = ()  # sorted by first_us
    margin_us: int = 60 * 1_000_000
    gap_us: int = 3600 * 1_000_000
    # The newest CDC file name (its time) applied so far: a load is complete once a CDC file
    # named after its last transfer has landed (DMS writes CDC after the load).
    newest_cdc_us: int | None = None

    @classmethod
    def for_dms(
        cls,
        dms: DmsSettings,
        generations: tuple[Generation, ...] = (),
        newest_cdc_us: int | None = None,
    ) -> LoadHistory:
        return cls(
            generations=tuple(sorted(generations, key=lambda g: g.first_us)),
            margin_us=dms.load_start_margin_seconds * 1_000_000,
            gap_us=dms.load_gap_minutes * 60 * 1_000_000,
            newest_cdc_us=newest_cdc_us,
        )

    # ------------------------------------------------------------------ persistence

    def to_property(self) -> str:
        return json.dumps(
            {
                "generations": [[g.first_us, g.last_us, g.complete] for g in self.generations],
                "newest_cdc_us": self.newest_cdc_us,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_property(cls, dms: DmsSettings, text: str | None) -> LoadHistory:
        document = json.loads(text) if text else {}
        generations = tuple(
            Generation(int(a), int(b), bool(c)) for a, b, c in document.get("generations", [])
        )
        return cls.for_dms(dms, generations, document.get("newest_cdc_us"))

    # ------------------------------------------------------------------ starts and barrier

    def start_us(self, generation: Generation) -> int:
        return generation.first_us - self.margin_us

    @property
    def newest(self) -> Generation | None:
        return self.generations[-1] if self.generations else None

    @property
    def barrier_us(self) -> int | None:
        """The start of the newest complete generation: changes before it are stale."""
        complete = [g for g in self.generations if g.complete]
        return self.start_us(complete[-1]) if complete else None

    def starts(self) -> dict[Generation, int]:
        return {g: self.start_us(g) for g in self.generations}

    # ------------------------------------------------------------------ growing

    def with_load_file(self, first_us: int, last_us: int) -> LoadHistory:
        """The history once a LOAD file whose rows were transferred in [first, last] is known.

        It joins the load it overlaps or lies within ``gap`` of, unless that load is
        complete (then it is a file of that load seen again when it lies inside it, else a
        new generation). Overlapping incomplete loads merge, so the result does not depend
        on the order files are added in."""
        generations = list(self.generations)
        for generation in generations:
            if generation.complete and generation.first_us <= first_us <= generation.last_us:
                return self
        candidate = Generation(first_us, last_us)
        merged = []
        for generation in generations:
            near = (
                candidate.first_us <= generation.last_us + self.gap_us
                and candidate.last_us >= generation.first_us - self.gap_us
            )
            if near and not generation.complete:
                candidate = Generation(
                    min(candidate.first_us, generation.first_us),
                    max(candidate.last_us, generation.last_us),
                )
            else:
                merged.append(generation)
        merged.append(candidate)
        return replace(self, generations=tuple(sorted(merged, key=lambda g: g.first_us)))

    def advanced(
        self,
        load_ranges: list[tuple[int, int]],
        cdc_name_us: list[int],
        load_files_ready: bool = True,
    ) -> LoadHistory:
        """The history after a batch: its LOAD files' transfer ranges added, its newest CDC
        file name noted, and the newest load completed when that is decided now.
        ``load_files_ready``: no LOAD file is quarantined and, where the listing is known,
        every LOAD file in bronze has been applied (never reconcile against a partial load)."""
        history = self
        for first_us, last_us in sorted(load_ranges):
            history = history.with_load_file(first_us, last_us)
        newest_cdc = max(
            [*cdc_name_us, *([self.newest_cdc_us] if self.newest_cdc_us else [])], default=None
        )
        history = replace(history, newest_cdc_us=newest_cdc)
        newest = history.newest
        if (
            newest is not None
            and not newest.complete
            and load_files_ready
            and newest_cdc is not None
            and newest_cdc > newest.last_us
        ):
            history = history.completed_newest()
        return history

    def completed_now(self, before: LoadHistory) -> Generation | None:
        """The generation this history completed that ``before`` had not: its reload sweep is
        due."""
        newest = self.newest
        if newest is None or not newest.complete:
            return None
        if any(g.complete and g.first_us == newest.first_us for g in before.generations):
            return None
        return newest

    def completed_newest(self) -> LoadHistory:
        newest = self.newest
        if newest is None or newest.complete:
            return self
        return replace(self, generations=(*self.generations[:-1], replace(newest, complete=True)))

    def lowered_windows(self, before: LoadHistory) -> list[tuple[int, int]]:
        """[new start, old start) windows where a load of ``before`` now starts earlier:
        CDC changes committed there were ranked after that load's rows and must be compared
        again."""
        windows = []
        for old in before.generations:
            new = self._generation_of(old.first_us)
            if new is not None and self.start_us(new) < before.start_us(old):
                windows.append((self.start_us(new), before.start_us(old)))
        return windows

    def _generation_of(self, transfer_us: int) -> Generation | None:
        found = None
        for generation in self.generations:
            if generation.first_us <= transfer_us:
                found = generation
        return found

    # ------------------------------------------------------------------ ranking

    def order_ts(self, commit_ts: pa.Array, file_order: pa.Array) -> pa.Array:
        """Each row's rank time: the commit time of a CDC change; the start of its load for a
        LOAD row or a sweep's tombstone (looked up from its transfer time ``_commit_ts``)."""
        micros = pc.cast(commit_ts, pa.timestamp("us", tz="UTC")).cast(pa.int64())
        missing = pc.is_null(micros).to_numpy(zero_copy_only=False)
        times = pc.fill_null(micros, 0).to_numpy(zero_copy_only=False)
        is_cdc = pc.fill_null(pc.starts_with(file_order, "1"), False).to_numpy(zero_copy_only=False)
        load_rank = times - self.margin_us  # a load not known yet: its own transfer time
        if self.generations:
            firsts = np.array([g.first_us for g in self.generations], np.int64)
            starts = np.array([self.start_us(g) for g in self.generations], np.int64)
            index = np.searchsorted(firsts, times, side="right") - 1
            load_rank = np.where(index >= 0, starts[np.maximum(index, 0)], load_rank)
        ranked = np.where(is_cdc, times, load_rank)
        return pa.array(ranked, pa.int64(), mask=missing).cast(pa.timestamp("us", tz="UTC"))

    def positioned_before(
        self, commit_ts: pa.Array, file_order: pa.Array, moment: datetime
    ) -> pa.Array:
        """Per row: is its rank time (``order_ts``) before ``moment``? (No time: false.) The
        tombstone horizon's rule: what a purge removes, and what a merge rejects."""
        rank = self.order_ts(commit_ts, file_order)
        return pc.fill_null(pc.less(rank, pa.scalar(moment, pa.timestamp("us", tz="UTC"))), False)

    def order_ts_sql(self, commit_ts: str, file_order: str) -> str:
        """``order_ts`` as a Spark SQL expression over the two columns' expressions."""
        micros = f"unix_micros({commit_ts})"
        load_rank = f"timestamp_micros({micros} - {self.margin_us})"
        for generation in self.generations:  # later generations take precedence
            load_rank = (
                f"(CASE WHEN {micros} >= {generation.first_us} "
                f"THEN timestamp_micros({self.start_us(generation)}) ELSE {load_rank} END)"
            )
        is_cdc = f"coalesce({file_order} LIKE '1%', false)"
        return f"(CASE WHEN {is_cdc} THEN {commit_ts} ELSE {load_rank} END)"


def cdc_name_time_us(key: DmsObjectKey) -> int | None:
    """A CDC file's name as a time, in microseconds (its ``order`` stamp: YYYYMMDD, HHMMSS,
    then the fraction); None when the name is not a real time."""
    stamp = str(key.order[1])
    try:
        moment = datetime.strptime(stamp[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(moment.timestamp()) * 1_000_000 + int(stamp[14:20].ljust(6, "0"))


def transfer_range(commit_ts: pa.ChunkedArray | pa.Array) -> tuple[int, int] | None:
    """(first, last) transfer time of a LOAD file's rows in microseconds, or None."""
    bounds = pc.min_max(pc.cast(commit_ts, pa.timestamp("us", tz="UTC")).cast(pa.int64()))
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    return None if low is None else (low, high)


def as_datetime(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
