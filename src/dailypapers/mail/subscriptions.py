"""Subscriptions: digests of trending papers and saved-search alerts, with double opt-in.

Plain functions over an Engine, shared by the web form, the manage pages, the CLI and the mail runs.
What a subscription asks for is checked in subscription_spec.py; its links' tokens are in tokens.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from dailypapers.mail.clock import utc_now
from dailypapers.mail.subscription_spec import PERIODS, Spec, SubscriptionError, describe
from dailypapers.mail.tokens import TokenCheck, check_token, new_token, use_token
from dailypapers.store.schema import subscriptions

PENDING_MAX = 5  # subscriptions of one address waiting for confirmation
RESEND_AFTER = timedelta(minutes=10)  # between two confirmation mails for the same subscription


# --- subscribing -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a subscription request did, and the mail it needs.

    action: "confirm" (send the confirmation link), "already" (the address is subscribed: send a note
    with a manage link, so the form tells strangers nothing), "confirmed" (no mail: the operator vouched).
    """

    subscription: dict
    action: Literal["confirm", "already", "confirmed"]
    token: str | None = None  # confirm token for "confirm", manage token for "already"
    extra: dict = field(default_factory=dict)


def subscribe(
    engine: Engine,
    spec: Spec,
    *,
    user_pk: int | None = None,
    confirmed: bool = False,
    now: datetime | None = None,
) -> Outcome:
    """Create (or renew) a subscription. Without ``confirmed`` it stays pending until its link is opened.

    Asking again for the same address and search re-sends the confirmation (or, when it is already
    active, a note with a manage link); the period of a pending one is updated. Limits: one mail per
    subscription per RESEND_AFTER, PENDING_MAX pending subscriptions per address.
    """
    now = utc_now(now)
    values = {
        "email": spec.email,
        "kind": spec.kind,
        "period": spec.period,
        "query": spec.query,
        "filters": spec.filters_json,
        "signature": spec.signature,
    }
    for _ in range(2):  # a concurrent request may insert the same row between our look-up and insert
        try:
            with engine.begin() as conn:
                row = (
                    conn.execute(
                        select(subscriptions).where(
                            subscriptions.c.email == spec.email, subscriptions.c.signature == spec.signature
                        )
                    )
                    .mappings()
                    .first()
                )
                if (
                    row is not None
                    and not confirmed
                    and row["requested_at"]
                    and row["requested_at"] > now - RESEND_AFTER
                ):
                    raise SubscriptionError(
                        "email",
                        "We have just sent a mail about this to that address: "
                        "check your inbox (and spam folder), or try again in "
                        "a few minutes.",
                    )
                if row is None:
                    if not confirmed:
                        pending = conn.execute(
                            select(func.count())
                            .select_from(subscriptions)
                            .where(subscriptions.c.email == spec.email, subscriptions.c.status == "pending")
                        ).scalar_one()
                        if pending >= PENDING_MAX:
                            raise SubscriptionError(
                                "email",
                                f"This address has {pending} subscriptions waiting "
                                "for confirmation: open the links we sent first.",
                            )
                    pk = conn.execute(
                        insert(subscriptions)
                        .values(
                            **values,
                            user_pk=user_pk,
                            status="active" if confirmed else "pending",
                            created_at=now,
                            changed_at=now,
                            confirmed_at=now if confirmed else None,
                            requested_at=None if confirmed else now,
                        )
                        .returning(subscriptions.c.pk)
                    ).scalar_one()
                    action = "confirmed" if confirmed else "confirm"
                else:
                    pk = row["pk"]
                    owner = row["user_pk"] or user_pk
                    if confirmed:
                        action, changes = "confirmed", dict(
                            status="active", period=spec.period, changed_at=now, user_pk=owner,
                            confirmed_at=row["confirmed_at"] or now, last_error=None)
                    elif row["status"] in ("active", "paused"):
                        action, changes = "already", dict(requested_at=now)
                    else:  # pending, bouncing, unsubscribed: confirm (again)
                        action, changes = "confirm", dict(
                            status="pending", period=spec.period, requested_at=now, changed_at=now, user_pk=owner)
                    conn.execute(update(subscriptions).where(subscriptions.c.pk == pk).values(**changes))
                token = None
                if action == "confirm":
                    token = new_token(conn, pk, "confirm", now)
                elif action == "already":
                    token = new_token(conn, pk, "manage", now)
                sub = dict(
                    conn.execute(select(subscriptions).where(subscriptions.c.pk == pk)).mappings().one()
                )
                return Outcome(sub, action, token)
        except IntegrityError:
            continue
    raise SubscriptionError("email", "Please try again.")  # pragma: no cover - two races in a row


