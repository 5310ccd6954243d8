"""The landing sensor's cursor: where each key stream of each table stands.

The encoded form is what the daemon stores between ticks, so it must keep decoding:
JSON of format version 1 with short field names, compressed (``z1:`` + base64 of
zlib) once it grows past ``_COMPRESS_OVER`` characters.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from lakehouse_assets.names import LANDING_SENSOR_NAME

# The two key streams of a table folder (see ``scan``), as named in saved cursors.
CDC, LOAD = "cdc", "load"
_CURSOR_VERSION = 1
_COMPRESS_OVER = 4096  # characters of JSON
_COMPRESSED_PREFIX = "z1:"


@dataclass
class StreamCursor:
    """Where one key stream of one table stands. Keys are relative to the table folder."""

    after: str | None = None  # the next listing starts after this key (None: the stream start)
    pos: str | None = None  # the newest key taken
    seen: set[str] = field(default_factory=set)  # keys taken that sort after ``after``
    hwm: str | None = None  # cdc: newest CDC file time taken, YYYYMMDDHHMMSS
    active_until: float | None = None  # load: a full load is landing until this POSIX time

    def to_json(self) -> dict:
        data = {
            "a": self.after,
            "p": self.pos,
            "s": sorted(self.seen),
            "h": self.hwm,
            "u": self.active_until,
        }
        return {k: v for k, v in data.items() if v not in (None, [])}

    @classmethod
    def from_json(cls, data: Mapping) -> StreamCursor:
        return cls(
            after=data.get("a"),
            pos=data.get("p"),
            seen=set(data.get("s", ())),
            hwm=data.get("h"),
            active_until=data.get("u"),
        )


@dataclass
class LandingCursor:
    streams: dict[str, dict[str, StreamCursor]] = field(default_factory=dict)
    next_table: int = 0  # which table lists first on the next tick

    def stream(self, table: str, name: str) -> StreamCursor:
        return self.streams.setdefault(table, {}).setdefault(name, StreamCursor())

    def encode(self) -> str:
        document = {
            "v": _CURSOR_VERSION,
            "n": self.next_table,
            "t": {
                table: {name: state.to_json() for name, state in streams.items()}
                for table, streams in sorted(self.streams.items())
            },
        }
        text = json.dumps(document, separators=(",", ":"), sort_keys=True)
        if len(text) <= _COMPRESS_OVER:
            return text
        return _COMPRESSED_PREFIX + base64.b64encode(zlib.compress(text.encode(), 6)).decode()

    @classmethod
    def decode(cls, text: str | None) -> LandingCursor:
        if not text:
            return cls()
        if text.startswith(_COMPRESSED_PREFIX):
            text = zlib.decompress(base64.b64decode(text[len(_COMPRESSED_PREFIX) :])).decode()
        document = json.loads(text)
        if document.get("v") != _CURSOR_VERSION:
            raise ValueError(f"unknown {LANDING_SENSOR_NAME} cursor version {document.get('v')!r}")
        return cls(
            streams={
                table: {name: StreamCursor.from_json(state) for name, state in streams.items()}
                for table, streams in document.get("t", {}).items()
            },
            next_table=int(document.get("n", 0)),
        )
