"""The jobs on PostgreSQL: procrastinate's queue in the site's own database.

`dailypapers worker` runs ``make_app(settings).run_worker``: any number of workers on any machines
share the queue. Its periodic tasks (procrastinate defers each firing once, whichever worker sees
it first): the harvest (DAILYPAPERS_HARVEST_SCHEDULE, only when DAILYPAPERS_HARVEST_SETS is set),
embedding and index upkeep, and the refresh of stale recommendations (each every
DAILYPAPERS_JOBS_INTERVAL), mail (every
DAILYPAPERS_MAIL_CHECK_INTERVAL, when the mail schedule is on), the purge (hourly), and the
stalled-job check. Failed jobs are retried with exponential back-off. A queueing lock keeps at most
one of each kind waiting, and a lock lets one run at a time (two harvests of one set would fetch
every page twice). A worker that stops sending heartbeats (killed, or its machine gone) for three
of DAILYPAPERS_WORKER_HEARTBEAT has its job put back on the queue by the stalled-job check of
another: the work resumes from what was committed (a harvest from its checkpoint, embedding from
the papers still missing), so nothing is lost and nothing is done twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from functools import cache

import procrastinate
from procrastinate import exceptions
from procrastinate.jobs import Status
from sqlalchemy.engine.url import make_url

from dailypapers.config import Settings
from dailypapers.jobs import work
from dailypapers.jobs.timing import cron, every_cron
from dailypapers.store.db import open_engine

log = logging.getLogger("dailypapers.jobs")
RETRY = procrastinate.RetryStrategy(max_attempts=5, exponential_wait=4)  # 16 s, 1 min, 4 min, 17 min, 68 min
STALLED_HEARTBEATS = 3  # heartbeats a worker may miss before its job runs again elsewhere
TASKS = ("harvest", "embed", "recommend", "mail", "purge")  # what `dailypapers jobs run` may defer
_apps: dict[str, procrastinate.App] = {}
_apps_lock = threading.Lock()


def conninfo(database_url: str) -> str:
    """The libpq URL of a SQLAlchemy one (postgresql+psycopg://... -> postgresql://...)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def make_app(settings: Settings, *, pool_size: int = 4) -> procrastinate.App:
    """A procrastinate app with every task of the site, its periodic ones timed by the settings."""
    # Opened by the first task this process runs. No full-text index of its own (searches=False):
    # the web processes of each machine keep theirs up to date.
    engine = cache(lambda: open_engine(settings.db_url, data_dir=settings.data_dir, searches=False))
    connector = procrastinate.PsycopgConnector(conninfo=conninfo(settings.db_url), min_size=1,
                                               max_size=pool_size)
    app = procrastinate.App(connector=connector)
    heartbeat = settings.worker_heartbeat

    @app.periodic(cron=cron(settings.harvest_schedule)) if settings.harvest_sets else (lambda task: task)
    @app.task(name="harvest", queueing_lock="harvest", lock="harvest", retry=RETRY)
    def harvest(timestamp: int = 0) -> None:
        log.info("harvest job in process %d", os.getpid())
        work.harvest(engine(), settings)

    @app.periodic(cron=every_cron(settings.jobs_interval))
    @app.task(name="embed", queueing_lock="embed", lock="embed", retry=RETRY)
    def embed(timestamp: int = 0) -> None:
        log.info("embedding job in process %d", os.getpid())
        work.upkeep(engine())
        work.embed_new(engine(), settings)

    @app.periodic(cron=every_cron(settings.jobs_interval))
    @app.task(name="recommend", queueing_lock="recommend", lock="recommend", retry=RETRY)
    def recommend(timestamp: int = 0) -> None:
        work.refresh_recommendations(engine())

    @app.task(name="mail", queueing_lock="mail", lock="mail", retry=RETRY)
    def mail(timestamp: int = 0) -> None:
        work.send_mail(engine(), settings)

    if settings.mail_schedule_on and settings.smtp_url and settings.base_url:
        app.periodic(cron=every_cron(settings.mail_check_interval))(mail)

    @app.periodic(cron="0 * * * *")
    @app.task(name="purge", queueing_lock="purge", retry=RETRY)
    def purge(timestamp: int = 0) -> None:
        work.purge(engine())

    @app.periodic(cron=every_cron(heartbeat))
    @app.task(name="retry_stalled", queueing_lock="retry_stalled", pass_context=True)
    async def retry_stalled(context: procrastinate.JobContext, timestamp: int = 0) -> None:
        manager = context.app.job_manager
        for job in await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_HEARTBEATS * heartbeat):
            log.warning("job %s (%s) lost its worker: it runs again", job.id, job.task_name)
            try:
                await manager.retry_job(job)
            except exceptions.UniqueViolation:  # one of its kind is waiting already: that one does the work
                await manager.finish_job(job, status=Status.FAILED, delete_job=False)

    return app


def _shared(settings: Settings) -> procrastinate.App:
    """This process's app for deferring (one per database), opened on first use."""
    with _apps_lock:
        app = _apps.get(settings.db_url)
        if app is None:
            app = _apps[settings.db_url] = make_app(settings, pool_size=2)
            app.open()
        return app


def defer(settings: Settings, task: str) -> int | None:
    """Queue one job of ``task`` (one of TASKS); None when one is waiting already (it will do it)."""
    if task not in TASKS:
        raise ValueError(f"no job called {task!r}: use one of {', '.join(TASKS)}")
    try:
        return _shared(settings).configure_task(task).defer()
    except exceptions.AlreadyEnqueued:
        return None


def close_all() -> None:
    """Close the deferring apps' connections (at the end of `serve`)."""
    with _apps_lock:
        while _apps:
            _apps.popitem()[1].close()


def run_worker(settings: Settings, *, concurrency: int = 2, wait: bool = True) -> None:
    """Run a worker until stopped (or, without ``wait``, until the queue is empty)."""
    app = make_app(settings, pool_size=concurrency + 3)
    with app.open():
        app.run_worker(concurrency=concurrency, wait=wait, name=f"{socket.gethostname()}:{os.getpid()}",
                       update_heartbeat_interval=settings.worker_heartbeat,
                       stalled_worker_timeout=STALLED_HEARTBEATS * settings.worker_heartbeat,
                       delete_jobs="successful", install_signal_handlers=wait)


def list_jobs(settings: Settings) -> list[dict]:
    """The queued, running and failed jobs, oldest first."""
    app = make_app(settings, pool_size=1)
    with app.open():
        found = [job for status in ("doing", "todo", "failed")
                 for job in app.job_manager.list_jobs(status=status)]
    return [{"id": job.id, "task": job.task_name, "status": job.status, "attempts": job.attempts,
             "scheduled_at": job.scheduled_at.isoformat() if job.scheduled_at else None}
            for job in sorted(found, key=lambda job: job.id)]
