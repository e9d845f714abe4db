"""The daily and weekly digests: the feed's trending papers of the latest ended day or week, and
(kind "foryou") each subscribed reader's recommendations they have not been mailed yet, in the
same run and on the same days."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.engine import Engine

from dailypapers.config import Settings
from dailypapers.mail import compose
from dailypapers.mail.clock import utc_now
from dailypapers.mail.compose import DigestPeriod, Links
from dailypapers.mail.deliver import Planned, RunReport, run_mailer, send_claimed, site_address
from dailypapers import recommend
from dailypapers.mail.send_log import claim, retakeable
from dailypapers.mail.smtp import Mailer
from dailypapers.mail.subscription_spec import PERIODS
from dailypapers.mail.tokens import prune_tokens
from dailypapers.ranking import trending_score
from dailypapers.store import queries
from dailypapers.store.schema import papers, send_log, subscriptions

DIGEST_SIZE = 20  # papers in a digest (the subject says how many the period had)
FORYOU_SIZE = 10  # recommendations in a For-you digest


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


def _due_digests(engine: Engine, period: DigestPeriod, now: datetime, kind: str = "digest") -> list[dict]:
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
                subscriptions.c.kind == kind,
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
    now = utc_now(now)
    report = RunReport(f"{period_kind} digest", dry_run)
    base_url = site_address(settings, dry_run, mailer)
    period = report.period = target_period(engine, period_kind, now)
    if period is None:
        report.note = "no feed day with papers has ended yet: nothing to send"
        return report
    ranked = digest_papers(engine, period)
    top = ranked[:DIGEST_SIZE]
    subject = compose.digest_subject(period, len(top), len(ranked))
    due = _due_digests(engine, period, now)
    foryou = [(sub, _picked(engine, sub)) for sub in _due_digests(engine, period, now, "foryou")]
    foryou = [(sub, picked) for sub, picked in foryou if picked]  # nothing new picked: no mail
    if not due and not foryou:
        report.note = f"everyone has had {period.key}: nothing new"
    if dry_run:
        report.planned = [Planned(s["email"], subject, [p["title"] for p in top]) for s in due]
        report.planned += [Planned(s["email"], compose.foryou_subject(len(p)), [r["title"] for r in p])
                           for s, p in foryou]
        return report

    def render(sub: dict, rows: list[dict], total: int, links: Links) -> tuple[str, str]:
        return compose.render_digest(sub, period, rows, total, links)[1:]

    with run_mailer(settings, mailer) as smtp:
        for sub, picked in foryou:
            c = claim(engine, sub, period.key, paper_pks=[p["pk"] for p in picked], total=len(picked),
                      subject=compose.foryou_subject(len(picked)),
                      message_id=compose.new_message_id(settings.mail_from), now=now,
                      period_start=period.start)
            if c is None:
                report.skipped += 1
                continue
            send_claimed(engine, settings, smtp, c, partial(_render_foryou, engine), base_url, now, report)
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
            send_claimed(engine, settings, smtp, c, render, base_url, now, report)
    prune_tokens(engine)
    return report


def _picked(engine: Engine, sub: dict) -> list[dict]:
    """The reader's best recommendations not in an earlier For-you mail of this subscription."""
    if sub["user_pk"] is None:  # the account was deleted
        return []
    with engine.connect() as conn:
        mailed = {pk for pks in conn.execute(select(send_log.c.paper_pks).where(
            send_log.c.subscription_pk == sub["pk"], send_log.c.status == "sent")).scalars() for pk in pks}
    found = recommend.for_reader(engine, sub["user_pk"], limit=FORYOU_SIZE + len(mailed))
    rows = queries.papers_by_id(engine, [r.paper_id for r in found])
    return [r for r in rows if r["pk"] not in mailed][:FORYOU_SIZE]


def _render_foryou(engine: Engine, sub: dict, rows: list[dict], total: int, links: Links) -> tuple[str, str]:
    found = recommend.for_reader(engine, sub["user_pk"], limit=recommend.CACHED)
    reasons = {r.paper_id: r.because for r in found}
    return compose.render_foryou(sub, rows, reasons, links)[1:]
