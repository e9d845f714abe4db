"""Sending on a schedule from inside `dailypapers serve`: a background thread in each worker.

Every ``mail_check_interval`` seconds, once the UTC clock has passed ``mail_send_time``, the thread
runs the daily digest, the weekly digest and the alerts. Each run only sends what is due and the send
log's claims make every message exactly-once, so any number of workers (or machines) may run it, and
a cron job may run `dailypapers digest send` beside it. DAILYPAPERS_MAIL_SCHEDULE=off turns it off.

Beside it, whether or not mail is on, a purge thread deletes expired sessions, reset and
verification links and throttle counts every PURGE_INTERVAL seconds (any worker may run it).
"""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager
from datetime import datetime, time, timezone

from sqlalchemy.engine import Engine

from dailypapers.config import Settings

log = logging.getLogger("dailypapers.mail")
FIRST_CHECK = 5.0  # seconds after start: let the server come up first
PURGE_INTERVAL = 3600.0


def due(settings: Settings, now: datetime) -> bool:
    hours, minutes = (int(part) for part in settings.mail_send_time.split(":"))
    return now.time() >= time(hours, minutes)


def run_once(engine: Engine, settings: Settings, now: datetime | None = None) -> list:
    """One check: every kind of mail that is due (a failure of one kind does not stop the others)."""
    from dailypapers.mail.alerts import send_alerts
    from dailypapers.mail.digests import send_digests

    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    if not due(settings, now):
        return []
    reports = []
    for name, job in (
        ("daily digest", lambda: send_digests(engine, settings, "daily", now=now)),
        ("weekly digest", lambda: send_digests(engine, settings, "weekly", now=now)),
        ("alerts", lambda: send_alerts(engine, settings, now=now)),
    ):
        try:
            report = job()
        except Exception:  # logged; the next check tries again
            log.exception("scheduled %s failed", name)
            continue
        reports.append(report)
        if report.sent or report.problems:
            log.info("; ".join(report.lines()[-1:]))
    return reports


def purge_once(engine: Engine) -> int:
    """Expired sessions, links and throttle counts out of the database; logged, never raised."""
    from dailypapers.accounts import purge_expired

    try:
        return purge_expired(engine)
    except Exception:  # the next round tries again
        log.exception("purge of expired sessions and links failed")
        return 0


class Periodic:
    """A daemon thread that calls ``tick`` every ``interval`` seconds (the first after FIRST_CHECK)
    until stopped; ``ticks`` counts the calls."""

    name = "dailypapers-periodic"

    def __init__(self, engine: Engine, interval: float):
        self.engine, self.interval = engine, interval
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.ticks = 0

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self.thread.start()

    def stop(self, timeout: float = 10) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout)
            self.thread = None

    def _loop(self) -> None:
        wait = min(FIRST_CHECK, self.interval)
        while not self.stopping.wait(wait):
            self.tick()
            self.ticks += 1
            wait = self.interval

    def tick(self) -> None:
        raise NotImplementedError


class Purger(Periodic):
    """Runs purge_once every PURGE_INTERVAL seconds."""

    name = "dailypapers-purge"

    def __init__(self, engine: Engine):
        super().__init__(engine, PURGE_INTERVAL)

    def tick(self) -> None:
        purge_once(self.engine)

    @property
    def rounds(self) -> int:
        return self.ticks


def run_during(app, worker) -> None:  # noqa: ANN001
    """Start ``worker`` (anything with start() and stop()) with the app's lifespan, stop it at the end."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app):  # noqa: ANN001, ANN202
        worker.start()
        try:
            async with inner(app) as state:
                yield state
        finally:
            worker.stop()

    app.router.lifespan_context = lifespan


class MailScheduler(Periodic):
    name = "dailypapers-mail"

    def __init__(self, engine: Engine, settings: Settings):
        super().__init__(engine, settings.mail_check_interval)
        self.settings = settings

    def tick(self) -> None:
        run_once(self.engine, self.settings)

    @property
    def checks(self) -> int:
        return self.ticks


def install(app, settings: Settings, engine: Engine) -> MailScheduler | None:  # noqa: ANN001
    """Run the purge for the app's lifetime, and the mail scheduler when DAILYPAPERS_MAIL_SCHEDULE is
    on (see module doc)."""
    app.state.purger = Purger(engine)
    run_during(app, app.state.purger)
    if not settings.mail_schedule_on:
        return None
    if not settings.smtp_url or not settings.base_url:
        log.error(
            "mail schedule is on but DAILYPAPERS_%s is not set: no digests or alerts will be sent",
            "SMTP_URL" if not settings.smtp_url else "BASE_URL",
        )
        return None
    scheduler = MailScheduler(engine, settings)
    app.state.mail_scheduler = scheduler
    run_during(app, scheduler)
    return scheduler
