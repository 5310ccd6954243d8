"""Typing raw DMS strings in Spark SQL with casting.py's grammar: a value casting.py rejects
is NULL here (and rejected, with the same ``_reason`` text)."""

from __future__ import annotations

import json

from lakehouse_assets.contracts import Column
from lakehouse_assets.silver.spark.sql import literal


class SparkEngineUnsupported(ValueError):
    """The contract uses a type Spark cannot hold; merge this table with the arrow engine."""


_INT = r"^(-?[0-9]+|0[xX][0-9a-fA-F]+)$"
_DECIMAL = r"^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$"
_FLOAT = (
    r"^[+-]?(([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?"
    r"|[iI][nN][fF]([iI][nN][iI][tT][yY])?|[nN][aA][nN])$"
)
_DATE = r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$"
# yyyy-MM-dd[( |T)HH[:mm[:ss[.f{1,6}]]]] (what Arrow's timestamp cast accepts)
_TS = (
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[ T]([0-9]{2})(?::([0-9]{2})(?::([0-9]{2})([.][0-9]{1,6})?)?)?)?$"
)
# timestamptz: a time is required; offset Z, +hh, +hhmm or +hh:mm (casting._to_timestamptz)
_TSTZ = (
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"[ T]([0-9]{2})(?::([0-9]{2})(?::([0-9]{2})([.][0-9]{1,6})?)?)?"
    r"(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?$"
)
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_HEX = r"^(\\x)?(([0-9a-fA-F]{2})*)$"
_INT_TYPES = {"smallint": "SMALLINT", "int": "INT", "bigint": "BIGINT"}


def _rx(pattern: str) -> str:
    return literal(pattern)


def _timestamp_parts(value: str, pattern: str) -> list[str]:
    groups = [f"regexp_extract({value}, {_rx(pattern)}, {index})" for index in range(1, 8)]
    year, month, day, hour, minute, second, fraction = groups
    hour = f"coalesce(nullif({hour}, ''), '0')"
    minute = f"coalesce(nullif({minute}, ''), '0')"
    seconds = f"CAST(concat(coalesce(nullif({second}, ''), '0'), {fraction}) AS DECIMAL(8,6))"
    in_range = f"(CAST({hour} AS INT) < 24 AND CAST({minute} AS INT) < 60 AND {seconds} < 60)"
    return [
        f"CAST({year} AS INT)",
        f"CAST({month} AS INT)",
        f"CAST({day} AS INT)",
        f"CAST({hour} AS INT)",
        f"CAST({minute} AS INT)",
        seconds,
        in_range,
    ]


# The usual shape, which Spark's own cast parses exactly as Arrow (NULL when out of range).
_TS_FULL = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,6})?$"


def _timestamp_ntz_sql(value: str) -> str:
    year, month, day, hour, minute, seconds, in_range = _timestamp_parts(value, _TS)
    return (
        f"(CASE WHEN {value} RLIKE {_rx(_TS_FULL)} THEN CAST({value} AS TIMESTAMP_NTZ) "
        f"WHEN {value} RLIKE {_rx(_TS)} AND {in_range} "
        f"THEN make_timestamp_ntz({year}, {month}, {day}, {hour}, {minute}, {seconds}) END)"
    )


def timestamp_utc_sql(value: str) -> str:
    """A naive DMS timestamp read as UTC (the commit timestamp column; the session is UTC)."""
    year, month, day, hour, minute, seconds, in_range = _timestamp_parts(value, _TS)
    return (
        f"(CASE WHEN {value} RLIKE {_rx(_TS_FULL)} THEN CAST({value} AS TIMESTAMP) "
        f"WHEN {value} RLIKE {_rx(_TS)} AND {in_range} "
        f"THEN make_timestamp({year}, {month}, {day}, {hour}, {minute}, {seconds}, 'UTC') END)"
    )


def _timestamptz_sql(value: str) -> str:
    year, month, day, hour, minute, seconds, in_range = _timestamp_parts(value, _TSTZ)
    offset = f"regexp_extract({value}, {_rx(_TSTZ)}, 8)"
    zone = (
        f"(CASE WHEN {offset} IN ('', 'Z') THEN 'UTC' "
        f"WHEN length({offset}) = 3 THEN concat({offset}, ':00') "
        f"WHEN length({offset}) = 5 "
        f"THEN concat(substring({offset}, 1, 3), ':', substring({offset}, 4, 2)) "
        f"ELSE {offset} END)"
    )
    return (
        f"(CASE WHEN {value} RLIKE {_rx(_TSTZ)} AND {in_range} "
        f"THEN make_timestamp({year}, {month}, {day}, {hour}, {minute}, {seconds}, {zone}) END)"
    )


