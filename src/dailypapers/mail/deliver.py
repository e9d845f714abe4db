"""Delivery: digests and alerts over SMTP, each message exactly once per (subscription, period key).

The send log (``send_log``, unique on subscription and period key) carries every message through
three commits:

1. **claim** — a row in state ``sending`` is inserted in its own transaction before anything is
   composed. A second worker (or a rerun) inserting the same key fails on the unique constraint and
   skips it. For an alert, the same transaction moves the subscription's cursor (compare-and-set),
   and the row keeps the papers it will show, so a retry sends the same mail.
2. **handed** — ``handed_at`` is committed just before the message goes to the SMTP server.
3. **sent** — written after the server answered 250 to the message.

What a crash leaves behind, and what the next run does with it:

- no row: never claimed; sent normally.
- ``sending`` without ``handed_at``: the worker died before talking to the server about this
  message, so nobody has it. Once the claim is older than CLAIM_LEASE (the worker is surely gone),
  the next run takes it over (same papers, same Message-ID) and sends it.
- ``sending`` with ``handed_at``: the worker died between giving the message to the server and
  recording the answer. The server may have accepted it. Such a row is **never resent**
  (at-most-once for that single message, a window of milliseconds); ``dailypapers subscriptions``
  lists it as in doubt. An operator who knows it was lost deletes the row to have it sent again.
  The same goes for a connection lost after the message's final dot (status ``in_doubt``).
- ``failed`` (the server deferred it with 4xx through every retry, or the run stopped): not
  delivered, so any later run claims it again.
- ``bounced`` (a permanent 5xx): the address is marked bouncing and gets nothing more.

Retries reuse the claim's Message-ID, so even a duplicate would be recognisable as one.
"""

from __future__ import annotations

import logging
import re
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import parseaddr

from sqlalchemy import and_, exists, func, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from dailypapers.config import Settings
from dailypapers.mail import compose
from dailypapers.mail import subscriptions as subs
from dailypapers.mail import tokens
from dailypapers.mail.subscription_spec import PERIODS, filters_of
from dailypapers.mail.compose import DigestPeriod, Links
from dailypapers.mail.send import connect
from dailypapers.ranking import trending_score
from dailypapers.store import queries
from dailypapers.store.schema import papers, send_log, subscriptions

log = logging.getLogger("dailypapers.mail")

CLAIM_LEASE = timedelta(minutes=15)  # a claim not handed to the server after this long is taken over
DIGEST_SIZE = 20  # papers in a digest (the subject says how many the period had)
ALERT_SIZE = 20
PERIOD_LENGTH = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}


class MailError(RuntimeError):
    """Sending cannot go on (no SMTP URL, server unreachable, sender refused): one line for the operator."""


class Transient(Exception):
    """The server deferred the message (4xx) or the connection dropped before the message was sent."""


class Permanent(Exception):
    """The server refused the recipient or the message for good (5xx)."""


class InDoubt(Exception):
    """The connection was lost after the whole message was sent: the server may have accepted it."""


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc).replace(tzinfo=None)
    return now.astimezone(timezone.utc).replace(tzinfo=None) if now.tzinfo else now


# --- SMTP ------------------------------------------------------------------------------------------


