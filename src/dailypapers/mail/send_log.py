"""The send log: each digest or alert exactly once per (subscription, period key).

The table ``send_log`` (unique on subscription and period key) carries every message through three
commits:

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

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from dailypapers.store.schema import send_log, subscriptions

CLAIM_LEASE = timedelta(minutes=15)  # a claim not handed to the server after this long is taken over


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
