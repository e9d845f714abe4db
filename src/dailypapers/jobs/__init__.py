"""The work the site does by itself: harvest, embedding, index upkeep, mail, purge.

work.py holds it as plain functions. On PostgreSQL it runs on procrastinate's queue (queue.py):
`dailypapers worker` runs it, `serve` only defers. On SQLite a thread of `serve` runs it
(inprocess.py). ``install`` wires the right one into the web app.
"""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy.engine import Engine

from dailypapers.config import Settings
from dailypapers.jobs.work import after_ingest, uses_queue


def install(app, settings: Settings, engine: Engine, embedder=lambda: None) -> None:  # noqa: ANN001
    """PostgreSQL: nothing periodic in the web process (its deferring connections closed at the
    end). SQLite: the jobs runner, and mail/schedule.py's purge and mail threads."""
    from dailypapers.mail import schedule

    if uses_queue(engine):
        from dailypapers.jobs.queue import close_all

        app.state.jobs_runner = None
        schedule.run_during(app, SimpleNamespace(start=lambda: None, stop=close_all))
        return
    from dailypapers.jobs.inprocess import Runner

    schedule.install(app, settings, engine)
    app.state.jobs_runner = Runner(engine, settings, embedder)
    schedule.run_during(app, app.state.jobs_runner)


__all__ = ["after_ingest", "install", "uses_queue"]
