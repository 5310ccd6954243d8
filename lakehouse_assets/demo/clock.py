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
# A live full load (generate --live-load): the source keeps committing during the load
# window, at this share of a day's activity (a busy evening), and each table's snapshot
# is read this long before its first LOAD file is transferred (well within a minute,
# the margin the pipeline allows between a load's start and its first transfer).
LIVE_LOAD_SHARE = 0.25
SNAPSHOT_LEAD = (5 * US, 30 * US)
# Offsets within CDC days: commits fall in the activity window; DMS flushes a
# file per table around each flush hour and once more just before midnight,
# so every file of a day lands in that day's date folder.
ACTIVITY_WINDOW = (1 * MINUTE, 23 * HOUR + 58 * MINUTE)
NIGHTLY_JOBS = (3 * HOUR, 4 * HOUR)
FLUSH_HOURS = (4, 8, 12, 16, 20)
FLUSH_JITTER = 30 * MINUTE
LAST_FLUSH = 23 * HOUR + 59 * MINUTE
# DMS names a file a moment after the flush that closed it.
FLUSH_WRITE_DELAY = (20_000, 1_500_000)
# The DMS task restarts on day 2 and writes the commits after its last
# checkpoint (this long before the first flush) again into the next file.
RESTART_DAY = 2
RESTART_BEFORE_FIRST_FLUSH = 30 * MINUTE
# A reload (generate --reload-day): the task is stopped between the first two flushes
# of that day, then reloads one table with a snapshot at the end of the stop; its LOAD
# files follow each other this far apart.
RELOAD_STOP = (9 * HOUR, 10 * HOUR)
RELOAD_FILE_STEP = (20 * US, 45 * US)
# Tracking events commit this long after they occur.
EVENT_COMMIT_DELAY = (200, 50_000)
# A day cut at the moment of the run (generate --end today) stops committing this long
# before it, so that even its last file's name is not in the future.
CUT_MARGIN = 2 * US


def moment(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))


def epoch_us(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1)


def isoformat_us(us: int) -> str:
    return moment(us).strftime("%Y-%m-%d %H:%M:%S.%f")
