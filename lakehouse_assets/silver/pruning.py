"""Which data files of a silver table may hold a batch's keys (min/max key bounds).

Both engines prune by it: the arrow engine reads only these files, and it is what
``files_scanned`` counts on either engine.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pyiceberg.conversions import from_bytes
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThanOrEqual
from pyiceberg.table import FileScanTask, Table

from lakehouse_assets.contracts import TableContract


def candidate_files(table: Table, contract: TableContract, keys: pa.Array) -> list[FileScanTask]:
    """Data files whose key bounds may hold one of ``keys`` (sorted, unique)."""
    if len(keys) == 0:
        return []
    if len(contract.primary_key) != 1:
        # Composite keys: no single bound to prune on; every file is a candidate.
        return list(table.scan().plan_files())
    name = contract.primary_key[0]
    low, high = keys[0].as_py(), keys[-1].as_py()
    # The range filter lets pyiceberg skip manifests and files by partition and stats.
    tasks = table.scan(
        row_filter=And(GreaterThanOrEqual(name, low), LessThanOrEqual(name, high))
    ).plan_files()
    field = table.schema().find_field(name)
    sorted_keys = _comparable_with_bounds(keys).to_numpy(zero_copy_only=False)
    chosen = []
    for task in tasks:
        lower = task.file.lower_bounds.get(field.field_id) if task.file.lower_bounds else None
        upper = task.file.upper_bounds.get(field.field_id) if task.file.upper_bounds else None
        if lower is None or upper is None:
            chosen.append(task)
            continue
        lo = from_bytes(field.field_type, lower)
        hi = from_bytes(field.field_type, upper)
        if np.searchsorted(sorted_keys, lo, side="left") < np.searchsorted(
            sorted_keys, hi, side="right"
        ):
            chosen.append(task)
    return chosen


def _comparable_with_bounds(keys: pa.Array) -> pa.Array:
    """Keys in the form ``from_bytes`` decodes Iceberg bounds to: dates as days and
    timestamps and times as microseconds (plain integers); other types as they are."""
    if pa.types.is_date32(keys.type):
        return keys.view(pa.int32())
    if pa.types.is_timestamp(keys.type) or pa.types.is_time64(keys.type):
        return keys.view(pa.int64())  # silver stores microseconds, as Iceberg does
    return keys