def typed_sql(value: str, column: Column) -> str:
    """SQL typing the raw string ``value`` like casting.convert_column: NULL when the value
    cannot be typed (a non-null input with a null result is a bad value)."""
    kind = column.type
    decimal = column.decimal
    if kind in ("string", "json"):
        return value  # json is validated by a UDF (Python's parser, as casting.py)
    if kind in _INT_TYPES:
        sql_type = _INT_TYPES[kind]
        target = "INT" if kind == "smallint" else sql_type  # Iceberg has no 16-bit integer
        # Decimal digits: Spark's cast (NULL on overflow). Hex (0x..., as Arrow): by value.
        number = (
            f"(CASE WHEN {value} RLIKE '^0[xX]' "
            f"THEN CAST(conv(substring({value}, 3), 16, 10) AS DECIMAL(38,0)) "
            f"ELSE CAST({value} AS DECIMAL(38,0)) END)"
        )
        bounds = {"SMALLINT": 2**15, "INT": 2**31, "BIGINT": 2**63}[sql_type]
        return (
            f"(CASE WHEN {value} RLIKE '^-?[0-9]+$' "
            f"THEN CAST(CAST({value} AS {sql_type}) AS {target}) "
            f"WHEN {value} RLIKE {_rx(_INT)} AND {number} >= -{bounds} AND {number} < {bounds} "
            f"THEN CAST({number} AS {target}) END)"
        )
    if decimal:
        precision, scale = decimal
        exact = f"CAST({value} AS DECIMAL({precision},{scale}))"
        wide_scale = min(38, scale + 12)
        wide = f"CAST({value} AS DECIMAL(38,{wide_scale}))"
        # Arrow refuses a value that would need rounding to the scale, or overflow.
        # Needs no rounding: Spark's cast, NULL on overflow.
        plain = f"^-?[0-9]+([.][0-9]{{0,{scale}}})?$"
        return (
            f"(CASE WHEN {value} RLIKE {_rx(plain)} THEN {exact} "
            f"WHEN {value} RLIKE {_rx(_DECIMAL)} AND {exact} IS NOT NULL "
            f"AND ({wide} IS NULL OR {wide} = {exact}) THEN {exact} END)"
        )
    if kind in ("real", "double"):
        sql_type = "FLOAT" if kind == "real" else "DOUBLE"
        special = (
            f"(CASE WHEN lower({value}) RLIKE '^[+-]?nan$' THEN 'NaN' "
            f"WHEN lower({value}) RLIKE '^[+]?inf(inity)?$' THEN 'Infinity' "
            f"WHEN lower({value}) RLIKE '^-inf(inity)?$' THEN '-Infinity' ELSE {value} END)"
        )
        return f"(CASE WHEN {value} RLIKE {_rx(_FLOAT)} THEN CAST({special} AS {sql_type}) END)"
    if kind == "boolean":
        return (
            f"(CASE WHEN lower({value}) IN ('t', 'true', '1') THEN true "
            f"WHEN lower({value}) IN ('f', 'false', '0') THEN false END)"
        )
    if kind == "date":
        return f"(CASE WHEN {value} RLIKE {_rx(_DATE)} THEN CAST({value} AS DATE) END)"
    if kind == "timestamp":
        return _timestamp_ntz_sql(value)
    if kind == "timestamptz":
        return _timestamptz_sql(value)
    if kind == "uuid":
        return f"(CASE WHEN {value} RLIKE {_rx(_UUID)} THEN lower({value}) END)"
    if kind == "bytes":
        digits = f"regexp_extract({value}, {_rx(_HEX)}, 2)"
        return f"(CASE WHEN {value} RLIKE {_rx(_HEX)} THEN unhex({digits}) END)"
    raise SparkEngineUnsupported(
        f"column {column.name!r}: type {kind} is not supported by the Spark engine"
    )


def json_validator():
    """A UDF body: is the text JSON by Python's parser, as casting.py checks it? Built here
    (stdlib only, pickled by value) so executors need only Python, not this project."""

    def is_valid(text):

        if text is None:
            return True

        def reject(name):
            raise ValueError(name)

        try:
            json.loads(text, parse_constant=reject)
        except ValueError:
            return False
        return True

    return is_valid


def reason_builder(names: list[str], types: list[str]):
    """A UDF body: casting.py's ``_reason`` text (Python's repr of the value) for a reject."""

    def reason(at, kind, value):
        if kind == "bad":
            return f"column {names[at]!r}: {value!r} is not a valid {types[at]}"
        return f"column {names[at]!r} is required but empty"

    return reason
