"""Arrow values for demo rows (timestamps, money, uuids, picks from a pool) and back.

Builders take numpy arrays; negative times and dates stand for NULL. Readers turn
a table's column back into numpy for the simulation's arithmetic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# A row set by column name: what the row builders return and the change log takes.
Columns = Mapping[str, pa.Array | pa.ChunkedArray]


def json_text(value: Any) -> str:
    """Compact JSON as Django's JSONField stores it, unicode unescaped."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def timestamps(us: np.ndarray) -> pa.Array:
    """Microseconds since the epoch as timestamps; negative values are NULL."""
    us = np.asarray(us, np.int64)
    return nullify(pa.array(us, pa.timestamp("us")), us < 0)


def dates(days: np.ndarray) -> pa.Array:
    """Days since the epoch as dates; negative values are NULL."""
    days = np.asarray(days, np.int64)
    return nullify(pa.array(days.astype(np.int32), pa.date32()), days < 0)


def money(cents: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Exact decimals from integer cents (the two's complement words of decimal128)."""
    cents = np.asarray(cents, np.int64)
    words = np.empty((len(cents), 2), np.int64)
    words[:, 0] = cents
    words[:, 1] = cents >> 63
    array = pa.Array.from_buffers(pa.decimal128(18, 2), len(cents), [None, pa.py_buffer(words)])
    return array if null is None else nullify(array, null)


def ints(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    array = pa.array(np.asarray(values, np.int64))
    return array if null is None else nullify(array, null)


def nullify(array: pa.Array, null: np.ndarray) -> pa.Array:
    if not null.any():
        return array
    return pc.if_else(pa.array(null), pa.scalar(None, array.type), array)


def pick(pool: pa.Array, rng: np.random.Generator, n: int, null_share: float = 0.0) -> pa.Array:
    """Values drawn from ``pool``, a share of them NULL."""
    values = pool.take(rng.integers(0, len(pool), n))
    return nullify(values, rng.random(n) < null_share) if null_share else values


def join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def digits(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(pa.array(np.asarray(values, np.int64)).cast(pa.string()), width, "0")


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_UUID_DIGITS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


def uuid4s(rng: np.random.Generator, n: int) -> pa.Array:
    """Random version-4 UUIDs in lowercase canonical text, built as one byte matrix."""
    raw = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hex_digits = np.empty((n, 32), np.uint8)
    hex_digits[:, 0::2] = _HEX[raw >> 4]
    hex_digits[:, 1::2] = _HEX[raw & 0x0F]
    text = np.full((n, 36), ord("-"), np.uint8)
    text[:, _UUID_DIGITS] = hex_digits
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))


def int_values(table: pa.Table, name: str) -> np.ndarray:
    """An integer, timestamp or date column as int64 (NULL as -1)."""
    column = table[name]
    if pa.types.is_date32(column.type):
        column = column.cast(pa.int32())  # dates cast to integers only at their own width
    return pc.fill_null(column.cast(pa.int64()), -1).to_numpy()


def cent_values(table: pa.Table, name: str) -> np.ndarray:
    """A decimal(p,2) column as integer cents (NULL as 0)."""
    return np.rint(pc.fill_null(table[name].cast(pa.float64()), 0).to_numpy() * 100).astype(
        np.int64
    )


def text_values(table: pa.Table, name: str) -> np.ndarray:
    return table[name].to_numpy(zero_copy_only=False)


def replaced(rows: pa.Table, **columns: pa.Array) -> Columns:
    """``rows`` with some columns swapped for new values: an update's after-image."""
    values: dict[str, pa.Array | pa.ChunkedArray] = {name: rows[name] for name in rows.column_names}
    values.update(columns)
    return values


def categorical(
    rng: np.random.Generator, labels: Sequence[str], weights: Sequence[float], n: int
) -> np.ndarray:
    return np.array(labels, dtype=object)[rng.choice(len(labels), size=n, p=weights)]
