"""The work the site does by itself: harvest, embedding, index upkeep, mail, purge.

work.py holds it as plain functions. On PostgreSQL it runs on procrastinate's queue (queue.py):
`dailypapers worker` runs it, `serve` only defers. On SQLite a thread of `serve` runs it
(inprocess.py). ``install`` wires the right one into the web app.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

from sqlalchemy.engine import Engine

from dailypapers.config import Settings
from dailypapers.jobs.work import after_ingest, uses_queue
from dailypapers.mail import schedule

log = logging.getLogger("dailypapers.jobs")
FOLLOW_INTERVAL = 2.0  # seconds between a web process's looks at the papers table (one index probe)


class IndexFollower(schedule.Periodic):
    """PostgreSQL: keeps this machine's full-text index up with the papers other machines write
    (search/backends/postgres.py); a machine's first round builds it. One writer per machine at a
    time (fulltext.py's lock file): the other workers' rounds find it busy and skip."""

    name = "dailypapers-index"

    def __init__(self, engine: Engine):
        super().__init__(engine, FOLLOW_INTERVAL)

    def tick(self) -> None:
        from dailypapers.search import fulltext

        try:
            fulltext.sync(self.engine, wait=False)
        except Exception:  # logged; the next round tries again
            log.exception("full-text index upkeep failed")


def install(app, settings: Settings, engine: Engine, embedder=lambda: None) -> None:  # noqa: ANN001
    """PostgreSQL: no jobs in the web process (its deferring connections closed at the end), only
    the IndexFollower of this machine's full-text index. SQLite: the jobs runner, and
    mail/schedule.py's purge and mail threads."""
    if uses_queue(engine):
        from dailypapers.jobs.queue import close_all

        app.state.jobs_runner = None
        schedule.run_during(app, SimpleNamespace(start=lambda: None, stop=close_all))
        app.state.index_follower = IndexFollower(engine)
        schedule.run_during(app, app.state.index_follower)
        return
    from dailypapers.jobs.inprocess import Runner

    schedule.install(app, settings, engine)
    app.state.jobs_runner = Runner(engine, settings, embedder)
    schedule.run_during(app, app.state.jobs_runner)


__all__ = ["after_ingest", "install", "uses_queue"]
