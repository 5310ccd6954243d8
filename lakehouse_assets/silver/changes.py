"""A batch's typed changes as key-sorted runs, in memory or spilled to local disk.

The arrow engine never needs a batch in one piece: it merges it key range by key range
(writer.py). Each file's typed rows become a run sorted by key; runs past
``spill_rows`` in total go to Arrow IPC files in a temporary folder and are read back
memory-mapped, so a full load of any size is held one file at a time. A key range is cut
out of every run by binary search (runs are sorted), without scanning them.
"""

from __future__ import annotations

import bisect
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.silver.merge import KEY

DEFAULT_SPILL_ROWS = 2_000_000
_SAMPLE_EVERY = 65_536  # rows between the keys sampled to cut windows


def sort_value(value: Any) -> Any:
    """Keys compare as Iceberg's bounds decode them: dates as days, timestamps as
    microseconds (see pruning.comparable_keys)."""
    return value


class _SortedKeys:
    """Binary search over an Arrow array sorted ascending, probing single values."""

    def __init__(self, keys: pa.Array):
        self.keys = keys

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> Any:
        return self.keys[index].as_py()


class ChangeRuns:
    """Key-sorted runs of typed changes (``KEY`` holds comparable key values)."""

    def __init__(self, spill_rows: int = DEFAULT_SPILL_ROWS):
        self.spill_rows = spill_rows
        self._runs: list[pa.Table] = []
        self._folder: tempfile.TemporaryDirectory | None = None
        self.rows = 0

    def add(self, changes: pa.Table) -> None:
        if changes.num_rows == 0:
            return
        run = changes.sort_by([(KEY, "ascending")]).combine_chunks()
        self.rows += run.num_rows
        if self.rows > self.spill_rows:
            run = self._spill(run)
        self._runs.append(run)

    def _spill(self, run: pa.Table) -> pa.Table:
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="lakehouse-changes-")
        path = Path(self._folder.name, f"run-{len(self._runs):06d}.arrow")
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, run.schema) as writer:
            writer.write_table(run)
        return pa.ipc.open_file(pa.memory_map(str(path))).read_all()

    def close(self) -> None:
        self._runs = []
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def __enter__(self) -> ChangeRuns:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def schema(self) -> pa.Schema | None:
        return self._runs[0].schema if self._runs else None

    def bounds(self) -> tuple[Any, Any] | None:
        """The smallest and largest key of the batch."""
        if not self._runs:
            return None
        lows = [run[KEY][0].as_py() for run in self._runs]
        highs = [run[KEY][-1].as_py() for run in self._runs]
        return min(lows), max(highs)

    def slice(self, low: Any = None, high: Any = None) -> pa.Table:
        """Every run's rows with ``low <= key < high`` (None: unbounded), as one table."""
        parts = []
        for run in self._runs:
            keys = _SortedKeys(
                run[KEY].chunk(0) if run[KEY].num_chunks == 1 else run[KEY].combine_chunks()
            )
            start = 0 if low is None else bisect.bisect_left(keys, low)
            stop = len(keys) if high is None else bisect.bisect_left(keys, high)
            if stop > start:
                parts.append(run.slice(start, stop - start))
        if not parts:
            return self.schema.empty_table() if self.schema else pa.table({})
        return pa.concat_tables(parts, promote_options="permissive")

    def has_keys(self, low: Any, high: Any) -> bool:
        """Does any run hold a key in ``[low, high]`` (both inclusive)?"""
        for run in self._runs:
            keys = _SortedKeys(run[KEY].combine_chunks())
            index = bisect.bisect_left(keys, low)
            if index < len(keys) and keys[index] <= high:
                return True
        return False

    def sample_keys(self) -> list[Any]:
        """Every ``_SAMPLE_EVERY``-th key of every run, sorted: where windows may be cut."""
        samples = []
        for run in self._runs:
            keys = run[KEY].combine_chunks()
            samples += [keys[index].as_py() for index in range(0, len(keys), _SAMPLE_EVERY)]
        return sorted(samples)

    def unique_keys(self) -> Iterator[pa.Array]:
        for run in self._runs:
            yield pc.unique(run[KEY])
