"""The scheduler inside `dailypapers serve` on SQLite, the workers' mail job on PostgreSQL (several at
once, still exactly once), its settings, and the 0004 migration against the tables in schema.py."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from test_mail_delivery import load_sample, mail_settings, smtp  # noqa: F401 - fixture

from dailypapers import jobs
from dailypapers.config import get_settings
from dailypapers.jobs import queue
from dailypapers.mail import schedule
from dailypapers.mail import subscriptions as subs
from dailypapers.mail.subscription_spec import check_spec
from dailypapers.store.schema import metadata
from dailypapers.web.app import create_app

MAIL_TABLES = {"subscriptions", "mail_tokens", "send_log"}


def test_the_migration_builds_exactly_the_tables_of_schema_py(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    ours = [d for d in diff if any(table in repr(d) for table in MAIL_TABLES)]
    assert ours == []


def test_the_schedule_is_on_only_with_an_smtp_url_unless_set(monkeypatch):
    for name in ("DAILYPAPERS_MAIL_SCHEDULE", "DAILYPAPERS_SMTP_URL"):
        monkeypatch.delenv(name, raising=False)
    assert get_settings().mail_schedule_on is False
    assert get_settings(smtp_url="smtp://mail:25").mail_schedule_on is True
    monkeypatch.setenv("DAILYPAPERS_MAIL_SCHEDULE", "off")
    assert get_settings(smtp_url="smtp://mail:25").mail_schedule_on is False
    monkeypatch.setenv("DAILYPAPERS_MAIL_SCHEDULE", "on")
    assert get_settings().mail_schedule_on is True


def test_nothing_is_sent_before_the_send_time(engine, db_url, tmp_path, smtp):  # noqa: F811
    load_sample(engine)
    subs.subscribe(engine, check_spec("ada@example.org"), confirmed=True)
    settings = mail_settings(db_url, tmp_path, smtp, mail_send_time="06:00")
    assert schedule.run_once(engine, settings, now=datetime(2025, 10, 11, 5, 59)) == []
    reports = schedule.run_once(engine, settings, now=datetime(2025, 10, 11, 6, 0))
    assert [r.what for r in reports] == ["daily digest", "weekly digest", "alerts"]
    assert len(smtp.messages) == 1


def test_two_serving_workers_send_each_digest_once(engine, db_url, tmp_path, smtp, monkeypatch):  # noqa: F811
    load_sample(engine)
    addresses = [f"reader{n}@example.org" for n in range(6)]
    for address in addresses:
        subs.subscribe(engine, check_spec(address), confirmed=True)
    subs.subscribe(engine, check_spec("weekly@example.org", period="weekly"), confirmed=True)
    monkeypatch.setattr(schedule, "FIRST_CHECK", 0.01)
    settings = mail_settings(
        db_url, tmp_path, smtp, mail_schedule=True, mail_send_time="00:00", mail_check_interval=0.05
    )
    first, second = create_app(settings), create_app(settings)
    if jobs.uses_queue(engine):  # PostgreSQL: serve sends nothing; two workers send, still once each
        assert getattr(first.state, "mail_scheduler", None) is None
        assert queue.defer(settings, "mail") is not None and queue.defer(settings, "mail") is None
        workers = [threading.Thread(target=queue.run_worker, args=(settings,), kwargs={"wait": False})
                   for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        smtp.wait_for(len(addresses) + 1)
        jobs.work.send_mail(engine, settings)  # and a third sender finds nothing left to send
        assert Counter(m.to for m in smtp.messages) == {
            address: 1 for address in addresses + ["weekly@example.org"]}
        queue.close_all()
        return
    assert first.state.mail_scheduler is not second.state.mail_scheduler
    with TestClient(first), TestClient(second):
        smtp.wait_for(len(addresses) + 1)
        deadline = time.monotonic() + 30
        while min(first.state.mail_scheduler.checks, second.state.mail_scheduler.checks) < 3:
            assert time.monotonic() < deadline, "the schedulers did not run"
            time.sleep(0.05)
    assert first.state.mail_scheduler.thread is None  # stopped with the app
    assert Counter(m.to for m in smtp.messages) == {
        address: 1 for address in addresses + ["weekly@example.org"]
    }


@pytest.mark.parametrize(
    "overrides",
    [
        {"mail_schedule": False},
        {"smtp_url": None, "mail_schedule": None},
        {"mail_schedule": True, "base_url": None},
    ],
)
def test_no_scheduler_when_off_or_not_configured(db_url, tmp_path, overrides, smtp):  # noqa: F811
    app = create_app(mail_settings(db_url, tmp_path, smtp, **overrides))
    assert getattr(app.state, "mail_scheduler", None) is None
