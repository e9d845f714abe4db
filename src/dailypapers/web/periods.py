"""Feed periods from URL parts: a day (2025-10-10), an ISO week (2025-W41), a month (2025-10).

Only years FIRST_YEAR..LAST_YEAR are served: arXiv began in 1991, and a period in the last year
Python can represent would have a next period (and an exclusive end) that overflows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

FIRST_YEAR = 1991
LAST_YEAR = 9998


class PeriodError(ValueError):
    pass


def _served(year: int, value: str) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise PeriodError(f"{value[:40]!r} is out of range: papers are served for the years "
                          f"{FIRST_YEAR} to {LAST_YEAR}")


@dataclass(frozen=True)
class Period:
    kind: str  # day | week | month
    start: date
    end: date  # exclusive

    @property
    def label(self) -> str:
        if self.kind == "day":
            return self.start.strftime("%A, %B %-d, %Y")
        if self.kind == "week":
            year, week, _ = self.start.isocalendar()
            return f"Week {week}, {year} ({self.start:%b %-d} – {self.end - timedelta(days=1):%b %-d})"
        return self.start.strftime("%B %Y")

    @property
    def slug(self) -> str:
        if self.kind == "day":
            return self.start.isoformat()
        if self.kind == "week":
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        return self.start.strftime("%Y-%m")

    def shifted(self, steps: int) -> Period | None:
        """The period ``steps`` away, or None when it is outside the served years."""
        try:
            if self.kind == "day":
                return day(self.start + timedelta(days=steps))
            if self.kind == "week":
                return week(week_of(self.start + timedelta(weeks=steps)).slug)
            month_index = self.start.year * 12 + self.start.month - 1 + steps
            return month(f"{month_index // 12:04d}-{month_index % 12 + 1:02d}")
        except (PeriodError, OverflowError):
            return None


def day(value: date | str) -> Period:
    if isinstance(value, str):
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value, re.ASCII):
            raise PeriodError(f"{value[:40]!r} is not a date like 2025-10-10")
        try:
            value = date.fromisoformat(value)
        except ValueError:
            raise PeriodError(f"{value!r} is not a real date") from None
    _served(value.year, value.isoformat())
    return Period("day", value, value + timedelta(days=1))


def week_of(value: date) -> Period:
    start = value - timedelta(days=value.weekday())
    return Period("week", start, start + timedelta(days=7))


def week(value: str) -> Period:
    m = re.fullmatch(r"(\d{4})-W(\d{2})", value, re.ASCII)
    if not m:
        raise PeriodError(f"{value[:40]!r} is not a week like 2025-W09")
    _served(int(m.group(1)), value)
    try:
        return week_of(date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1))
    except ValueError:
        raise PeriodError(f"{value!r} is not a real week") from None


def month(value: str) -> Period:
    m = re.fullmatch(r"(\d{4})-(\d{2})", value, re.ASCII)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise PeriodError(f"{value[:40]!r} is not a month like 2025-02")
    _served(int(m.group(1)), value)
    start = date(int(m.group(1)), int(m.group(2)), 1)
    end = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    return Period("month", start, end)