def confirm(engine: Engine, token: str, *, now: datetime | None = None) -> TokenCheck:
    """Open a confirmation link: the subscription becomes active and the token is used up."""
    now = utc_now(now)
    check = check_token(engine, token, "confirm", now=now)
    if not check.ok:
        return check
    with engine.begin() as conn:
        if not use_token(conn, token, now):
            return TokenCheck(check.subscription, "used")
        sub = check.subscription
        conn.execute(
            update(subscriptions)
            .where(subscriptions.c.pk == sub["pk"])
            .values(
                status="active",
                confirmed_at=now,
                changed_at=now,
                last_error=None,
                # an alert's first mail covers what arrived in its last period before this moment
                alert_after_pk=None,
            )
        )
        sub = dict(
            conn.execute(select(subscriptions).where(subscriptions.c.pk == sub["pk"])).mappings().one()
        )
    return TokenCheck(sub)


# --- managing ----------------------------------------------------------------------------------------


def get(engine: Engine, pk: int) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(select(subscriptions).where(subscriptions.c.pk == pk)).mappings().first()
    return dict(row) if row else None


def of_address(engine: Engine, email: str | None, user_pk: int | None = None) -> list[dict]:
    """Every subscription of an address (and of a user's account), newest first."""
    conditions = []
    if email:
        conditions.append(subscriptions.c.email == email.strip().lower())
    if user_pk is not None:
        conditions.append(subscriptions.c.user_pk == user_pk)
    if not conditions:
        return []
    with engine.connect() as conn:
        rows = conn.execute(
            select(subscriptions)
            .where(or_(*conditions))
            .order_by(subscriptions.c.created_at.desc(), subscriptions.c.pk.desc())
        ).mappings()
        return [dict(r) for r in rows]


def all_subscriptions(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(subscriptions).order_by(subscriptions.c.pk)).mappings()]


def change(
    engine: Engine, pk: int, action: str, *, period: str | None = None, now: datetime | None = None
) -> str:
    """pause | resume | period (to ``period``) | delete | unsubscribe; says what it did."""
    now = utc_now(now)
    with engine.begin() as conn:
        sub = conn.execute(select(subscriptions).where(subscriptions.c.pk == pk)).mappings().first()
        if sub is None:
            raise SubscriptionError("action", "This subscription no longer exists.")
        where = subscriptions.c.pk == pk
        if action == "delete":
            conn.execute(delete(subscriptions).where(where))
            return f"Deleted: the {describe(sub)} for {sub['email']}. You will get no more mail from it."
        if action == "unsubscribe":
            conn.execute(update(subscriptions).where(where).values(status="unsubscribed", changed_at=now))
            return f"Unsubscribed: {sub['email']} will get no more of the {describe(sub)}."
        if action == "pause":
            if sub["status"] != "active":
                raise SubscriptionError("action", "Only an active subscription can be paused.")
            conn.execute(update(subscriptions).where(where).values(status="paused", changed_at=now))
            return f"Paused: the {describe(sub)}. Resume it whenever you like."
        if action == "resume":
            if sub["status"] not in ("paused", "unsubscribed"):
                raise SubscriptionError(
                    "action", "Only a paused or unsubscribed subscription can be resumed."
                )
            if sub["confirmed_at"] is None:
                raise SubscriptionError("action", "Confirm this subscription first, with the link we mailed.")
            conn.execute(update(subscriptions).where(where).values(status="active", changed_at=now))
            return f"Resumed: the {describe({**sub, 'status': 'active'})}."
        if action == "period":
            if period not in PERIODS:
                raise SubscriptionError("period", "Choose daily or weekly.")
            conn.execute(update(subscriptions).where(where).values(period=period, changed_at=now))
            return f"Changed: you now get the {describe({**sub, 'period': period})}."
    raise SubscriptionError("action", "Choose pause, resume, daily or weekly, or delete.")


def unsubscribe_address(engine: Engine, email: str, *, now: datetime | None = None) -> int:
    """Unsubscribe every subscription of an address (the operator's tool for a complaint)."""
    now = utc_now(now)
    with engine.begin() as conn:
        return conn.execute(
            update(subscriptions)
            .where(subscriptions.c.email == email.strip().lower(), subscriptions.c.status != "unsubscribed")
            .values(status="unsubscribed", changed_at=now)
        ).rowcount


def mark_bouncing(engine: Engine, email: str, error: str, *, now: datetime | None = None) -> int:
    """A permanent failure (5xx) for an address: no more mail to any of its subscriptions."""
    now = utc_now(now)
    with engine.begin() as conn:
        return conn.execute(
            update(subscriptions)
            .where(subscriptions.c.email == email, subscriptions.c.status.in_(("active", "paused")))
            .values(status="bouncing", changed_at=now, last_error=error[:500])
        ).rowcount


def active(engine: Engine, kind: str) -> list[dict]:
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                select(subscriptions)
                .where(subscriptions.c.kind == kind, subscriptions.c.status == "active")
                .order_by(subscriptions.c.pk)
            ).mappings()
        ]


def forget_request(engine: Engine, pk: int) -> None:
    """The confirmation mail could not be sent: let the address ask again at once."""
    with engine.begin() as conn:
        conn.execute(update(subscriptions).where(subscriptions.c.pk == pk).values(requested_at=None))
