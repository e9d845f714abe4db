"""Digests and alerts sent to a real SMTP server (aiosmtpd on 127.0.0.1), on SQLite and PostgreSQL:
valid MIME with both parts and the bulk-mail headers, one connection per run, retries on 4xx,
bouncing on 5xx, dry runs, the first digest, nothing twice, alerts of new papers only, and
exactly-once delivery across crashes (in-process and a real SIGKILL) and concurrent workers.

Other test_mail_* modules import the SMTP sink and the helpers from here.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from importlib.resources import files
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from dailypapers.config import get_settings
from dailypapers.ingest import ingest
from dailypapers.mail import deliver
from dailypapers.mail import subscriptions as subs
from dailypapers.mail.alerts import send_alerts
from dailypapers.mail.digests import send_digests
from dailypapers.mail.send_log import CLAIM_LEASE, claim, in_doubt, mark_handed, mark_sent
from dailypapers.mail.smtp import MailError, Mailer
from dailypapers.mail.subscription_spec import check_spec
from dailypapers.sources.hf_daily import parse_hf_json
from dailypapers.store.db import open_engine
from dailypapers.store.schema import send_log, subscriptions

SAMPLE = files("dailypapers.sample").joinpath("papers.json").read_bytes()
BIN = Path(sys.executable).with_name("dailypapers")
RUN_DAY = datetime(2025, 10, 11, 7, 0)  # the morning after the sample's last feed day (Fri Oct 10)


# --- a real SMTP server ------------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    peer: tuple

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.content, policy=email.policy.default)

    @property
    def to(self) -> str:
        return self.rcpt_tos[0]

    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content()

    def html(self) -> str:
        return self.message.get_body(("html",)).get_content()


class SmtpSink:
    """aiosmtpd handler that keeps what it accepts, and can defer, refuse or run a hook."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.data_attempts = 0
        self.defer = 0  # answer the next N messages "451 try later"
        self.refuse: dict[str, str] = {}  # address -> RCPT reply
        self.after_store = None  # called with the sink after a message is kept, before the 250
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        with self.lock:
            self.data_attempts += 1
            if self.defer:
                self.defer -= 1
                return "451 4.3.0 try later"
            self.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, session.peer)
            )
        if self.after_store is not None:
            self.after_store(self)
        return "250 OK"

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_tos]

    def wait_for(self, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)


