"""The moment mail code acts at: naive UTC, as the database stores times."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now(now: datetime | None = None) -> datetime:
    """``now`` (tests and dry runs pick the moment) as naive UTC, or the wall clock's."""
    if now is None:
        return datetime.now(timezone.utc).replace(tzinfo=None)
    return now.astimezone(timezone.utc).replace(tzinfo=None) if now.tzinfo else now
