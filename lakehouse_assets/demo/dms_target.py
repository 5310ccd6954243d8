"""The DMS S3 target: the demo tables' change logs written as the files AWS DMS writes.

A full load on the start day, then per CDC day one file per table and flush; a
task restart writes some rows again. The encoding itself is ``dms.writer``'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.contracts import Contracts, TableContract
from lakehouse_assets.demo.clock import LOAD_WINDOW, moment
from lakehouse_assets.demo.simulation import FlushSchedule, Simulation
from lakehouse_assets.demo.summary import TableSummary
from lakehouse_assets.demo.values import timestamps
from lakehouse_assets.demo.volumes import DEMO_TABLES, LOAD_FILE_ROWS, MIN_LOAD_FILE_ROWS
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
        self.gzip_suffix = ".gz" if compress else ""  # the writer gzips .gz keys
        self.rng = rng
        self.tables = {name: TableSummary() for name in DEMO_TABLES}
        self.redelivered: dict[str, Any] = {}
        self._change_number = 1

    def put(self, table: str, key: str, data: bytes, written_us: int) -> None:
        self.store.put(key, data, last_modified=moment(written_us))
        self.tables[table].files += 1
        self.tables[table].bytes += len(data)

    def write_full_load(self, sim: Simulation) -> tuple[int, int]:
        """LOAD files with a hex counter, read one after another in the load window;
        each row's timestamp column is its file's transfer time. Returns the first
        and last transfer time."""
        per_file = max(MIN_LOAD_FILE_ROWS, min(LOAD_FILE_ROWS, round(LOAD_FILE_ROWS * sim.scale)))
        snapshots = {name: log.current(log.live_ids()) for name, log in sim.logs.items()}
        total_files = sum(-(-rows.num_rows // per_file) for rows in snapshots.values())
        lo, hi = (sim.start_us + offset for offset in LOAD_WINDOW)
        step = (hi - lo) // max(total_files, 1)
        transfers = []
        for name, rows in snapshots.items():
            contract = self.contracts.table(name)
            for counter, start in enumerate(range(0, rows.num_rows, per_file), start=1):
                chunk = rows.slice(start, per_file)
                transfer = lo + len(transfers) * step + int(self.rng.integers(0, step // 2 + 1))
                transfers.append(transfer)
                key = full_load_key(self.dms, contract.schema, name, counter) + self.gzip_suffix
                data = encode_dms_file(
                    mixed_booleans(chunk, contract, self.rng),
                    key,
                    contract,
                    self.dms,
                    commit_ts=timestamps(np.full(chunk.num_rows, transfer)),
                )
                self.put(name, key, data, transfer)
                self.tables[name].load_rows += chunk.num_rows
        return transfers[0], transfers[-1]

    def write_cdc_day(self, sim: Simulation, day: int) -> None:
        """Each table's changes of the day, cut at the flush times. Day 2's first files
        also hold the start day's overlap commits."""
        schedule = sim.schedules[day]
        days = (1, day) if day == 2 else (day,)
        for name, log in sim.logs.items():
            changes = log.changes(days)
            if changes is None:
                continue
            commit = changes["_commit_us"].to_numpy()
            contract = self.contracts.table(name)
            # The day's rows as the files show them, with their metadata: files are
            # ranges of it, and a restart repeats one range in the next file.
            rows = mixed_booleans(changes.select(contract.column_names), contract, self.rng)
            rows = rows.append_column("_op", changes["_op"]).append_column(
                "_commit_ts", timestamps(commit)
            )
            if self.dms.change_seq_column:
                seqs = change_seq_values(rows["_commit_ts"], self._change_number)
                rows = rows.append_column("_change_seq", seqs)
            self._change_number += len(commit)
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
                    self.rng.integers(20_000, 1_500_000)
                )
                key = cdc_key(self.dms, contract.schema, name, moment(flushed)) + self.gzip_suffix
                part = pa.concat_tables([rows.slice(a, b - a) for a, b in ranges])
                data = encode_dms_file(
                    part,
                    key,
                    contract,
                    self.dms,
                    ops=part["_op"],
                    commit_ts=part["_commit_ts"],
                    change_seqs=part["_change_seq"] if self.dms.change_seq_column else None,
                )
                self.put(name, key, data, flushed)
                self.tables[name].cdc_rows += part.num_rows
                if window == 1 and replay:
                    self.redelivered[name] = {"file": key, "rows": replay[1] - replay[0]}

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