def free_port() -> int:
    """Controller(port=0) cannot report its port: take a free one from the OS first."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    sink.port = controller.port
    sink.url = f"smtp://127.0.0.1:{controller.port}"
    yield sink
    controller.stop()


def mail_settings(db_url: str, tmp_path, smtp: SmtpSink | None = None, **overrides):
    values = dict(
        database_url=db_url,
        data_dir=tmp_path,
        base_url="http://testserver",
        smtp_url=smtp.url if smtp else None,
        embedding_runtime="off",
        mail_schedule=False,
        smtp_retry_delay=0.01,
        mail_from="Daily Papers <digest@papers.example.org>",
    )
    return get_settings(**(values | overrides))


def load_sample(engine) -> None:
    ingest(engine, parse_hf_json(SAMPLE))


def add_paper(engine, paper_id: str, title: str, summary: str, feed_day: datetime | None = None) -> None:
    where, template = next(iter(parse_hf_json(SAMPLE)))
    paper = replace(
        template, id=paper_id, title=title, summary=summary, submitted_on_daily_at=feed_day, github_repo=None
    )
    ingest(engine, [(f"test paper {paper_id}", paper)])


def subscribe(engine, address: str, **spec) -> dict:
    return subs.subscribe(engine, check_spec(address, **spec), confirmed=True).subscription


def log_rows(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(send_log).order_by(send_log.c.pk)).mappings()]


def link(text: str, path: str) -> str:
    found = re.search(rf"http://testserver({re.escape(path)}[A-Za-z0-9_-]+)", text)
    assert found, f"no {path} link in:\n{text}"
    return found.group(1)


# --- composition -------------------------------------------------------------------------------------


def test_a_digest_is_valid_mime_with_both_parts_and_the_bulk_headers(engine, db_url, tmp_path, smtp):
    load_sample(engine)
    subscribe(engine, "ada@example.org")
    report = send_digests(engine, mail_settings(db_url, tmp_path, smtp), "daily", now=RUN_DAY)
    assert [p.email for p in report.sent] == ["ada@example.org"]

    (received,) = smtp.messages
    assert received.mail_from == "digest@papers.example.org" and received.rcpt_tos == ["ada@example.org"]
    message = received.message
    assert message["Subject"] == "Trending papers for Fri Oct 10: 9 papers"
    assert message["From"] == "Daily Papers <digest@papers.example.org>"
    assert message["To"] == "ada@example.org"
    assert re.fullmatch(r"<[^<>@\s]+@papers\.example\.org>", message["Message-ID"].strip())
    assert message["Date"] == "Sat, 11 Oct 2025 07:00:00 +0000"
    unsubscribe_url = message["List-Unsubscribe"].strip()  # folded: a long header continues on the next line
    assert re.fullmatch(r"<http://testserver/unsubscribe/[A-Za-z0-9_-]{43}>", unsubscribe_url)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "Trending papers digest <digest.testserver>"
    assert message.get_content_type() == "multipart/alternative" and message["MIME-Version"] == "1.0"
    parts = [(p.get_content_type(), p.get_content_charset()) for p in message.iter_parts()]
    assert parts == [("text/plain", "utf-8"), ("text/html", "utf-8")]
    assert received.content.isascii()  # 7-bit on the wire: quoted-printable bodies, encoded headers
    assert all(len(line) <= 998 for line in received.content.split(b"\r\n"))

    text, html = received.text(), received.html()
    for part in (text, html):
        assert len(re.findall(r"http://testserver/papers/\d{4}\.\d{5}", part)) >= 9
        assert "Robot Utility Models: General Policies for Zero-Shot Deployment in New Environments" in part
        assert "10 authors" in part and "▲ 2" in part  # number of authors, upvotes
        assert "http://testserver/papers/date/2025-10-10" in part
        assert "http://testserver/subscriptions/manage/" in part  # the manage link in every mail
    assert "Unsubscribe with one click: http://testserver/unsubscribe/" in text
    assert unsubscribe_url.strip("<>") in text and unsubscribe_url.strip("<>") in html
    assert "generalize…" in text  # the abstract is an excerpt, cut at a word
    assert html.lstrip().startswith("<!doctype html>") and "<script" not in html


def test_titles_are_escaped_in_html_and_headers_cannot_be_injected(engine, db_url, tmp_path, smtp):
    from dailypapers.mail import compose

    load_sample(engine)
    add_paper(
        engine,
        "dp-0000000000aa",
        "<script>alert(1)</script> & “quotes”",
        "Nothing else.",
        datetime(2025, 10, 10),
    )
    subscribe(engine, "ada@example.org")
    send_digests(engine, mail_settings(db_url, tmp_path, smtp), "daily", now=RUN_DAY)
    html = smtp.messages[0].html()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; “quotes”" in html
    with pytest.raises(ValueError):
        compose.build_message("a@example.org", "a@b.org\r\nBcc: x@y.org", "s", "t")


def test_the_password_reset_mail_still_goes_out(tmp_path, smtp):
    from dailypapers.mail.smtp import send_plain

    send_plain(mail_settings("sqlite://", tmp_path, smtp), "ada@example.org", "Reset your password", "A link.")
    (mail,) = smtp.messages
    assert mail.message["Subject"] == "Reset your password" and mail.text().strip() == "A link."
    assert mail.message["Date"] and mail.message["Message-ID"].endswith("@papers.example.org>")


# --- what a run sends -----------------------------------------------------------------------------------


def test_first_digest_covers_the_latest_period_and_a_second_run_sends_nothing(engine, db_url, tmp_path, smtp):
    load_sample(engine)
    settings = mail_settings(db_url, tmp_path, smtp)
    subscribe(engine, "ada@example.org")
    subscribe(engine, "bob@example.org", period="weekly")

    first = send_digests(engine, settings, "daily")  # a fresh install today: the latest day, Oct 10
    assert [(p.email, p.subject) for p in first.sent] == [
        ("ada@example.org", "Trending papers for Fri Oct 10: 9 papers")
    ]
    weekly = send_digests(engine, settings, "weekly")
    assert [(p.email, p.subject) for p in weekly.sent] == [
        ("bob@example.org", "Trending papers for the week of Oct 6–12: top 20 of 49 papers")
    ]
    assert (
        "All 49 papers of week 41, 2025 (Oct 6–12): http://testserver/papers/week/2025-W41"
        in smtp.to("bob@example.org")[0].text()
    )

    assert send_digests(engine, settings, "daily").sent == []
    assert send_digests(engine, settings, "weekly").sent == []
    assert len(smtp.messages) == 2

    # A new feed day: the next run sends it (once), and only to the daily subscriber.
    add_paper(
        engine, "dp-0000000000bb", "Monday's paper on reward models", "A summary.", datetime(2025, 10, 13)
    )
    assert send_digests(engine, settings, "daily", now=datetime(2025, 10, 13, 9)).sent == []  # not ended yet
    second = send_digests(engine, settings, "daily", now=datetime(2025, 10, 14, 7))
    assert [(p.email, p.subject) for p in second.sent] == [
        ("ada@example.org", "Trending papers for Mon Oct 13: 1 paper")
    ]
    assert send_digests(engine, settings, "daily", now=datetime(2025, 10, 14, 8)).sent == []
    assert [r["period_key"] for r in log_rows(engine)] == [
        "daily:2025-10-10",
        "weekly:2025-W41",
        "daily:2025-10-13",
    ]
    assert {r["status"] for r in log_rows(engine)} == {"sent"}


def test_nothing_is_sent_to_pending_paused_or_unsubscribed_addresses(engine, db_url, tmp_path, smtp):
    load_sample(engine)
    subs.subscribe(engine, check_spec("pending@example.org"))
    paused = subscribe(engine, "paused@example.org")
    subs.change(engine, paused["pk"], "pause")
    gone = subscribe(engine, "gone@example.org")
    subs.change(engine, gone["pk"], "unsubscribe")
    report = send_digests(engine, mail_settings(db_url, tmp_path, smtp), "daily", now=RUN_DAY)
    assert report.sent == [] and smtp.messages == []


def test_dry_run_prints_what_would_go_and_sends_and_writes_nothing(engine, db_url, tmp_path, smtp):
    load_sample(engine)
    subscribe(engine, "ada@example.org")
    alert = subscribe(engine, "bob@example.org", kind="alert", query="policy generalization")
    settings = mail_settings(db_url, tmp_path, smtp)
    report = send_digests(engine, settings, "daily", now=RUN_DAY, dry_run=True)
    assert report.lines()[:2] == [
        "would send to ada@example.org: Trending papers for Fri Oct 10: 9 papers",
        "    1. Robot Utility Models: General Policies for Zero-Shot Deployment in New Environments",
    ]
    assert report.lines()[-1] == "daily digest: would send 1 message"
    alerts = send_alerts(engine, settings, dry_run=True)
    assert [p.email for p in alerts.planned] == ["bob@example.org"]
    assert alerts.planned[0].subject.endswith("new papers for “policy generalization”")
    assert smtp.messages == [] and smtp.data_attempts == 0 and log_rows(engine) == []
    assert subs.get(engine, alert["pk"])["alert_after_pk"] is None
    # and without any SMTP server configured at all
    no_smtp = mail_settings(db_url, tmp_path, None)
    assert len(send_digests(engine, no_smtp, "daily", now=RUN_DAY, dry_run=True).planned) == 1
    with pytest.raises(MailError, match="DAILYPAPERS_SMTP_URL is not set"):
        send_digests(engine, no_smtp, "daily", now=RUN_DAY)


def test_an_alert_sends_only_papers_ingested_after_the_previous_alert(engine, db_url, tmp_path, smtp):
    load_sample(engine)
    settings = mail_settings(db_url, tmp_path, smtp)
    sub = subscribe(engine, "ada@example.org", kind="alert", query="policy generalization")
    subscribe(engine, "bob@example.org", kind="alert", query="zzzunmatched")

    first = send_alerts(engine, settings)  # the first alert: what arrived in the day before confirming
    assert [p.email for p in first.sent] == ["ada@example.org"]
    assert re.fullmatch(r"20 of \d+ new papers for “policy generalization”", first.sent[0].subject)
    assert send_alerts(engine, settings).sent == []  # once a day

    add_paper(
        engine,
        "dp-0000000000c1",
        "Policy generalization across embodiments",
        "We study how a policy trained on one robot generalizes to others.",
    )
    add_paper(engine, "dp-0000000000c2", "A survey of protein folding", "Nothing about the alert's words.")
    tomorrow = datetime.utcnow() + timedelta(days=1)
    second = send_alerts(engine, settings, now=tomorrow)
    assert [(p.email, p.subject, p.papers) for p in second.sent] == [
        (
            "ada@example.org",
            "1 new paper for “policy generalization”",
            ["Policy generalization across embodiments"],
        )
    ]
    mail = smtp.to("ada@example.org")[-1]
    assert mail.message["Subject"] == "1 new paper for “policy generalization”"
    assert "http://testserver/papers/dp-0000000000c1" in mail.text()
    assert "http://testserver/search?q=policy+generalization&sort=newest" in mail.text()
    assert mail.message["List-Id"] == "Saved-search alerts <alert.testserver>"
    assert send_alerts(engine, settings, now=tomorrow + timedelta(days=1)).sent == []  # nothing new
    assert smtp.to("bob@example.org") == []
    assert subs.get(engine, sub["pk"])["alert_after_pk"] is not None


def test_alert_filters_category_organization_and_code(engine, db_url, tmp_path, smtp):
    load_sample(engine)
    subscribe(engine, "meta@example.org", kind="alert", organization="facebook")
    subscribe(engine, "code@example.org", kind="alert", query="agent", has_code=True)
    report = send_alerts(engine, mail_settings(db_url, tmp_path, smtp))
    by_address = {p.email: p for p in report.sent}
    assert by_address["meta@example.org"].subject == "1 new paper for from facebook"
    assert by_address["meta@example.org"].papers == ["Agent Learning via Early Experience"]
    meta_mail = smtp.to("meta@example.org")[0]
    assert "AI at Meta · ▲ 2" in meta_mail.text() and "AI at Meta · ▲ 2" in meta_mail.html()  # organization
    assert by_address["code@example.org"].subject.endswith("for “agent” (with code)")


# --- SMTP behaviour ------------------------------------------------------------------------------------


def test_one_connection_serves_the_whole_run(engine, db_url, tmp_path, smtp):
    load_sample(engine)
    for n in range(5):
        subscribe(engine, f"reader{n}@example.org")
    settings = mail_settings(db_url, tmp_path, smtp)
    with Mailer.from_settings(settings) as mailer:
        report = send_digests(engine, settings, "daily", now=RUN_DAY, mailer=mailer)
    assert len(report.sent) == 5 and mailer.connections == 1
    assert len({m.peer for m in smtp.messages}) == 1


def test_a_4xx_is_retried_with_backoff(engine, db_url, tmp_path, smtp):
    load_sample(engine)
    subscribe(engine, "ada@example.org")
    smtp.defer = 1
    waits = []
    settings = mail_settings(db_url, tmp_path, smtp, smtp_retry_delay=0.5)
    with Mailer.from_settings(settings, sleep=waits.append) as mailer:
        report = send_digests(engine, settings, "daily", now=RUN_DAY, mailer=mailer)
    assert [p.email for p in report.sent] == ["ada@example.org"]
    assert smtp.data_attempts == 2 and len(smtp.messages) == 1 and waits == [0.5]
    assert [r["status"] for r in log_rows(engine)] == ["sent"]


def test_a_4xx_through_every_retry_is_sent_by_the_next_run(engine, db_url, tmp_path, smtp):
    load_sample(engine)
    subscribe(engine, "ada@example.org")
    settings = mail_settings(db_url, tmp_path, smtp, smtp_retries=2)
    smtp.defer = 3
    report = send_digests(engine, settings, "daily", now=RUN_DAY)
    assert report.sent == [] and report.deferred[0][0] == "ada@example.org" and "451" in report.deferred[0][1]
    assert [(r["status"], r["handed_at"]) for r in log_rows(engine)] == [("failed", None)]
    again = send_digests(engine, settings, "daily", now=RUN_DAY + timedelta(minutes=5))
    assert [p.email for p in again.sent] == ["ada@example.org"] and len(smtp.messages) == 1
    assert [(r["status"], r["attempts"]) for r in log_rows(engine)] == [("sent", 2)]


def test_a_5xx_marks_the_address_bouncing_and_stops_mail_to_it(engine, db_url, tmp_path, smtp):
    load_sample(engine)
    bob_digest = subscribe(engine, "bob@example.org")
    bob_alert = subscribe(engine, "bob@example.org", kind="alert", query="policy")
    subscribe(engine, "ada@example.org")
    smtp.refuse["bob@example.org"] = "550 5.1.1 no such user"
    settings = mail_settings(db_url, tmp_path, smtp)
    report = send_digests(engine, settings, "daily", now=RUN_DAY)
    assert [p.email for p in report.sent] == ["ada@example.org"]
    assert report.bounced == [("bob@example.org", "RCPT TO: 550 5.1.1 no such user")]
    assert subs.get(engine, bob_digest["pk"])["status"] == "bouncing"
    assert subs.get(engine, bob_alert["pk"])["status"] == "bouncing"
    assert subs.get(engine, bob_digest["pk"])["last_error"] == "RCPT TO: 550 5.1.1 no such user"
    smtp.refuse.clear()
    assert send_alerts(engine, settings).sent == []
    assert send_digests(engine, settings, "daily", now=datetime(2025, 10, 14, 7)).sent == []
    assert smtp.to("bob@example.org") == []
    # Subscribing again (double opt-in) is the way back.
    outcome = subs.subscribe(engine, check_spec("bob@example.org"))
    assert outcome.action == "confirm" and subs.confirm(engine, outcome.token).ok


def test_an_unreachable_server_stops_the_run_with_one_line(engine, db_url, tmp_path):
    load_sample(engine)
    subscribe(engine, "ada@example.org")
    settings = mail_settings(
        db_url, tmp_path, None, smtp_url=f"smtp://127.0.0.1:{free_port()}", smtp_retries=1
    )
    with pytest.raises(
        MailError, match=r"^cannot reach the SMTP server: .*\(DAILYPAPERS_SMTP_URL\)$"
    ):
        send_digests(engine, settings, "daily", now=RUN_DAY)
    assert [r["status"] for r in log_rows(engine)] == ["failed"]  # claimed back by the next run


# --- exactly once -------------------------------------------------------------------------------------


class Killed(BaseException):
    """Stands for kill -9: nothing in the code under test catches it."""


def _subscribers(engine, n: int) -> list[str]:
    addresses = [f"reader{i:02d}@example.org" for i in range(n)]
    for address in addresses:
        subscribe(engine, address)
    return addresses


def _crash_on(monkeypatch, name: str, call: int) -> None:
    """Kill the run at a send-log step, patched where deliver.py calls it."""
    original = getattr(deliver, name)
    calls = Counter()

    def wrapper(*args, **kwargs):
        calls[name] += 1
        if calls[name] == call:
            raise Killed(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(deliver, name, wrapper)


def test_a_crash_after_the_server_accepted_never_sends_that_message_twice(
    engine, db_url, tmp_path, smtp, monkeypatch
):
    load_sample(engine)
    addresses = _subscribers(engine, 6)
    settings = mail_settings(db_url, tmp_path, smtp)
    _crash_on(monkeypatch, "mark_sent", 3)  # the third message is accepted, then the process "dies"
    with pytest.raises(Killed):
        send_digests(engine, settings, "daily", now=RUN_DAY)
    monkeypatch.undo()
    assert len(smtp.messages) == 3
    (doubtful,) = in_doubt(engine)
    assert doubtful["email"] == addresses[2] and doubtful["status"] == "sending"

    later = RUN_DAY + CLAIM_LEASE * 3
    rerun = send_digests(engine, settings, "daily", now=later)
    assert [p.email for p in rerun.sent] == addresses[3:]
    assert send_digests(engine, settings, "daily", now=later).sent == []
    assert Counter(m.to for m in smtp.messages) == {address: 1 for address in addresses}


def test_a_crash_before_the_message_was_handed_over_is_sent_after_the_lease(
    engine, db_url, tmp_path, smtp, monkeypatch
):
    load_sample(engine)
    addresses = _subscribers(engine, 5)
    settings = mail_settings(db_url, tmp_path, smtp)
    _crash_on(monkeypatch, "mark_handed", 2)  # claimed and composed, never given to the server
    with pytest.raises(Killed):
        send_digests(engine, settings, "daily", now=RUN_DAY)
    monkeypatch.undo()
    assert [m.to for m in smtp.messages] == addresses[:1]

    soon = send_digests(engine, settings, "daily", now=RUN_DAY + timedelta(minutes=1))
    assert [p.email for p in soon.sent] == addresses[2:]  # the abandoned claim waits out its lease
    assert in_doubt(engine) == []
    late = send_digests(engine, settings, "daily", now=RUN_DAY + CLAIM_LEASE + timedelta(minutes=1))
    assert [p.email for p in late.sent] == [addresses[1]]
    assert Counter(m.to for m in smtp.messages) == {address: 1 for address in addresses}
    retried = [r for r in log_rows(engine) if r["email"] == addresses[1]][0]
    assert retried["attempts"] == 2 and retried["status"] == "sent"
    first_id = smtp.to(addresses[1])[0].message["Message-ID"]
    assert retried["message_id"] == first_id  # the retry kept the claim's Message-ID


def test_an_alert_crash_keeps_its_papers_and_its_cursor(engine, db_url, tmp_path, smtp, monkeypatch):
    load_sample(engine)
    subscribe(engine, "ada@example.org", kind="alert", query="policy generalization")
    settings = mail_settings(db_url, tmp_path, smtp)
    _crash_on(monkeypatch, "mark_handed", 1)
    now = datetime.utcnow()
    with pytest.raises(Killed):
        send_alerts(engine, settings, now=now)
    monkeypatch.undo()
    (row,) = log_rows(engine)
    assert send_alerts(engine, settings, now=now + timedelta(minutes=1)).sent == []
    report = send_alerts(engine, settings, now=now + CLAIM_LEASE + timedelta(minutes=1))
    assert [p.subject for p in report.sent] == [row["subject"]]
    assert len(smtp.messages) == 1 and [r["status"] for r in log_rows(engine)] == ["sent"]


def test_a_real_kill_mid_run_then_a_rerun_delivers_each_message_exactly_once(engine, db_url, tmp_path, smtp):
    """`dailypapers digest send` as a process, SIGKILLed while the server takes its third message."""
    load_sample(engine)
    addresses = _subscribers(engine, 8)
    engine.dispose()
    settings = mail_settings(db_url, tmp_path, smtp)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DAILYPAPERS_")} | {
        "DAILYPAPERS_DATABASE_URL": db_url,
        "DAILYPAPERS_DATA_DIR": str(tmp_path),
        "DAILYPAPERS_BASE_URL": "http://testserver",
        "DAILYPAPERS_SMTP_URL": smtp.url,
        "DAILYPAPERS_EMBEDDING_RUNTIME": "off",
        "DAILYPAPERS_SMTP_RETRIES": "0",
    }
    process = subprocess.Popen(
        [str(BIN), "digest", "send", "--period", "daily"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    def kill_at_third(sink: SmtpSink) -> None:
        if len(sink.messages) == 3:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(30)

    smtp.after_store = kill_at_third
    process.wait(120)
    assert process.returncode == -signal.SIGKILL
    smtp.after_store = None
    assert len(smtp.messages) == 3

    engine = open_engine(db_url)
    try:
        statuses = Counter(r["status"] for r in log_rows(engine))
        assert statuses == {"sent": 2, "sending": 1}
        rerun = send_digests(engine, settings, "daily")
        assert sorted(p.email for p in rerun.sent) == addresses[3:]
        assert [r["email"] for r in in_doubt(engine)] == [addresses[2]]
        assert send_digests(engine, settings, "daily", now=datetime.utcnow() + CLAIM_LEASE * 2).sent == []
        assert Counter(m.to for m in smtp.messages) == {address: 1 for address in addresses}
    finally:
        engine.dispose()


def test_concurrent_workers_send_each_message_once(engine, db_url, tmp_path, smtp):
    load_sample(engine)
    addresses = _subscribers(engine, 12)
    settings = mail_settings(db_url, tmp_path, smtp)
    reports, errors = [], []

    def worker() -> None:
        own = open_engine(db_url)
        try:
            reports.append(send_digests(own, settings, "daily", now=RUN_DAY))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert sum(len(r.sent) for r in reports) == len(addresses)
    assert Counter(m.to for m in smtp.messages) == {address: 1 for address in addresses}


def test_a_claim_taken_over_by_another_worker_is_not_sent_by_the_first(engine, db_url, tmp_path):
    load_sample(engine)
    sub = subscribe(engine, "ada@example.org")

    def claim_day(message_id, now):  # noqa: ANN001, ANN202 - the same day's digest, claimed by a worker
        return claim(engine, sub, "daily:2025-10-10", paper_pks=[1], total=1, subject="s",
                     message_id=message_id, now=now)

    first = claim_day("<a@b>", RUN_DAY)
    assert claim_day("<c@d>", RUN_DAY) is None
    second = claim_day("<c@d>", RUN_DAY + CLAIM_LEASE + timedelta(seconds=1))
    assert second is not None and second.message_id == "<a@b>" and second.attempts == 2
    assert not mark_handed(engine, first, RUN_DAY)  # the first worker lost its lease
    assert mark_handed(engine, second, RUN_DAY) and mark_sent(engine, second, RUN_DAY)
    with engine.begin() as conn:
        conn.execute(update(subscriptions).values(status="paused"))
    assert (
        claim(
            engine,
            sub,
            "daily:2025-10-11",
            paper_pks=[],
            total=0,
            subject="s",
            message_id="<e@f>",
            now=RUN_DAY,
        )
        is None
    )  # paused meanwhile
