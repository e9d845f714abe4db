"""What every mail run shares: sending one claimed message and recording the server's answer
(see send_log.py), the SMTP session for the run, and the report of what went to whom."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Engine

from dailypapers.config import Settings
from dailypapers.mail import compose
from dailypapers.mail.clock import utc_now
from dailypapers.mail.compose import DigestPeriod, Links
from dailypapers.mail.send_log import Claim, mark_failed, mark_handed, mark_sent
from dailypapers.mail.smtp import InDoubt, MailError, Mailer, Permanent, Transient
from dailypapers.mail.subscriptions import mark_bouncing
from dailypapers.mail.tokens import new_token
from dailypapers.store import queries

log = logging.getLogger("dailypapers.mail")


@dataclass
class Planned:
    email: str
    subject: str
    papers: list[str]  # titles, in the order of the mail


@dataclass
class RunReport:
    what: str
    dry_run: bool = False
    period: DigestPeriod | None = None
    note: str = ""
    planned: list[Planned] = field(default_factory=list)  # a dry run: what would go to whom
    sent: list[Planned] = field(default_factory=list)
    deferred: list[tuple[str, str]] = field(default_factory=list)  # (address, reason): retried next run
    bounced: list[tuple[str, str]] = field(default_factory=list)
    in_doubt: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0  # claimed by another worker or a crashed run still within its lease

    @property
    def problems(self) -> int:
        return len(self.deferred) + len(self.bounced) + len(self.in_doubt)

    def lines(self) -> list[str]:
        out = []
        if self.note:
            out.append(f"{self.what}: {self.note}")
        for p in self.planned:
            out.append(f"would send to {p.email}: {p.subject}")
            out += [f"    {n}. {title}" for n, title in enumerate(p.papers, 1)]
        for p in self.sent:
            out.append(f"sent to {p.email}: {p.subject}")
        for email, reason in self.deferred:
            out.append(f"deferred (will retry on the next run) {email}: {reason}")
        for email, reason in self.bounced:
            out.append(f"bounced, no more mail to {email}: {reason}")
        for email, reason in self.in_doubt:
            out.append(f"in doubt (not resent) {email}: {reason}")
        verb = "would send" if self.dry_run else "sent"
        count = len(self.planned) if self.dry_run else len(self.sent)
        out.append(
            f"{self.what}: {verb} {count} message{'' if count == 1 else 's'}"
            + (f", {self.skipped} skipped (taken by another run)" if self.skipped else "")
            + (f", {self.problems} not delivered" if self.problems else "")
        )
        return out


def site_address(settings: Settings, dry_run: bool, mailer: Mailer | None = None) -> str:
    """The site's address for links; a real run also checks here that it can send at all."""
    if not dry_run and mailer is None and not settings.smtp_url:
        Mailer.from_settings(settings)  # raises MailError naming the setting
    if settings.base_url:
        return settings.base_url.rstrip("/")
    if dry_run:
        return "http://localhost:8000"
    raise MailError(
        "DAILYPAPERS_BASE_URL is not set: links in mail need the site's public address, "
        "e.g. https://papers.example.org"
    )


@contextmanager
def run_mailer(settings: Settings, mailer: Mailer | None) -> Iterator[Mailer]:
    """The given mailer (left open for its owner), or one for this run, closed at its end."""
    if mailer is not None:
        yield mailer
        return
    with Mailer.from_settings(settings) as own:
        yield own


def send_claimed(
    engine: Engine,
    settings: Settings,
    smtp: Mailer,
    c: Claim,
    render: Callable[[dict, list[dict], int, Links], tuple[str, str]],
    base_url: str,
    now: datetime,
    report: RunReport,
) -> None:
    """Compose and send one claimed message, and record what the server said."""
    sub = c.subscription
    minted = utc_now()  # links expire by the wall clock, whatever moment the run acts as
    with engine.begin() as conn:
        manage = new_token(conn, sub["pk"], "manage", minted)
        unsubscribe = new_token(conn, sub["pk"], "unsubscribe", minted)
    links = Links(
        base_url, f"{base_url}/subscriptions/manage/{manage}", f"{base_url}/unsubscribe/{unsubscribe}"
    )
    rows = queries.papers_by_pk(engine, c.paper_pks)
    text, html = render(sub, rows, c.total, links)
    message = compose.build_message(
        settings.mail_from,
        sub["email"],
        c.subject,
        text,
        html,
        message_id=c.message_id,
        unsubscribe_url=links.unsubscribe,
        list_id=compose.list_id(sub["kind"], base_url),
        now=now,
    )
    planned = Planned(sub["email"], c.subject, [r["title"] for r in rows])
    if not mark_handed(engine, c, now):
        report.skipped += 1  # our lease ran out and another run took the message over
        return
    try:
        smtp.send(message, sub["email"])
    except Permanent as exc:
        mark_failed(engine, c, "bounced", str(exc))
        mark_bouncing(engine, sub["email"], str(exc), now=now)
        report.bounced.append((sub["email"], str(exc)))
        log.warning("bounced, no more mail to %s: %s", sub["email"], exc)
        return
    except Transient as exc:
        mark_failed(engine, c, "failed", str(exc))
        report.deferred.append((sub["email"], str(exc)))
        return
    except InDoubt as exc:
        mark_failed(engine, c, "in_doubt", str(exc))
        report.in_doubt.append((sub["email"], str(exc)))
        return
    except MailError as exc:
        mark_failed(engine, c, "failed", str(exc))
        raise
    mark_sent(engine, c, now)
    report.sent.append(planned)
