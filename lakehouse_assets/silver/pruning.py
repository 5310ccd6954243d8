"""Which data files of a silver table may hold a batch's keys (min/max key bounds).

Both engines prune by it: the arrow engine reads only these files, and it is what
``files_scanned`` counts on either engine. Bounds are decoded to the Python values the
batch's keys take (``pa.Array.as_py``), so the two compare directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.conversions import from_bytes
from pyiceberg.expressions import AlwaysTrue, And, GreaterThanOrEqual, LessThanOrEqual
from pyiceberg.table import FileScanTask, Table
from pyiceberg.types import DateType, NestedField, TimestampType, TimestamptzType

from lakehouse_assets.contracts import TableContract

_EPOCH_DAY = date(1970, 1, 1)
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class StoredFile:
    """A data file and its key range (None: unknown, so it may hold any key)."""

    task: FileScanTask
    low: Any
    high: Any

    @property
    def bounded(self) -> bool:
        return self.low is not None and self.high is not None


def _decode(field_type, raw: bytes | None) -> Any:
    if raw is None:
        return None
    value = from_bytes(field_type, raw)
    if isinstance(field_type, DateType):
        return _EPOCH_DAY + timedelta(days=value)
    if isinstance(field_type, TimestamptzType):
        return (_EPOCH + timedelta(microseconds=value)).replace(tzinfo=UTC)
    if isinstance(field_type, TimestampType):
        return _EPOCH + timedelta(microseconds=value)
    return value


def stored_files(
    table: Table, contract: TableContract, key_range: tuple[Any, Any] | None
) -> list[StoredFile]:
    """The data files whose key range meets ``key_range`` (every file when None), with
    their ranges; composite keys have no single bound, so every file is unbounded."""
    if len(contract.primary_key) != 1:
        return [StoredFile(task, None, None) for task in table.scan().plan_files()]
    name = contract.primary_key[0]
    row_filter = AlwaysTrue()
    if key_range is not None:
        # The range filter lets pyiceberg skip manifests and files by partition and stats.
        row_filter = And(
            GreaterThanOrEqual(name, key_bound(key_range[0])),
            LessThanOrEqual(name, key_bound(key_range[1])),
        )
    field = table.schema().find_field(name)
    files = []
    for task in table.scan(row_filter=row_filter).plan_files():
        lower = (task.file.lower_bounds or {}).get(field.field_id)
        upper = (task.file.upper_bounds or {}).get(field.field_id)
        files.append(
            StoredFile(task, _decode(field.field_type, lower), _decode(field.field_type, upper))
        )
    return files


def may_hold(file: StoredFile, keys: pa.Array) -> bool:
    """Can ``file`` hold one of ``keys`` (its key range is unknown, or one lies inside it)?"""
    if len(keys) == 0:
        return False
    if not file.bounded:
        return True
    inside = pc.and_(
        pc.greater_equal(keys, pa.scalar(file.low, keys.type)),
        pc.less_equal(keys, pa.scalar(file.high, keys.type)),
    )
    return bool(pc.any(inside).as_py())


def may_hold_before(file: StoredFile, field: NestedField, moment_us: int) -> bool:
    """Can ``file`` hold a row whose ``field`` (a timestamp column) is before ``moment_us``
    (its lower bound is unknown, or lies before)? A reload's sweep reads only these files."""
    lower = (file.task.file.lower_bounds or {}).get(field.field_id)
    return lower is None or from_bytes(field.field_type, lower) < moment_us


def candidate_count(table: Table, contract: TableContract, keys: pa.Array) -> int:
    """How many data files may hold one of ``keys``: what ``files_scanned`` counts."""
    if len(keys) == 0:
        return 0
    bounds = pc.min_max(keys)
    files = stored_files(table, contract, (bounds["min"].as_py(), bounds["max"].as_py()))
    return sum(may_hold(file, keys) for file in files)


def key_bound(value: Any) -> Any:
    """A key value as pyiceberg's expressions take it (dates and times as ISO text)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
