"""What a demo run wrote: files, bytes and rows per table, and the edge cases it placed."""

from __future__ import annotations

from dataclasses import dataclass, field
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

    def add(self, other: TableSummary) -> TableSummary:
        """Both runs' files and rows, ``other``'s live rows (it ran last)."""
        return TableSummary(
            files=self.files + other.files,
            bytes=self.bytes + other.bytes,
            load_rows=self.load_rows + other.load_rows,
            cdc_rows=self.cdc_rows + other.cdc_rows,
            live_rows=other.live_rows,
        )


@dataclass
class Summary:
    """A landing's arguments, counts and edge cases; a streamed landing adds its streams
    and the next id of every table's sequence, for the next stream to continue from."""

    arguments: dict[str, Any]
    tables: dict[str, TableSummary]
    edge_cases: dict[str, Any]
    streams: list[dict[str, Any]] = field(default_factory=list)
    sequences: dict[str, int] = field(default_factory=dict)

    @property
    def files(self) -> int:
        return sum(t.files for t in self.tables.values())

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tables.values())

    @property
    def rows_written(self) -> int:
        return sum(t.rows_written for t in self.tables.values())
