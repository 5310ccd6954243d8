"""Reading history: the live rows of a silver table as of any time.

``silver.<table>__history`` (silver/history.py) holds every version with its validity
interval ``[_valid_from, _valid_to)``; the rows live at ``ts`` are

    WHERE _valid_from <= ts AND (_valid_to > ts OR _valid_to IS NULL) AND NOT _is_deleted
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import (
    And,
    EqualTo,
    GreaterThan,
    IsNull,
    LessThanOrEqual,
    Or,
)

from lakehouse_assets.names import HISTORY, silver_identifier
from lakehouse_assets.silver.history import VALID_FROM, VALID_TO
from lakehouse_assets.silver.merge import IS_DELETED

__all__ = ["VALID_FROM", "VALID_TO", "as_of", "live_at"]


def live_at(ts: datetime):
    """The row filter of the versions live at ``ts``."""
    moment = (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).isoformat()
    return And(
        LessThanOrEqual(VALID_FROM, moment),
        Or(GreaterThan(VALID_TO, moment), IsNull(VALID_TO)),
        EqualTo(IS_DELETED, False),
    )


def as_of(catalog: Catalog, table: str, ts: datetime) -> pa.Table:
    """The live rows of ``silver.<table>`` as they were at ``ts`` (its history table), as
    Arrow: the contract's columns and the version's metadata."""
    history = catalog.load_table(silver_identifier(table, HISTORY))
    return history.scan(row_filter=live_at(ts)).to_arrow()
