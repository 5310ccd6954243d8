"""A period: a stretch of the source's business that the activity simulates in one go."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Period:
    """What the activity needs to know about when it runs: a CDC day of the batch demo,
    the minutes of a live full load, or one interval of the stream.

    Its changes are tagged ``number`` in the table logs (one change per key and
    period). The activity's rates are per day; ``share`` is the part of a day's
    activity the period holds, and scales them.
    """

    number: int
    window_us: tuple[int, int]  # commit times fall in [lo, hi)
    share: float
    today: int  # the business date in days since the epoch: renewals and due dates
    maintenance_us: tuple[int, int]  # when the clean-up jobs run; may be empty

    def scaled(self, per_day: float) -> float:
        """A daily probability or volume, for this period."""
        return per_day * self.share
