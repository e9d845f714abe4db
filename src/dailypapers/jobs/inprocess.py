"""The jobs on SQLite: a thread of `dailypapers serve` runs them, so `make run` needs nothing more.

Every DAILYPAPERS_JOBS_INTERVAL seconds, or at once when woken (a submission, a harvest), a round
brings the indexes up to date, embeds the papers that have none and recomputes the stale cached
recommendations; the harvest runs when
DAILYPAPERS_HARVEST_SCHEDULE says (with DAILYPAPERS_HARVEST_SETS set). Several `serve` workers may
each run one: a file lock beside the database lets one of them do each piece of work at a time.
Mail and the purge keep their own threads (mail/schedule.py).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock, Timeout
from sqlalchemy.engine import Engine

from dailypapers.config import Settings
from dailypapers.jobs import work
from dailypapers.jobs.timing import Due, cron

log = logging.getLogger("dailypapers.jobs")
_runners: weakref.WeakSet[Runner] = weakref.WeakSet()  # of this process


def wake() -> None:
    """Start the next round of every runner of this process now (a submission's paper is embedded
    within seconds)."""
    for runner in list(_runners):
        runner.woken.set()


class Runner:
    """The background thread (``start``/``stop``); ``rounds`` counts its completed rounds."""

    name = "dailypapers-jobs"

    def __init__(self, engine: Engine, settings: Settings, embedder: Callable[[], object] = lambda: None):
        self.engine, self.settings, self.embedder = engine, settings, embedder
        self.harvest_due = Due(cron(settings.harvest_schedule)) if settings.harvest_sets else None
        self.stopping, self.woken = threading.Event(), threading.Event()
        self.thread: threading.Thread | None = None
        self.rounds = 0

    def start(self) -> None:
        if self.thread is None:
            self.stopping.clear()
            _runners.add(self)
            self.thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self.thread.start()

    def stop(self, timeout: float = 30) -> None:
        self.stopping.set()
        self.woken.set()
        _runners.discard(self)
        if self.thread is not None:
            self.thread.join(timeout)
            self.thread = None

    def _loop(self) -> None:  # the first round after an interval: a server starts without a model load
        while True:
            wait = self.settings.jobs_interval
            if self.harvest_due is not None:
                wait = min(wait, self.harvest_due.seconds_left())
            self.woken.wait(wait)
            self.woken.clear()
            if self.stopping.is_set():
                return
            self.round()

    def round(self) -> None:
        """One round: the harvest if due, then upkeep and embedding, then the stale recommendations
        (each failure logged, not raised)."""
        if self.harvest_due is not None and self.harvest_due.due():
            self._alone("harvest", lambda: work.harvest(self.engine, self.settings))
        self._alone("embed", self._embed)
        self._alone("recommend", lambda: work.refresh_recommendations(self.engine))
        self.rounds += 1

    def _embed(self) -> None:
        work.upkeep(self.engine)
        embedder = self.embedder()
        if embedder is not None:
            work.embed_new(self.engine, self.settings, embedder=embedder)

    def _alone(self, what: str, job: Callable[[], object]) -> None:
        lock = FileLock(Path(self.settings.data_dir) / f"jobs-{what}.lock")
        try:
            with lock.acquire(timeout=0):
                job()
        except Timeout:  # another worker of this site does it now
            pass
        except Exception:  # logged; the next round tries again
            log.exception("%s failed", what)