class Mailer:
    """One SMTP connection, opened on the first message and reused for the rest of a run.

    ``send`` retries a deferral (4xx) or a dropped connection ``retries`` times, waiting
    ``retry_delay`` seconds and doubling; it raises Permanent for a 5xx, Transient when the retries
    are used up, InDoubt when the outcome cannot be known, MailError when no mail can go at all.
    """

    def __init__(
        self,
        url: str,
        mail_from: str,
        *,
        retries: int = 3,
        retry_delay: float = 2.0,
        timeout: float = 30,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.url = url
        self.sender = parseaddr(mail_from)[1] or mail_from
        self.retries = retries
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.sleep = sleep
        self.connections = 0  # opened so far (tests check that a run reuses one)
        self._smtp: smtplib.SMTP | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> Mailer:
        if not settings.smtp_url:
            raise MailError(
                "DAILYPAPERS_SMTP_URL is not set: set it to smtp://user:password@host:587 "
                "(or use --dry-run to see what would be sent)"
            )
        options = {"retries": settings.smtp_retries, "retry_delay": settings.smtp_retry_delay} | overrides
        return cls(settings.smtp_url, settings.mail_from, **options)  # type: ignore[arg-type]

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def _server(self) -> smtplib.SMTP:
        if self._smtp is None:
            try:
                self._smtp = connect(self.url, timeout=self.timeout)
            except ValueError as exc:
                raise MailError(str(exc)) from None
            except smtplib.SMTPAuthenticationError as exc:
                raise MailError(f"the SMTP server refused the user name or password: {_reply(exc)}") from None
            except (smtplib.SMTPException, OSError) as exc:
                raise Transient(f"cannot reach the SMTP server: {exc}") from None
            self.connections += 1
        return self._smtp

    def send(self, message: EmailMessage, to: str) -> None:
        attempt = 0
        while True:
            try:
                self._transmit(message, to)
                return
            except Transient as exc:
                if attempt >= self.retries:
                    if str(exc).startswith("cannot reach"):
                        raise MailError(f"{exc} (DAILYPAPERS_SMTP_URL)") from None
                    raise
                delay = self.retry_delay * 2**attempt
                attempt += 1
                log.info("deferred (%s); retry %d of %d in %.1f s", exc, attempt, self.retries, delay)
                self.sleep(delay)

    def _refused(self, stage: str, code: int, text: bytes | str) -> Exception:
        """Classify a reply and leave the connection ready for the next message."""
        reply = f"{code} {text.decode('utf-8', 'replace') if isinstance(text, bytes) else text}".strip()
        if code == 421 or code < 0:
            self._drop()
        else:
            try:
                self._smtp.rset()  # type: ignore[union-attr]
            except (smtplib.SMTPException, OSError):
                self._drop()
        if 400 <= code < 500 or code < 0:
            return Transient(f"{stage}: {reply}")
        if stage == "MAIL FROM":
            return MailError(
                f"the SMTP server refused the sender {self.sender}: {reply} (DAILYPAPERS_MAIL_FROM)"
            )
        return Permanent(f"{stage}: {reply}")

    def _transmit(self, message: EmailMessage, to: str) -> None:
        server = self._server()
        international = not (to.isascii() and self.sender.isascii())
        options: list[str] = []
        if international:
            if not server.has_extn("smtputf8"):
                raise Permanent(f"the SMTP server does not accept international addresses like {to}")
            options = ["SMTPUTF8", "BODY=8BITMIME"]
        data = message.as_bytes(policy=SMTP.clone(utf8=international))
        try:
            code, text = server.mail(self.sender, options)
            if code != 250:
                raise self._refused("MAIL FROM", code, text)
            code, text = server.rcpt(to)
            if code not in (250, 251):
                raise self._refused("RCPT TO", code, text)
            server.putcmd("data")
            code, text = server.getreply()
            if code != 354:
                raise self._refused("DATA", code, text)
            body = re.sub(rb"(?m)^\.", b"..", data)
            if not body.endswith(b"\r\n"):
                body += b"\r\n"
            server.send(body + b".\r\n")
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()  # the message did not get through: safe to send again
            raise Transient(f"connection lost: {exc}") from None
        try:
            code, text = server.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise InDoubt(f"connection lost after the message was sent: {exc}") from None
        if code != 250:
            raise self._refused("message", code, text)


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = (
        exc.smtp_error.decode("utf-8", "replace")
        if isinstance(exc.smtp_error, bytes)
        else str(exc.smtp_error)
    )
    return f"{exc.smtp_code} {text}"


def send_now(settings: Settings, message: EmailMessage, to: str) -> bool:
    """Send one transactional message (a confirmation) on its own connection; False without SMTP.

    Raises MailError, Transient or Permanent when it could not go.
    """
    if not settings.smtp_url:
        log.warning(
            "no DAILYPAPERS_SMTP_URL: this message was not sent:\n%s",
            message.get_body(("plain",)).get_content(),
        )
        return False
    with Mailer.from_settings(
        settings, retries=min(settings.smtp_retries, 1), retry_delay=min(settings.smtp_retry_delay, 1.0)
    ) as mailer:
        mailer.send(message, to)
    return True


# --- the send log ------------------------------------------------------------------------------------


@dataclass
class Claim:
    pk: int
    subscription: dict
    period_key: str
    paper_pks: list[int]
    total: int
    subject: str
    message_id: str
    attempts: int


def retakeable(now: datetime):  # noqa: ANN201 - a SQL condition on send_log
    """Rows a run may claim again: not delivered, and nobody is working on them."""
    return or_(
        send_log.c.status == "failed",
        and_(
            send_log.c.status == "sending",
            send_log.c.handed_at.is_(None),
            send_log.c.claimed_at < now - CLAIM_LEASE,
        ),
    )


class _Abort(Exception):
    pass


def claim(
    engine: Engine,
    sub: dict,
    period_key: str,
    *,
    paper_pks: list[int],
    total: int,
    subject: str,
    message_id: str,
    now: datetime,
    period_start: date | None = None,
    also: Callable | None = None,
) -> Claim | None:
    """Claim the message for (subscription, period key) in its own committed transaction, or None.

    ``also(conn)`` runs in the same transaction (an alert's cursor); returning False aborts the claim.
    A row left by an earlier run is taken over only when ``retakeable`` (and then with its papers).
    """
    try:
        with engine.begin() as conn:
            status = conn.execute(
                select(subscriptions.c.status).where(subscriptions.c.pk == sub["pk"])
            ).scalar()
            if status != "active":
                raise _Abort
            pk = conn.execute(
                insert(send_log)
                .values(
                    subscription_pk=sub["pk"],
                    period_key=period_key,
                    period_start=period_start,
                    email=sub["email"],
                    status="sending",
                    paper_pks=paper_pks,
                    total=total,
                    subject=subject[:300],
                    message_id=message_id,
                    attempts=1,
                    claimed_at=now,
                )
                .returning(send_log.c.pk)
            ).scalar_one()
            if also is not None and also(conn) is False:
                raise _Abort
        return Claim(pk, sub, period_key, paper_pks, total, subject, message_id, 1)
    except _Abort:
        return None
    except IntegrityError:
        return take_over(engine, sub, period_key, now=now)


def take_over(engine: Engine, sub: dict, period_key: str, *, now: datetime) -> Claim | None:
    """Claim a row an earlier run left failed, or claimed and abandoned (older than CLAIM_LEASE)."""
    with engine.begin() as conn:
        row = (
            conn.execute(
                select(send_log).where(
                    send_log.c.subscription_pk == sub["pk"],
                    send_log.c.period_key == period_key,
                    retakeable(now),
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        status = conn.execute(select(subscriptions.c.status).where(subscriptions.c.pk == sub["pk"])).scalar()
        if status != "active":
            return None
        taken = conn.execute(
            update(send_log)
            .where(
                send_log.c.pk == row["pk"],
                send_log.c.attempts == row["attempts"],  # compare-and-set
            )
            .values(
                status="sending",
                claimed_at=now,
                handed_at=None,
                error=None,
                email=sub["email"],
                attempts=row["attempts"] + 1,
            )
        ).rowcount
    if taken != 1:
        return None
    return Claim(
        row["pk"],
        sub,
        period_key,
        list(row["paper_pks"]),
        row["total"],
        row["subject"],
        row["message_id"],
        row["attempts"] + 1,
    )


def _set(engine: Engine, c: Claim, **values: object) -> bool:
    with engine.begin() as conn:
        return (
            conn.execute(
                update(send_log)
                .where(
                    send_log.c.pk == c.pk, send_log.c.attempts == c.attempts, send_log.c.status == "sending"
                )
                .values(**values)
            ).rowcount
            == 1
        )


def mark_handed(engine: Engine, c: Claim, now: datetime) -> bool:
    """Committed just before the message goes out; False when another worker took the claim over."""
    return _set(engine, c, handed_at=now)


def mark_sent(engine: Engine, c: Claim, now: datetime) -> bool:
    return _set(engine, c, status="sent", sent_at=now)


def mark_failed(engine: Engine, c: Claim, status: str, error: str) -> bool:
    values: dict = {"status": status, "error": error[:500]}
    if status == "failed":
        values["handed_at"] = None  # not accepted: the next run may send it
    return _set(engine, c, **values)


# --- runs ---------------------------------------------------------------------------------------------


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


def _base_url(settings: Settings, dry_run: bool, mailer: Mailer | None = None) -> str:
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


def target_period(engine: Engine, kind: str, now: datetime) -> DigestPeriod | None:
    """The latest day (or ISO week) with papers on the feed that has ended by ``now`` (UTC)."""
    today = now.date()
    bound = today if kind == "daily" else today - timedelta(days=today.weekday())
    with engine.connect() as conn:
        latest = conn.execute(
            select(func.max(papers.c.submitted_on_daily_at)).where(
                papers.c.hidden.is_(False),
                papers.c.submitted_on_daily_at < datetime.combine(bound, datetime.min.time()),
            )
        ).scalar()
    return DigestPeriod.of(kind, latest.date()) if latest else None


def digest_papers(engine: Engine, period: DigestPeriod) -> list[dict]:
    """The period's feed papers by trending score as it stood when the period ended."""
    rows = queries.feed(engine, period.start, period.end, limit=1_000_000)[0]
    end = datetime.combine(period.end, datetime.min.time())
    rows.sort(key=lambda r: (trending_score(r, now=end), r["upvotes"], -r["pk"]), reverse=True)
    return rows


def _due_digests(engine: Engine, period: DigestPeriod, now: datetime) -> list[dict]:
    """Active subscribers of this period who have not had it (nor a later one) and nobody is sending to."""
    done = exists().where(
        send_log.c.subscription_pk == subscriptions.c.pk,
        or_(
            send_log.c.period_start > period.start,
            and_(send_log.c.period_key == period.key, ~retakeable(now)),
        ),
    )
    with engine.connect() as conn:
        rows = conn.execute(
            select(subscriptions)
            .where(
                subscriptions.c.kind == "digest",
                subscriptions.c.status == "active",
                subscriptions.c.period == period.kind,
                ~done,
            )
            .order_by(subscriptions.c.pk)
        ).mappings()
        return [dict(r) for r in rows]


def send_digests(
    engine: Engine,
    settings: Settings,
    period_kind: str,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    mailer: Mailer | None = None,
) -> RunReport:
    """Send the daily or weekly digest to every subscriber who has not had the latest ended period.

    A subscriber's first digest is that latest period; after it, each period once; nothing when the
    feed has nothing new. A dry run composes nothing, writes nothing and says what would go to whom.
    """
    if period_kind not in PERIODS:
        raise ValueError(f"period must be daily or weekly, not {period_kind!r}")
    now = _now(now)
    report = RunReport(f"{period_kind} digest", dry_run)
    base_url = _base_url(settings, dry_run, mailer)
    period = report.period = target_period(engine, period_kind, now)
    if period is None:
        report.note = "no feed day with papers has ended yet: nothing to send"
        return report
    ranked = digest_papers(engine, period)
    top = ranked[:DIGEST_SIZE]
    subject = compose.digest_subject(period, len(top), len(ranked))
    due = _due_digests(engine, period, now)
    if not due:
        report.note = f"everyone has had {period.key}: nothing new"
    if dry_run:
        report.planned = [Planned(s["email"], subject, [p["title"] for p in top]) for s in due]
        return report

    def render(sub: dict, rows: list[dict], total: int, links: Links) -> tuple[str, str]:
        return compose.render_digest(sub, period, rows, total, links)[1:]

    with _run_mailer(settings, mailer) as smtp:
        for sub in due:
            c = claim(
                engine,
                sub,
                period.key,
                paper_pks=[p["pk"] for p in top],
                total=len(ranked),
                subject=subject,
                message_id=compose.new_message_id(settings.mail_from),
                now=now,
                period_start=period.start,
            )
            if c is None:
                report.skipped += 1
                continue
            _deliver(engine, settings, smtp, c, render, base_url, now, report)
    tokens.prune_tokens(engine)
    return report


def alert_matches(engine: Engine, query: str, filters) -> list[dict]:  # noqa: ANN001
    """Papers under the filters that contain every word of the query (and its phrases, authors, no
    excluded word), newest first. The search box ORs free words for recall; an alert that mails
    people wants precision. Semantic neighbours are not used: every paper has some.
    """
    from dailypapers.search.hybrid import CANDIDATES, coverage, search

    page = search(engine, query, filters=filters, sort="relevance", limit=CANDIDATES)
    rows = [
        h.paper
        for h in page.hits
        if not page.query.terms or coverage(page.query, h.paper["title"], h.paper["summary"]) >= 1.0
    ]
    rows.sort(key=lambda p: (p["published_at"] or datetime.min, p["pk"]), reverse=True)
    return rows


def alert_key(period: str, now: datetime) -> str:
    """Alerts go at most once per UTC day (daily) or ISO week (weekly)."""
    if period == "daily":
        return f"alert:d:{now.date().isoformat()}"
    year, week, _ = now.date().isocalendar()
    return f"alert:w:{year}-W{week:02d}"


def send_alerts(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    mailer: Mailer | None = None,
) -> RunReport:
    """Send each active saved-search alert the papers that match it and arrived since its last alert.

    "Arrived since" is by papers.pk: an alert's cursor (``alert_after_pk``) is the largest pk it has
    considered. Its first mail covers what was ingested in the period before its confirmation.
    Matching: see ``alert_matches``.
    """
    now = _now(now)
    report = RunReport("alerts", dry_run)
    base_url = _base_url(settings, dry_run, mailer)
    with engine.connect() as conn:
        high = conn.execute(select(func.coalesce(func.max(papers.c.pk), 0))).scalar_one()
    due = subs.active(engine, "alert")
    if not due:
        report.note = "no active alerts"
    pending: list[tuple[dict, Callable[[], Claim | None]]] = []
    for sub in due:
        key = alert_key(sub["period"], now)
        with engine.connect() as conn:
            row = conn.execute(
                select(send_log.c.pk, retakeable(now).label("retry")).where(
                    send_log.c.subscription_pk == sub["pk"], send_log.c.period_key == key
                )
            ).first()
        if row is not None:
            if row.retry:  # a claim an earlier run left behind: its papers are fixed in the row
                pending.append((sub, lambda sub=sub, key=key: take_over(engine, sub, key, now=now)))
            continue
        cursor = sub["alert_after_pk"]
        if cursor is None:
            since = (sub["confirmed_at"] or sub["created_at"]) - PERIOD_LENGTH[sub["period"]]
            lower = papers.c.ingested_at >= since
        else:
            lower = papers.c.pk > cursor
        filters = replace(filters_of(sub), extra=(lower, papers.c.pk <= high))
        matches = alert_matches(engine, sub["query"] or "", filters)
        hits, total = matches[:ALERT_SIZE], len(matches)
        if not hits:
            if not dry_run:
                _move_cursor(engine, sub, cursor, high)
            continue
        subject = compose.alert_subject(sub, len(hits), total)
        if dry_run:
            report.planned.append(Planned(sub["email"], subject, [p["title"] for p in hits]))
            continue

        def make(
            sub: dict = sub,
            key: str = key,
            hits: list[dict] = hits,
            total: int = total,
            subject: str = subject,
            cursor: int | None = cursor,
        ) -> Claim | None:
            return claim(
                engine,
                sub,
                key,
                paper_pks=[p["pk"] for p in hits],
                total=total,
                subject=subject,
                message_id=compose.new_message_id(settings.mail_from),
                now=now,
                also=lambda conn: _cas_cursor(conn, sub["pk"], cursor, high),
            )

        pending.append((sub, make))
    if due and not pending and not report.planned:
        report.note = "nothing new for any alert"
    if dry_run or not pending:
        return report

    def render(sub: dict, rows: list[dict], total: int, links: Links) -> tuple[str, str]:
        return compose.render_alert(sub, rows, total, links)[1:]

    with _run_mailer(settings, mailer) as smtp:
        for _sub, make in pending:
            c = make()
            if c is None:
                report.skipped += 1
                continue
            _deliver(engine, settings, smtp, c, render, base_url, now, report)
    tokens.prune_tokens(engine)
    return report


def _cas_cursor(conn, sub_pk: int, old: int | None, new: int) -> bool:  # noqa: ANN001
    current = (
        subscriptions.c.alert_after_pk.is_(None) if old is None else subscriptions.c.alert_after_pk == old
    )
    return (
        conn.execute(
            update(subscriptions).where(subscriptions.c.pk == sub_pk, current).values(alert_after_pk=new)
        ).rowcount
        == 1
    )


def _move_cursor(engine: Engine, sub: dict, old: int | None, new: int) -> None:
    if old is None or new > old:
        with engine.begin() as conn:
            _cas_cursor(conn, sub["pk"], old, new)


class _run_mailer:  # noqa: N801 - a context manager: the given mailer (kept open) or one for this run
    def __init__(self, settings: Settings, mailer: Mailer | None):
        self.given = mailer
        self.settings = settings
        self.own: Mailer | None = None

    def __enter__(self) -> Mailer:
        if self.given is not None:
            return self.given
        self.own = Mailer.from_settings(self.settings)
        return self.own

    def __exit__(self, *exc: object) -> None:
        if self.own is not None:
            self.own.close()


def _deliver(
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
    minted = _now(None)  # links expire by the wall clock, whatever moment the run acts as
    with engine.begin() as conn:
        manage = tokens.new_token(conn, sub["pk"], "manage", minted)
        unsubscribe = tokens.new_token(conn, sub["pk"], "unsubscribe", minted)
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
        subs.mark_bouncing(engine, sub["email"], str(exc), now=now)
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


def in_doubt(engine: Engine) -> list[dict]:
    """Messages that may or may not have been delivered (never resent automatically; see above)."""
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                select(send_log)
                .where(
                    or_(
                        send_log.c.status == "in_doubt",
                        and_(send_log.c.status == "sending", send_log.c.handed_at.is_not(None)),
                    )
                )
                .order_by(send_log.c.claimed_at)
            ).mappings()
        ]
