"""When scheduled work is due: every schedule is a cron line, which procrastinate's periodic tasks
run on PostgreSQL and ``Due`` follows in-process on SQLite, so both databases keep the same times."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from croniter import croniter

SCHEDULE_FORMS = "a UTC time like 03:00, or an interval like 'every 6h', 'every 30m' or 'every 20s'"


def cron(schedule: str) -> str:
    """The cron line of a schedule setting (see SCHEDULE_FORMS); ValueError when it is neither form."""
    text = schedule.strip().lower()
    if daily := re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", text):
        return f"{int(daily[2])} {int(daily[1])} * * *"
    if every := re.fullmatch(r"every\s*(\d+)\s*([smh])", text):
        return every_cron(int(every[1]) * {"s": 1, "m": 60, "h": 3600}[every[2]])
    raise ValueError(f"{schedule!r} is not a schedule: use {SCHEDULE_FORMS}")


def every_cron(seconds: float) -> str:
    """A cron line (with croniter's sixth field, seconds, where needed) firing about every
    ``seconds``: intervals that do not divide a minute, an hour or a day fire at its next divisor."""
    seconds = max(1, int(seconds))
    if seconds < 60:
        return f"* * * * * */{seconds}"
    if seconds < 3600:
        return f"*/{max(1, seconds // 60)} * * * *"
    if seconds < 86400:
        return f"0 */{max(1, seconds // 3600)} * * *"
    return "0 0 * * *"


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Due:
    """In-process follower of a cron line: ``due()`` is true once per firing time passed since the
    last call that returned true (or since it was made)."""

    def __init__(self, line: str, start: datetime | None = None):
        self.line = line
        self.next = croniter(line, start or _now()).get_next(datetime)

    def due(self, now: datetime | None = None) -> bool:
        now = now or _now()
        if now < self.next:
            return False
        self.next = croniter(self.line, now).get_next(datetime)
        return True

    def seconds_left(self) -> float:
        return max(0.0, (self.next - _now()).total_seconds())
