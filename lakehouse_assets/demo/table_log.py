"""One demo table as its change log: every insert, update and delete with its commit time.

The database state is, per id, a pointer to the id's live version in that log.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from lakehouse_assets.contracts import TableContract
from lakehouse_assets.demo.values import Columns, int_values, ints
from lakehouse_assets.demo.volumes import KEY_ONLY_DELETES


class TableLog:
    """One source table: its change log, and per id where the live version sits.

    The demo tables all have a bigint ``id`` key from a sequence, so ids index
    plain arrays. A deleted id may come back (a re-insert with the same key).
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
        self._touched = np.zeros(0, np.int64)  # id - 1 -> last day a change hit the id
        self._chunks: list[tuple[int, pa.Table]] = []  # (day, changes)
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

    def untouched(self, ids: np.ndarray, day: int) -> np.ndarray:
        """The ids no change has hit yet on ``day``: one change per key and day keeps
        the random activity's commit times free of ordering constraints."""
        return ids[self._touched[ids - 1] != day]

    def current(self, ids: np.ndarray) -> pa.Table:
        positions = self._position[ids - 1]
        if (positions < 0).any():
            raise KeyError(
                f"{self.contract.name}: ids without a live row: {ids[positions < 0][:5]}"
            )
        if self._combined is None:
            self._combined = pa.concat_tables([chunk for _, chunk in self._chunks]).combine_chunks()
        return self._combined.take(positions).select(self.schema.names)

    def write(self, op: str, rows: Columns, commit_us: np.ndarray | int, day: int) -> None:
        """Log inserts (``I``) or updates (``U``) of whole rows."""
        self._append(op, self._typed(rows), commit_us, day)

    def delete(self, ids: np.ndarray, commit_us: np.ndarray | int, day: int) -> None:
        if self.key_only_deletes:
            image = {f.name: pa.nulls(len(ids), f.type) for f in self.schema}
            image["id"] = ints(ids)
            rows = self._typed(image)
        else:
            rows = self.current(ids)
        self._append("D", rows, commit_us, day)

    def changes(self, days: Sequence[int]) -> pa.Table | None:
        """The changes logged on ``days``, in commit order (ties keep log order)."""
        chunks = [chunk for day, chunk in self._chunks if day in days]
        if not chunks:
            return None
        table = pa.concat_tables(chunks)
        order = np.argsort(table["_commit_us"].to_numpy(), kind="stable")
        return table.take(order)

    def _typed(self, rows: Columns) -> pa.Table:
        arrays = []
        for f in self.schema:
            if f.name not in rows:
                raise ValueError(
                    f"the demo simulator has no values for column {self.contract.name}.{f.name}"
                )
            arrays.append(rows[f.name].cast(f.type))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _append(self, op: str, rows: pa.Table, commit_us: np.ndarray | int, day: int) -> None:
        n = rows.num_rows
        commit = np.broadcast_to(np.asarray(commit_us, np.int64), (n,))
        rows = rows.append_column("_op", pa.repeat(op, n)).append_column(
            "_commit_us", pa.array(commit, pa.int64())
        )
        index = int_values(rows, "id") - 1
        self._position[index] = -1 if op == "D" else self._rows + np.arange(n)
        self._touched[index] = day
        self._chunks.append((day, rows))
        self._rows += n
        self._combined = None
