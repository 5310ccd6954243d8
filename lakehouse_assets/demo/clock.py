"""The demo's clock: microsecond units and when things happen on the start day and CDC days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

US = 1_000_000
MINUTE = 60 * US
HOUR = 60 * MINUTE
DAY = 24 * HOUR
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Offsets within the start day: the app's history ends, then come the commits
# DMS captures while it starts (they reach the first CDC files although the
# full load already reflects them), then the full load itself.
HISTORY_END = 22 * HOUR
OVERLAP_WINDOW = (22 * HOUR + 30 * MINUTE, 23 * HOUR + 15 * MINUTE)
LOAD_WINDOW = (23 * HOUR + 20 * MINUTE, 23 * HOUR + 50 * MINUTE)
# Offsets within CDC days: commits fall in the activity window; DMS flushes a
# file per table around each flush hour and once more just before midnight,
# so every file of a day lands in that day's date folder.
ACTIVITY_WINDOW = (1 * MINUTE, 23 * HOUR + 58 * MINUTE)
FLUSH_HOURS = (4, 8, 12, 16, 20)
FLUSH_JITTER = 30 * MINUTE
LAST_FLUSH = 23 * HOUR + 59 * MINUTE
# The DMS task restarts on day 2 and writes the commits after its last
# checkpoint (this long before the first flush) again into the next file.
RESTART_DAY = 2
RESTART_BEFORE_FIRST_FLUSH = 30 * MINUTE


def moment(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))


def isoformat_us(us: int) -> str:
    return moment(us).strftime("%Y-%m-%d %H:%M:%S.%f")
