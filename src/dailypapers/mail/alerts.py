"""Saved-search alerts: the papers that match a subscription's search and arrived since its last alert."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from dailypapers.config import Settings
from dailypapers.mail import compose
from dailypapers.mail.clock import utc_now
from dailypapers.mail.compose import Links
from dailypapers.mail.deliver import Planned, RunReport, run_mailer, send_claimed, site_address
from dailypapers.mail.send_log import Claim, claim, retakeable, take_over
from dailypapers.mail.smtp import Mailer
from dailypapers.mail.subscription_spec import filters_of
from dailypapers.mail.subscriptions import active
from dailypapers.mail.tokens import prune_tokens
from dailypapers.store.schema import papers, send_log, subscriptions

ALERT_SIZE = 20
PERIOD_LENGTH = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}


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
    now = utc_now(now)
    report = RunReport("alerts", dry_run)
    base_url = site_address(settings, dry_run, mailer)
    with engine.connect() as conn:
        high = conn.execute(select(func.coalesce(func.max(papers.c.pk), 0))).scalar_one()
    due = active(engine, "alert")
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

    with run_mailer(settings, mailer) as smtp:
        for _sub, make in pending:
            c = make()
            if c is None:
                report.skipped += 1
                continue
            send_claimed(engine, settings, smtp, c, render, base_url, now, report)
    prune_tokens(engine)
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
