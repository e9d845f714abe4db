"""Throttling in the database: moving windows, back-off, one slot at a time; on both databases."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from dailypapers import throttle
from dailypapers.store.schema import throttle_hits


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_moving_window_refuses_then_frees(engine) -> None:  # noqa: ANN001
    clock = Clock()
    for _ in range(3):
        throttle.hit(engine, "comment:user:1", "3/minute", clock=clock)
        clock.now += 1
    with pytest.raises(throttle.Throttled) as refused:
        throttle.hit(engine, "comment:user:1", "3/minute", clock=clock)
    assert refused.value.retry_after == 57  # the first hit leaves the window at 1,000,060
    assert "try again in 57 seconds" in refused.value.message
    throttle.hit(engine, "comment:user:2", "3/minute", clock=clock)  # another key is not affected
    clock.now += 57
    throttle.hit(engine, "comment:user:1", "3/minute", clock=clock)


def test_several_limits_all_apply(engine) -> None:  # noqa: ANN001
    clock = Clock()
    for _ in range(2):
        throttle.hit(engine, "signup:ip:1.2.3.4", "2/minute", "3/day", clock=clock)
    clock.now += 61
    throttle.hit(engine, "signup:ip:1.2.3.4", "2/minute", "3/day", clock=clock)
    clock.now += 61
    with pytest.raises(throttle.Throttled) as refused:
        throttle.hit(engine, "signup:ip:1.2.3.4", "2/minute", "3/day", clock=clock)
    assert refused.value.retry_after > 3600  # the day's limit speaks


def test_backoff_doubles_after_the_free_guesses_and_forget_clears(engine) -> None:  # noqa: ANN001
    clock = Clock()
    for _ in range(3):
        throttle.attempt(engine, "signin:acct:a@example.org", free=3, base=2, clock=clock)
    waits = []
    for _ in range(4):
        with pytest.raises(throttle.Throttled) as refused:
            throttle.attempt(engine, "signin:acct:a@example.org", free=3, base=2, clock=clock)
        waits.append(refused.value.retry_after)
        clock.now += refused.value.retry_after
        throttle.attempt(engine, "signin:acct:a@example.org", free=3, base=2, clock=clock)
    assert waits == [2, 4, 8, 16]
    throttle.forget(engine, "signin:acct:a@example.org")
    throttle.attempt(engine, "signin:acct:a@example.org", free=3, base=2, clock=clock)


def test_parallel_hits_never_exceed_the_limit(engine) -> None:  # noqa: ANN001
    def one(_: int) -> bool:
        try:
            throttle.hit(engine, "signin:ip:9.9.9.9", "5/hour")
            return True
        except throttle.Throttled:
            return False

    with ThreadPoolExecutor(8) as pool:
        allowed = list(pool.map(one, range(24)))
    assert sum(allowed) == 5
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(throttle_hits)).scalar_one() == 5


def test_parallel_guesses_are_each_counted(engine) -> None:  # noqa: ANN001
    def one(_: int) -> bool:
        try:
            throttle.attempt(engine, "signin:acct:b@example.org", free=4, base=60)
            return True
        except throttle.Throttled:
            return False

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(one, range(16))) == 4  # four free, then one a minute at the soonest


def test_wait_turn_spaces_callers_and_purge_deletes_old_rows(engine) -> None:  # noqa: ANN001
    clock = Clock()
    waits = [throttle.wait_turn(engine, "arxiv", 3.0, clock=clock) for _ in range(3)]
    assert waits == [0.0, 3.0, 6.0]
    throttle.hit(engine, "k", "1/minute", clock=clock)
    clock.now += 3600
    assert throttle.purge(engine, clock=clock) == 4
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(throttle_hits)).scalar_one() == 0
