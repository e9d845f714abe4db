"""Throttling shared by every worker and machine: the counts live in the database.

``hit`` applies moving-window limits written the way ``limits`` parses them ("5/minute",
"20/hour"); ``attempt`` is an exponential back-off for guesses (sign-in). Both count and check in
one transaction, so parallel requests cannot slip between the check and the record.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from limits import parse
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Engine

from dailypapers.store.backend import lock_key
from dailypapers.store.schema import throttle_hits
from dailypapers.throttle.storage import DatabaseStorage

__all__ = ["Throttled", "hit", "attempt", "forget", "purge", "wait_turn"]


class Throttled(Exception):
    """Too many requests: ``retry_after`` seconds until the next one is allowed."""

    def __init__(self, retry_after: float):
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(self.message)

    @property
    def message(self) -> str:
        seconds = self.retry_after
        when = f"{seconds} seconds" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"
        return f"Too many requests; try again in {when}."


def hit(engine: Engine, key: str, *limits: str, clock: Callable[[], float] = time.time) -> None:
    """Count one request of ``key`` against each limit; Throttled (and nothing counted by the
    limit that refused) when one is spent."""
    limiter = MovingWindowRateLimiter(DatabaseStorage(engine, clock=clock))
    for text in limits:
        item = parse(text)
        if not limiter.hit(item, key):
            reset, _ = limiter.get_window_stats(item, key)
            raise Throttled(reset - clock())


def attempt(engine: Engine, key: str, *, free: int = 5, window: float = 3600.0, base: float = 2.0,
            cap: float = 900.0, clock: Callable[[], float] = time.time) -> None:
    """Count a guess of ``key`` (before it is checked) under exponential back-off.

    The first ``free`` guesses in ``window`` seconds go through at once; after that each must come
    ``base * 2**(n - free)`` seconds (at most ``cap``) after the previous one, where n is the
    guesses already counted. Refused guesses are not counted. ``forget`` clears the key (a success).
    """
    now = clock()
    name = "backoff/" + key
    with engine.begin() as conn:
        lock_key(conn, name)
        conn.execute(delete(throttle_hits).where(throttle_hits.c.key == name, throttle_hits.c.at <= now - window))
        count, last = conn.execute(select(func.count(), func.max(throttle_hits.c.at))
                                   .where(throttle_hits.c.key == name)).one()
        if count >= free:
            wait = min(cap, base * 2 ** (count - free))
            if now < last + wait:
                raise Throttled(last + wait - now)
        conn.execute(insert(throttle_hits).values(key=name, at=now, expires_at=now + window))


def forget(engine: Engine, key: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(throttle_hits).where(throttle_hits.c.key == "backoff/" + key))


def wait_turn(engine: Engine, key: str, spacing: float, *, clock: Callable[[], float] = time.time) -> float:
    """Reserve the next slot of a resource used at most once per ``spacing`` seconds by all
    workers (arXiv asks for 3 s between requests); returns the seconds to sleep before using it."""
    now = clock()
    name = "spacing/" + key
    with engine.begin() as conn:
        lock_key(conn, name)
        conn.execute(delete(throttle_hits).where(throttle_hits.c.key == name, throttle_hits.c.at < now - spacing))
        last = conn.execute(select(func.max(throttle_hits.c.at)).where(throttle_hits.c.key == name)).scalar()
        slot = now if last is None else max(now, last + spacing)
        conn.execute(insert(throttle_hits).values(key=name, at=slot, expires_at=slot + spacing))
    return slot - now


def purge(engine: Engine, *, clock: Callable[[], float] = time.time) -> int:
    """Delete rows no limit looks at any more (a periodic job); returns how many."""
    with engine.begin() as conn:
        return conn.execute(delete(throttle_hits).where(throttle_hits.c.expires_at <= clock())).rowcount
