"""Typing raw DMS strings into contract types, with rejects instead of failures.

Every column converts with one vectorized Arrow call. Only when a column holds
a bad value does it fall back to converting value by value, to find exactly the
rows at fault; those rows go to the rejects with the column, value and type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.contracts import Column, TableContract
from lakehouse_assets.dms import CHANGE_SEQ, COMMIT_TS, OP, SOURCE_FILE, SOURCE_ROW

REASON = "_reason"
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_TIME = r"^(?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})(?:\.(?P<f>\d{1,6}))?$"
_HAS_OFFSET = r"(Z|[+-]\d{2}(:?\d{2})?)$"
_HEX = re.compile(r"^(\\x)?(?P<hex>([0-9a-fA-F]{2})*)$")


@dataclass(frozen=True)
class TypedChanges:
    typed: pa.Table  # contract columns in silver types, then the DMS metadata columns
    rejects: pa.Table  # the raw strings of rejected rows, metadata, and ``_reason``


def silver_type(column: Column) -> pa.DataType:
    """The Arrow type a contract column has in silver (Iceberg has no 16-bit integer)."""
    return pa.int32() if column.type == "smallint" else column.arrow_type


def cast_changes(raw: pa.Table, contract: TableContract) -> TypedChanges:
    """Type the contract columns of a bronze batch; rows that cannot be typed become rejects."""
    rows = raw.num_rows
    is_delete = pc.equal(raw[OP], "D").to_numpy(zero_copy_only=False) if rows else np.zeros(0, bool)
    reasons = np.full(rows, None, dtype=object)
    typed_columns = []
    for column in contract.columns:
        values = raw[column.name].combine_chunks()
        typed, bad = convert_column(values, column)
        if column.name not in contract.primary_key:
            # A delete needs only its key; a bad before-image value is dropped, not rejected.
            bad &= ~is_delete
        if column.nullable:
            missing = np.zeros(rows, dtype=bool)
        else:
            missing = pc.is_null(values).to_numpy(zero_copy_only=False) & ~bad
            if column.name not in contract.primary_key:
                missing &= ~is_delete  # a delete may carry only its key
        for index in np.flatnonzero((bad | missing) & (reasons == None)):  # noqa: E711
            value = values[index].as_py()
            reasons[index] = (
                f"column {column.name!r}: {value!r} is not a valid {column.type}"
                if bad[index]
                else f"column {column.name!r} is required but empty"
            )
        typed_columns.append(typed)

    rejected = reasons != None  # noqa: E711
    keep = pa.array(~rejected)
    metadata = [raw[name] for name in (OP, COMMIT_TS, CHANGE_SEQ, SOURCE_FILE, SOURCE_ROW)]
    names = contract.column_names + [OP, COMMIT_TS, CHANGE_SEQ, SOURCE_FILE, SOURCE_ROW]
    typed_table = pa.Table.from_arrays(typed_columns + metadata, names=names).filter(keep)
    rejects = raw.filter(pa.array(rejected)).append_column(
        REASON, pa.array(reasons[rejected].tolist(), pa.string())
    )
    return TypedChanges(typed=typed_table, rejects=rejects)


def convert_column(values: pa.Array, column: Column) -> tuple[pa.Array, np.ndarray]:
    """(typed values, mask of values that could not be typed, which are null in the result)."""
    convert = _converter(column)
    try:
        return convert(values), np.zeros(len(values), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        pass
    bad = np.zeros(len(values), dtype=bool)
    for index, value in enumerate(values.to_pylist()):
        if value is None:
            continue
        try:
            convert(pa.array([value], pa.string()))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
            bad[index] = True
    cleaned = pc.if_else(pa.array(bad), pa.scalar(None, pa.string()), values)
    return convert(cleaned), bad


def _converter(column: Column) -> Callable[[pa.Array], pa.Array]:
    kind = column.type
    target = silver_type(column)
    if kind in ("string",):
        return lambda values: values
    if kind == "boolean":
        return _to_bool
    if kind == "timestamptz":
        return _to_timestamptz
    if kind == "time":
        return _to_time
    if kind == "json":
        return _checked_json
    if kind == "uuid":
        return _checked_uuid
    if kind == "bytes":
        return _to_bytes
    if kind == "smallint":
        return lambda values: pc.cast(values, pa.int16()).cast(target)
    return lambda values: pc.cast(values, target)


def _to_bool(values: pa.Array) -> pa.Array:
    lower = pc.utf8_lower(values)
    spelled = pc.if_else(
        pc.equal(lower, "t"), "true", pc.if_else(pc.equal(lower, "f"), "false", lower)
    )
    return pc.cast(spelled, pa.bool_())


def _to_timestamptz(values: pa.Array) -> pa.Array:
    # DMS writes UTC without an offset; an explicit offset is honoured.
    has_offset = pc.match_substring_regex(values, _HAS_OFFSET)
    with_offset = pc.if_else(has_offset, values, pc.binary_join_element_wise(values, "Z", ""))
    return pc.cast(with_offset, pa.timestamp("us", tz="UTC"))


def _to_time(values: pa.Array) -> pa.Array:
    if values.null_count == len(values):
        return pa.nulls(len(values), pa.time64("us"))
    valid = pc.match_substring_regex(values, _TIME)
    if not pc.all(pc.or_(valid, pc.is_null(values))).as_py():
        raise ValueError("not a time of day")
    parts = pc.extract_regex(values, _TIME)
    hours = pc.cast(pc.struct_field(parts, "h"), pa.int64())
    minutes = pc.cast(pc.struct_field(parts, "m"), pa.int64())
    seconds = pc.cast(pc.struct_field(parts, "s"), pa.int64())
    fraction = pc.struct_field(parts, "f")
    micros = pc.cast(
        pc.utf8_rpad(pc.if_else(pc.equal(fraction, ""), "0", fraction), 6, "0"), pa.int64()
    )
    in_range = pc.and_(pc.less(hours, 24), pc.and_(pc.less(minutes, 60), pc.less(seconds, 60)))
    if pc.any(pc.invert(in_range)).as_py():
        raise ValueError("time out of range")
    total = pc.add(
        pc.multiply(
            pc.add(pc.multiply(pc.add(pc.multiply(hours, 60), minutes), 60), seconds), 1_000_000
        ),
        micros,
    )
    return pc.cast(total, pa.time64("us"))


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _checked_json(values: pa.Array) -> pa.Array:
    # Python's parser accepts NaN and Infinity; JSON (and PostgreSQL, DuckDB, Trino) does not.
    for text in values.to_pylist():
        if text is not None:
            json.loads(text, parse_constant=_reject_constant)
    return values


def _checked_uuid(values: pa.Array) -> pa.Array:
    valid = pc.match_substring_regex(values, _UUID)
    if not pc.all(pc.or_(valid, pc.is_null(values))).as_py():
        raise ValueError("not a UUID")
    return pc.utf8_lower(values)


def _to_bytes(values: pa.Array) -> pa.Array:
    # PostgreSQL's bytea text form: \x followed by hex digits (plain hex accepted).
    decoded = []
    for text in values.to_pylist():
        if text is None:
            decoded.append(None)
            continue
        match = _HEX.match(text)
        if not match:
            raise ValueError("not hex-encoded bytes")
        decoded.append(bytes.fromhex(match["hex"]))
    return pa.array(decoded, pa.binary())
