"""A batch's typed changes as key-sorted runs, in memory or spilled to local disk.

The arrow engine never needs a batch in one piece: it merges it key range by key range
(writer.py). Each file's typed rows become a run sorted by key. Once the batch passes
``spill_rows``, runs go to Arrow IPC files in a temporary folder, in record batches of
``_BATCH_ROWS`` whose first and last keys stay in memory: a key range is then read from
disk batch by batch (only the batches it touches), so a full load of any size is held one
file and one window at a time. Within a batch, the range is cut by binary search (runs are
sorted), without scanning.
"""

from __future__ import annotations

import bisect
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.silver.merge import KEY

DEFAULT_SPILL_ROWS = 2_000_000
_BATCH_ROWS = 65_536  # rows per spilled record batch; also how often keys are sampled


class _SortedKeys:
    """Binary search over an Arrow array sorted ascending, probing single values."""

    def __init__(self, keys: pa.Array):
        self.keys = keys

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> Any:
        return self.keys[index].as_py()


def _cut(rows: pa.Table, low: Any, high: Any) -> pa.Table:
    """The rows of key-sorted ``rows`` with ``low <= key < high`` (None: unbounded)."""
    keys = _SortedKeys(rows[KEY].combine_chunks())
    start = 0 if low is None else bisect.bisect_left(keys, low)
    stop = len(keys) if high is None else bisect.bisect_left(keys, high)
    return rows.slice(start, max(0, stop - start))


def sorted_by_key(rows: pa.Table) -> pa.Table:
    """``rows`` in key order (sorted only when they are not already)."""
    keys = rows[KEY].combine_chunks()
    if len(keys) < 2 or pc.all(pc.less_equal(keys[:-1], keys[1:])).as_py():
        return rows.combine_chunks()
    return rows.sort_by([(KEY, "ascending")]).combine_chunks()


@dataclass(frozen=True)
class _SpilledRun:
    """A run on disk: its record batches' first and last keys, read back on demand."""

    path: Path
    firsts: list[Any]
    lasts: list[Any]
    rows: int

    def cut(self, low: Any, high: Any) -> list[pa.Table]:
        # Batches whose key range meets [low, high): the last key >= low, the first < high.
        start = 0 if low is None else bisect.bisect_left(self.lasts, low)
        stop = len(self.firsts) if high is None else bisect.bisect_left(self.firsts, high)
        if stop <= start:
            return []
        with pa.OSFile(str(self.path)) as source:
            reader = pa.ipc.open_file(source)
            batches = [reader.get_batch(index) for index in range(start, stop)]
        return [_cut(pa.Table.from_batches(batches), low, high)]


class ChangeRuns:
    """Key-sorted runs of typed changes (``KEY`` holds comparable key values)."""

    def __init__(self, spill_rows: int = DEFAULT_SPILL_ROWS):
        self.spill_rows = spill_rows
        self._memory: list[pa.Table] = []
        self._spilled: list[_SpilledRun] = []
        self._folder: tempfile.TemporaryDirectory | None = None
        self._samples: list[Any] = []
        self.schema: pa.Schema | None = None
        self.rows = 0
        self._low: Any = None
        self._high: Any = None

    def add(self, changes: pa.Table) -> None:
        if changes.num_rows == 0:
            return
        run = sorted_by_key(changes)
        keys = run[KEY]
        first, last = keys[0].as_py(), keys[-1].as_py()
        self._low = first if self._low is None else min(self._low, first)
        self._high = last if self._high is None else max(self._high, last)
        self._samples += [keys[index].as_py() for index in range(0, len(keys), _BATCH_ROWS)]
        self.schema = self.schema or run.schema
        self.rows += run.num_rows
        if self.rows > self.spill_rows:
            self._spill(run)
            if self._memory:  # everything goes to disk once the batch is large
                for held in self._memory:
                    self._spill(held)
                self._memory = []
        else:
            self._memory.append(run)

    def _spill(self, run: pa.Table) -> None:
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="lakehouse-changes-")
        path = Path(self._folder.name, f"run-{len(self._spilled):06d}.arrow")
        batches = run.to_batches(max_chunksize=_BATCH_ROWS)
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, run.schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
        self._spilled.append(
            _SpilledRun(
                path,
                [batch.column(KEY)[0].as_py() for batch in batches],
                [batch.column(KEY)[-1].as_py() for batch in batches],
                run.num_rows,
            )
        )

    def close(self) -> None:
        self._memory, self._spilled = [], []
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def __enter__(self) -> ChangeRuns:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def bounds(self) -> tuple[Any, Any] | None:
        """The smallest and largest key of the batch."""
        return None if self._low is None else (self._low, self._high)

    def slice(self, low: Any = None, high: Any = None) -> pa.Table:
        """Every run's rows with ``low <= key < high`` (None: unbounded), as one table."""
        parts = [_cut(run, low, high) for run in self._memory]
        for run in self._spilled:
            parts += run.cut(low, high)
        parts = [part for part in parts if part.num_rows]
        if not parts:
            return self.schema.empty_table() if self.schema else pa.table({})
        return pa.concat_tables(parts, promote_options="permissive")

    def sample_keys(self) -> list[Any]:
        """A key every ``_BATCH_ROWS`` rows of every run, sorted: where windows may be cut."""
        return sorted(self._samples)

    @property
    def sample_rows(self) -> int:
        return _BATCH_ROWS
