"""What a demo run wrote: files, bytes and rows per table, and the edge cases it placed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class TableSummary:
    files: int = 0
    bytes: int = 0
    load_rows: int = 0
    cdc_rows: int = 0
    live_rows: int = 0

    @property
    def rows_written(self) -> int:
        return self.load_rows + self.cdc_rows


@dataclass
class Summary:
    arguments: dict[str, Any]
    tables: dict[str, TableSummary]
    edge_cases: dict[str, Any]

    @property
    def files(self) -> int:
        return sum(t.files for t in self.tables.values())

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tables.values())

    @property
    def rows_written(self) -> int:
        return sum(t.rows_written for t in self.tables.values())
