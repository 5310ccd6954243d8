"""The landing sensor's cursor: where each table's key streams stand, and which versions of its
full-load and quarantined files were requested.

The encoded form is what the daemon stores between ticks, so it must keep decoding: JSON with
short field names, compressed (``z1:`` + base64 of zlib) once it grows past ``_COMPRESS_OVER``
characters. Format version 2 (this one) knows each full-load file by its version; a version-1
cursor (earlier releases: the load stream as a StartAfter position) decodes and is upgraded on
the first tick (``LoadCursor.v1_after``/``v1_seen``).
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
_QUARANTINE = "q"
_CURSOR_VERSION = 2
_V1 = 1
_COMPRESS_OVER = 4096  # characters of JSON
_COMPRESSED_PREFIX = "z1:"


@dataclass
class CdcCursor:
    """Where a table's CDC stream stands. Keys are relative to the table folder."""

    after: str | None = None  # the next listing starts after this key (None: the stream start)
    pos: str | None = None  # the newest key taken
    # Keys taken that sort after ``after`` -> the object_version taken ("": taken by a cursor
    # that did not record versions), so a file rewritten inside the lookback is taken again.
    seen: dict[str, str] = field(default_factory=dict)
    hwm: str | None = None  # newest CDC file time taken, YYYYMMDDHHMMSS

    def known(self, relative: str, version: str) -> bool:
        """Whether this version of the key was taken before."""
        taken = self.seen.get(relative)
        return taken is not None and taken in ("", version)

    def to_json(self) -> dict:
        data = {"a": self.after, "p": self.pos, "v": dict(sorted(self.seen.items())), "h": self.hwm}
        return {k: v for k, v in data.items() if v not in (None, {})}

    @classmethod
    def from_json(cls, data: Mapping) -> CdcCursor:
        seen = dict(data.get("v", {}))
        seen.update({key: "" for key in data.get("s", ()) if key not in seen})  # earlier cursors
        return cls(after=data.get("a"), pos=data.get("p"), seen=seen, hwm=data.get("h"))


@dataclass
class LoadCursor:
    """A table's full-load stream: the version of every file it held at the last listing.

    The stream is listed whole every tick (a table has tens to hundreds of LOAD files), so a
    file rewritten under its key (a reload writes ``LOAD00000001.csv`` again) shows as a new
    version, and files that are gone drop out: the cursor holds what the folder holds.
    """

    versions: dict[str, str] = field(default_factory=dict)  # relative key -> object_version
    # Upgraded from a version-1 cursor, until the first complete listing: what it had taken
    # (every key up to ``v1_after``, and ``v1_seen``), whose versions it never recorded.
    v1_after: str | None = None
    v1_seen: set[str] = field(default_factory=set)

    def known(self, relative: str, version: str) -> bool:
        """Whether this version of the key was taken before."""
        if relative in self.versions:
            return self.versions[relative] == version
        return relative in self.v1_seen or (self.v1_after is not None and relative <= self.v1_after)

    def to_json(self) -> dict:
        data = {"k": self.versions, "a": self.v1_after, "s": sorted(self.v1_seen)}
        return {k: v for k, v in data.items() if v not in (None, [], {})}

    @classmethod
    def from_json(cls, data: Mapping) -> LoadCursor:
        return cls(
            versions=dict(data.get("k", {})),
            v1_after=data.get("a"),
            v1_seen=set(data.get("s", ())),
        )

    @classmethod
    def from_v1_json(cls, data: Mapping) -> LoadCursor:
        # Version 1 listed after ``a`` and kept the keys taken beyond it in ``s``; every key
        # up to ``a`` had been taken (its cursor never moved past a key it had not taken).
        return cls(v1_after=data.get("a"), v1_seen=set(data.get("s", ())))


@dataclass
class TableCursor:
    cdc: CdcCursor = field(default_factory=CdcCursor)
    load: LoadCursor = field(default_factory=LoadCursor)
    # Quarantined CDC files whose new version (a fix or a replacement) was requested:
    # key -> object_version. Only keys still quarantined are kept.
    quarantine: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        data = {CDC: self.cdc.to_json(), LOAD: self.load.to_json(), _QUARANTINE: self.quarantine}
        return {k: v for k, v in data.items() if v}

    @classmethod
    def from_json(cls, data: Mapping) -> TableCursor:
        return cls(
            cdc=CdcCursor.from_json(data.get(CDC, {})),
            load=LoadCursor.from_json(data.get(LOAD, {})),
            quarantine=dict(data.get(_QUARANTINE, {})),
        )

    @classmethod
    def from_v1_json(cls, data: Mapping) -> TableCursor:
        return cls(
            cdc=CdcCursor.from_json(data.get(CDC, {})),
            load=LoadCursor.from_v1_json(data.get(LOAD, {})),
        )


@dataclass
class LandingCursor:
    tables: dict[str, TableCursor] = field(default_factory=dict)
    next_table: int = 0  # which table lists first on the next tick

    def table(self, name: str) -> TableCursor:
        return self.tables.setdefault(name, TableCursor())

    def encode(self) -> str:
        document = {
            "v": _CURSOR_VERSION,
            "n": self.next_table,
            "t": {name: state.to_json() for name, state in sorted(self.tables.items())},
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
        version = document.get("v")
        if version == _CURSOR_VERSION:
            table_from_json = TableCursor.from_json
        elif version == _V1:
            table_from_json = TableCursor.from_v1_json
        else:
            raise ValueError(f"unknown {LANDING_SENSOR_NAME} cursor version {version!r}")
        return cls(
            tables={name: table_from_json(state) for name, state in document.get("t", {}).items()},
            next_table=int(document.get("n", 0)),
        )
