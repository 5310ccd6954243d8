"""The DMS S3 target: the demo tables' change logs written as the files AWS DMS writes.

A full load on the start day, then per CDC day one file per table and flush; a
task restart writes some rows again. The stream writes a file per table and
interval through the same methods. The encoding itself is ``dms.writer``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.contracts import Contracts, TableContract
from lakehouse_assets.demo.clock import FLUSH_WRITE_DELAY, LOAD_WINDOW, moment
from lakehouse_assets.demo.simulation import FlushSchedule, Simulation
from lakehouse_assets.demo.summary import TableSummary
from lakehouse_assets.demo.values import timestamps
from lakehouse_assets.demo.volumes import DEMO_TABLES, load_file_rows
from lakehouse_assets.dms.writer import cdc_key, change_seq_values, encode_dms_file, full_load_key
from lakehouse_assets.lake.store import LakeStore


class DmsTarget:
    """Writes the S3 target's files: full load on day 1, CDC per table and flush."""

    def __init__(
        self, store: LakeStore, contracts: Contracts, compress: bool, rng: np.random.Generator
    ):
        self.store = store
        self.dms = contracts.dms
        self.contracts = contracts
        self.compress = compress
        self.gzip_suffix = ".gz" if compress else ""  # the writer gzips .gz keys
        self.rng = rng
        self.tables = {name: TableSummary() for name in DEMO_TABLES}
        self.redelivered: dict[str, Any] = {}
        # Per table, the commit windows DMS did not capture (the task was stopped).
        self.uncaptured: dict[str, list[tuple[int, int]]] = {}
        self._change_number = 1
        self._flushed_through = 0  # the periods up to this one are in CDC files
        self._sizes: dict[str, int] = {}  # bytes of every key written: a reload rewrites some
        self.load_files = dict.fromkeys(DEMO_TABLES, 0)  # LOAD counters run from 1 to this

    def put(self, table: str, key: str, data: bytes, written_us: int) -> None:
        self.store.put(key, data, last_modified=moment(written_us))
        previous = self._sizes.get(key)
        self.tables[table].files += previous is None
        self.tables[table].bytes += len(data) - (previous or 0)
        self._sizes[key] = len(data)

    def write_full_load(self, sim: Simulation) -> tuple[int, int]:
        """LOAD files with a hex counter, read one after another in the load window;
        each row's timestamp column is its file's transfer time. Returns the first
        and last transfer time."""
        per_file = load_file_rows(sim.scale)
        snapshots = {name: log.current(log.live_ids()) for name, log in sim.logs.items()}
        total_files = sum(-(-rows.num_rows // per_file) for rows in snapshots.values())
        lo, hi = (sim.start_us + offset for offset in LOAD_WINDOW)
        step = (hi - lo) // max(total_files, 1)
        transfers = []
        for name, rows in snapshots.items():
            for counter, start in enumerate(range(0, rows.num_rows, per_file), start=1):
                transfer = lo + len(transfers) * step + int(self.rng.integers(0, step // 2 + 1))
                transfers.append(transfer)
                self.write_load_file(name, counter, rows.slice(start, per_file), transfer)
        return transfers[0], transfers[-1]

    def write_load_file(self, name: str, counter: int, rows: pa.Table, transfer_us: int) -> str:
        """One LOAD file of ``name``: ``rows`` transferred at ``transfer_us`` (every row's
        timestamp column). Returns its key."""
        contract = self.contracts.table(name)
        key = (
            full_load_key(self.dms, contract.schema, contract.dms_name, counter) + self.gzip_suffix
        )
        data = encode_dms_file(
            mixed_booleans(rows, contract, self.rng),
            key,
            contract,
            self.dms,
            commit_ts=timestamps(np.full(rows.num_rows, transfer_us)),
        )
        self.put(name, key, data, transfer_us)
        self.tables[name].load_rows += rows.num_rows
        self.load_files[name] = max(self.load_files[name], counter)
        return key

    def rewrite_full_load(self, name: str, rows: pa.Table, transfers_us: Sequence[int]) -> None:
        """A reload: ``rows`` spread over the table's LOAD files, rewritten under the same
        names, file ``i`` transferred at ``transfers_us[i]``."""
        per_file = -(-rows.num_rows // len(transfers_us))
        self.tables[name].load_rows = 0
        for counter, transfer in enumerate(transfers_us, start=1):
            self.write_load_file(
                name, counter, rows.slice((counter - 1) * per_file, per_file), transfer
            )

    def cdc_rows(self, name: str, changes: pa.Table) -> pa.Table:
        """Logged changes as the CDC files show them: the contract's columns (booleans in
        both spellings), ``_op``, ``_commit_ts`` and, when configured, ``_change_seq``."""
        contract = self.contracts.table(name)
        rows = mixed_booleans(changes.select(contract.column_names), contract, self.rng)
        rows = rows.append_column("_op", changes["_op"]).append_column(
            "_commit_ts", timestamps(changes["_commit_us"].to_numpy())
        )
        if self.dms.change_seq_column:
            seqs = change_seq_values(rows["_commit_ts"], self._change_number)
            rows = rows.append_column("_change_seq", seqs)
        self._change_number += rows.num_rows
        return rows

    def write_cdc_file(self, name: str, rows: pa.Table, flushed_us: int) -> str:
        """One CDC file of ``name`` (rows from ``cdc_rows``) written at ``flushed_us``."""
        contract = self.contracts.table(name)
        key = (
            cdc_key(self.dms, contract.schema, contract.dms_name, moment(flushed_us))
            + self.gzip_suffix
        )
        data = encode_dms_file(
            rows,
            key,
            contract,
            self.dms,
            ops=rows["_op"],
            commit_ts=rows["_commit_ts"],
            change_seqs=rows["_change_seq"] if self.dms.change_seq_column else None,
        )
        self.put(name, key, data, flushed_us)
        self.tables[name].cdc_rows += rows.num_rows
        return key

    def write_cdc_day(self, sim: Simulation, day: int) -> None:
        """Each table's changes of the day, cut at the flush times. The first files also
        hold the changes of earlier periods no file holds yet (the start day's)."""
        schedule = sim.schedules[day]
        periods = range(self._flushed_through + 1, day + 1)
        self._flushed_through = day
        for name, log in sim.logs.items():
            changes = log.changes(periods)
            if changes is None:
                continue
            changes = self.captured(name, changes)
            commit = changes["_commit_us"].to_numpy()
            # The day's rows as the files show them, with their metadata: files are
            # ranges of it, and a restart repeats one range in the next file.
            rows = self.cdc_rows(name, changes)
            ends = np.searchsorted(commit, schedule.flushes_us, side="right")
            ends[-1] = len(commit)
            starts = np.concatenate([[0], ends[:-1]])
            files = [[(int(a), int(b))] if b > a else [] for a, b in zip(starts, ends)]
            replay = self.replayed(commit, schedule, int(ends[0]))
            if replay:
                files[1].insert(0, replay)
            for window, ranges in enumerate(files):
                if not ranges:
                    continue
                flushed = int(schedule.flushes_us[window]) + int(
                    self.rng.integers(*FLUSH_WRITE_DELAY)
                )
                part = pa.concat_tables([rows.slice(a, b - a) for a, b in ranges])
                key = self.write_cdc_file(name, part, flushed)
                if window == 1 and replay:
                    self.redelivered[name] = {"file": key, "rows": replay[1] - replay[0]}

    def captured(self, name: str, changes: pa.Table) -> pa.Table:
        """``changes`` without those committed while DMS captured nothing of ``name``."""
        commit = changes["_commit_us"].to_numpy()
        missed = np.zeros(len(commit), bool)
        for lo, hi in self.uncaptured.get(name, ()):
            missed |= (commit >= lo) & (commit < hi)
        return changes.filter(pa.array(~missed)) if missed.any() else changes

    @staticmethod
    def replayed(
        commit_us: np.ndarray, schedule: FlushSchedule, first_file_end: int
    ) -> tuple[int, int] | None:
        """The rows of the first file that a task restart writes again (start, stop)."""
        if schedule.restart_us is None:
            return None
        start = int(np.searchsorted(commit_us, schedule.restart_us, side="right"))
        return (start, first_file_end) if first_file_end > start else None


def mixed_booleans(rows: pa.Table, contract: TableContract, rng: np.random.Generator) -> pa.Table:
    """``rows`` with its boolean columns as text: both spellings occur in DMS output
    (``t``/``f`` and ``true``/``false``); mix them so readers handle each."""
    for column in contract.columns:
        if column.type != "boolean":
            continue
        values = rows[column.name].combine_chunks()
        long_form = pa.array(rng.random(len(values)) < 0.5)
        text = pc.if_else(
            long_form, pc.if_else(values, "true", "false"), pc.if_else(values, "t", "f")
        )
        rows = rows.set_column(rows.schema.get_field_index(column.name), column.name, text)
    return rows
