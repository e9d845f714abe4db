"""A ``limits`` storage in the database: the moving window, shared by all processes.

Only what the moving-window strategy needs is real; the fixed-window counter methods answer from
the same rows so that the storage is complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from limits.storage import MovingWindowSupport, Storage
from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from dailypapers.store.backend import lock_key
from dailypapers.store.schema import throttle_hits as hits


class DatabaseStorage(Storage, MovingWindowSupport):
    STORAGE_SCHEME = ["dailypapers+db"]

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time):
        super().__init__()
        self.engine, self.clock = engine, clock

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        now = self.clock()
        with self.engine.begin() as conn:
            lock_key(conn, key)
            conn.execute(delete(hits).where(hits.c.key == key, hits.c.at <= now - expiry))  # writes first
            count = conn.execute(select(func.count()).where(hits.c.key == key)).scalar_one()
            if count + amount > limit:
                return False
            conn.execute(insert(hits), [{"key": key, "at": now, "expires_at": now + expiry}] * amount)
        return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = self.clock()
        with self.engine.connect() as conn:
            oldest, count = conn.execute(select(func.min(hits.c.at), func.count())
                                         .where(hits.c.key == key, hits.c.at > now - expiry)).one()
        return (oldest if count else now), count

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        self.acquire_entry(key, 2**31, expiry, amount)
        return self.get(key)

    def get(self, key: str) -> int:
        now = self.clock()
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).where(hits.c.key == key, hits.c.expires_at > now)).scalar_one()

    def get_expiry(self, key: str) -> float:
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(hits.c.expires_at)).where(hits.c.key == key)).scalar() or self.clock()

    def check(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(select(1))
        return True

    def reset(self) -> int | None:
        with self.engine.begin() as conn:
            return conn.execute(delete(hits)).rowcount

    def clear(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(hits).where(hits.c.key == key))
