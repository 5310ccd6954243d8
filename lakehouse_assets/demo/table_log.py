"""One demo table as its change log: every insert, update and delete with its commit time.

The database state is, per id, a pointer to the id's live version in that log.
"""

from __future__ import annotations

from collections.abc import Container

import numpy as np
import pyarrow as pa

from lakehouse_assets.contracts import TableContract
from lakehouse_assets.demo.values import Columns, int_values, ints
from lakehouse_assets.demo.volumes import KEY_ONLY_DELETES

# The period tag of rows that only stand for a state (the history before DMS starts, a
# restored or compacted table): no CDC file shows them.
STATE_PERIOD = 0


class TableLog:
    """One source table: its change log, and per id where the live version sits.

    The demo tables all have a bigint ``id`` key from a sequence, so ids index
    plain arrays. A deleted id may come back (a re-insert with the same key).
    Every change is tagged with the period that made it (a day of the batch demo,
    an interval of the stream): the target writes a period's changes into files.
    """

    def __init__(self, contract: TableContract):
        if contract.primary_key != ("id",):
            raise ValueError(f"demo table {contract.name!r} must have primary key [id]")
        self.contract = contract
        self.key_only_deletes = contract.name in KEY_ONLY_DELETES
        # Key-only deletes put NULLs into NOT NULL columns, so the log allows them.
        self.schema = pa.schema([f.with_nullable(True) for f in contract.arrow_schema])
        self.next_id = 1
        self._position = np.zeros(0, np.int64)  # id - 1 -> log row of the live version, or -1
        self._touched = np.zeros(0, np.int64)  # id - 1 -> last period a change hit the id
        self._chunks: list[tuple[int, pa.Table]] = []  # (period, changes)
        self._rows = 0
        self._combined: pa.Table | None = None

    def allocate(self, n: int) -> np.ndarray:
        ids = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        self.next_id += n
        self._position = np.concatenate([self._position, np.full(n, -1, np.int64)])
        self._touched = np.concatenate([self._touched, np.full(n, -1, np.int64)])
        return ids

    def live_ids(self) -> np.ndarray:
        return np.flatnonzero(self._position >= 0) + 1

    def untouched(self, ids: np.ndarray, period: int) -> np.ndarray:
        """The ids no change has hit yet in ``period``: one change per key and period
        keeps the random activity's commit times free of ordering constraints."""
        return ids[self._touched[ids - 1] != period]

    def last_changed(self, ids: np.ndarray) -> np.ndarray:
        """The last period a change hit each id (-1: never, ``STATE_PERIOD``: only the
        state it started from)."""
        return self._touched[ids - 1]

    def current(self, ids: np.ndarray) -> pa.Table:
        positions = self._position[ids - 1]
        if (positions < 0).any():
            raise KeyError(
                f"{self.contract.name}: ids without a live row: {ids[positions < 0][:5]}"
            )
        return self._log().take(positions).select(self.schema.names)

    def as_of(self, at_us: int) -> pa.Table:
        """The live rows, by id, as they stood just before ``at_us``: what a snapshot read
        then sees. Needs the whole log (not after ``compact``)."""
        log = self._log()
        commit = log["_commit_us"].to_numpy()
        before = np.flatnonzero(commit < at_us)
        # Commit order; ties keep log order, as ``changes`` does.
        before = before[np.argsort(commit[before], kind="stable")]
        newest_first = before[::-1]
        _, first = np.unique(int_values(log, "id")[newest_first], return_index=True)
        newest = newest_first[first]  # per id (ascending) its last version
        deleted = log["_op"].to_numpy(zero_copy_only=False)[newest] == "D"
        return log.take(newest[~deleted]).select(self.schema.names)

    def write(self, op: str, rows: Columns, commit_us: np.ndarray | int, period: int) -> None:
        """Log inserts (``I``) or updates (``U``) of whole rows."""
        self._append(op, self._typed(rows), commit_us, period)

    def delete(self, ids: np.ndarray, commit_us: np.ndarray | int, period: int) -> None:
        if self.key_only_deletes:
            image = {f.name: pa.nulls(len(ids), f.type) for f in self.schema}
            image["id"] = ints(ids)
            rows = self._typed(image)
        else:
            rows = self.current(ids)
        self._append("D", rows, commit_us, period)

    def restore(self, rows: pa.Table, next_id: int) -> None:
        """Start from a saved state: the live ``rows`` and the sequence's next id."""
        self.allocate(next_id - self.next_id)
        columns = {name: rows[name] for name in self.schema.names}
        self._append("I", self._typed(columns), 0, STATE_PERIOD)

    def compact(self) -> None:
        """Forget the changes, keep the live versions: once a stream's changes are in files,
        its log stays as big as the table."""
        live = self.live_ids()
        kept = self._log().take(self._position[live - 1])
        self._chunks = [(STATE_PERIOD, kept)]
        self._position[live - 1] = np.arange(len(live))
        self._rows = len(live)
        self._combined = kept

    def changes(self, periods: Container[int]) -> pa.Table | None:
        """The changes logged in ``periods``, in commit order (ties keep log order)."""
        chunks = [chunk for period, chunk in self._chunks if period in periods]
        if not chunks:
            return None
        table = pa.concat_tables(chunks)
        order = np.argsort(table["_commit_us"].to_numpy(), kind="stable")
        return table.take(order)

    def _log(self) -> pa.Table:
        """Every logged row, with ``_op`` and ``_commit_us``, in log order."""
        if self._combined is None:
            self._combined = pa.concat_tables([chunk for _, chunk in self._chunks]).combine_chunks()
        return self._combined

    def _typed(self, rows: Columns) -> pa.Table:
        arrays = []
        for f in self.schema:
            if f.name not in rows:
                raise ValueError(
                    f"the demo simulator has no values for column {self.contract.name}.{f.name}"
                )
            arrays.append(rows[f.name].cast(f.type))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _append(self, op: str, rows: pa.Table, commit_us: np.ndarray | int, period: int) -> None:
        n = rows.num_rows
        commit = np.broadcast_to(np.asarray(commit_us, np.int64), (n,))
        rows = rows.append_column("_op", pa.repeat(op, n)).append_column(
            "_commit_us", pa.array(commit, pa.int64())
        )
        index = int_values(rows, "id") - 1
        self._position[index] = -1 if op == "D" else self._rows + np.arange(n)
        self._touched[index] = period
        self._chunks.append((period, rows))
        self._rows += n
        self._combined = None
