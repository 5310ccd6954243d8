"""What every part of a tick's scan shares: the files it takes, its budget, where and when it
lists, and how a listed object becomes a landed file of a partition day."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from lakehouse_assets.contracts import DmsSettings, TableContract
from lakehouse_assets.dms import DmsKeyError, DmsObjectKey, parse_object_key
from lakehouse_assets.lake import LakeStore, ObjectInfo
from lakehouse_assets.sensors.landing.cursor import LandingCursor


def object_version(info: ObjectInfo) -> str:
    """A short digest of what changes when an object is rewritten under its key: its ETag (a
    local file's modification time and inode), size and last-modified time.

    48 bits: a rewrite is mistaken for the old version once in 2**48, and the cursor keeps
    8 characters per full-load file.
    """
    text = f"{info.etag}\0{info.size}\0{info.last_modified.isoformat()}"
    return base64.urlsafe_b64encode(hashlib.blake2b(text.encode(), digest_size=6).digest()).decode()


@dataclass(frozen=True)
class LandedFile:
    table: str
    key: str
    size: int
    last_modified: datetime
    day: date
    version: str  # object_version: run keys name it, so a rewritten file gets a new run
    rewritten: bool = False  # a new version of a key taken before (a reload, a fixed file)


@dataclass
class LandingScan:
    files: list[LandedFile]  # DMS files taken this tick, in listing order
    cursor: LandingCursor  # advanced past the files taken
    listed: int = 0  # keys read from listings (taken or already seen)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key, why): taken, not requested
    waiting: list[str] = field(default_factory=list)  # keys whose day has no partition yet
    backlog: bool = False  # the per-tick budget stopped the scan: more keys are waiting


@dataclass
class TickBudget:
    """Keys one tick may still take, shared by every stream of every table."""

    remaining: int

    @property
    def spent(self) -> bool:
        return self.remaining <= 0

    def take(self) -> None:
        self.remaining -= 1


@dataclass
class ScanContext:
    """What every stream's scan of one tick shares: where and when it lists, which days
    have a partition, the budget left, and the result it adds to."""

    store: LakeStore
    dms: DmsSettings
    lookback: timedelta
    first_day: date
    last_day: date
    budget: TickBudget
    scan: LandingScan


class WaitForPartition(Exception):
    """The key's day is not a partition yet: leave the key for a later tick."""


def classify(
    context: ScanContext, contract: TableContract, info: ObjectInfo, *, rewritten: bool = False
) -> tuple[LandedFile | None, DmsObjectKey | None]:
    """The landed file (None: not a DMS data file, or of a day before the first partition:
    taken, never requested) and its parsed key (None: not a DMS data file)."""
    scan = context.scan
    try:
        parsed = parse_object_key(info.key, context.dms)
    except DmsKeyError as exc:
        scan.skipped.append((info.key, str(exc)))
        return None, None
    day = parsed.partition_date(info.last_modified)
    if day > context.last_day:
        raise WaitForPartition
    if day < context.first_day:
        scan.skipped.append(
            (info.key, f"its day {day} is before the first partition {context.first_day}")
        )
        return None, parsed
    landed = LandedFile(
        table=contract.name,
        key=info.key,
        size=info.size,
        last_modified=info.last_modified,
        day=day,
        version=object_version(info),
        rewritten=rewritten,
    )
    return landed, parsed
