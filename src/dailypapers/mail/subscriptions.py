"""Subscriptions: digests of trending papers and saved-search alerts, with double opt-in.

Plain functions over an Engine, shared by the web form, the manage pages and the CLI. Input is
checked here and refused with ``SubscriptionError(field, message)``, which the web shows beside the
field and the CLI prints as one line.

Links in mail carry random tokens (32 bytes, URL-safe) that are stored only as their SHA-256 and are
good for one purpose each: ``confirm`` (once, for CONFIRM_VALID), ``manage`` and ``unsubscribe``
(every mail has its own pair, valid for MANAGE_VALID and UNSUBSCRIBE_VALID). A copy of the database
gives nobody a working link.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Literal

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from dailypapers.accounts import AccountError, check_email
from dailypapers.search.filters import Filters
from dailypapers.store.schema import mail_tokens, subscriptions

KINDS = ("digest", "alert")
PERIODS = ("daily", "weekly")
STATUSES = ("pending", "active", "paused", "bouncing", "unsubscribed")
QUERY_MAX = 300
CATEGORIES_MAX = 10
PENDING_MAX = 5  # subscriptions of one address waiting for confirmation
RESEND_AFTER = timedelta(minutes=10)  # between two confirmation mails for the same subscription

CONFIRM_VALID = timedelta(days=7)
MANAGE_VALID = timedelta(days=90)
UNSUBSCRIBE_VALID = timedelta(days=365)
VALID_FOR = {"confirm": CONFIRM_VALID, "manage": MANAGE_VALID, "unsubscribe": UNSUBSCRIBE_VALID}

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_CATEGORY = re.compile(r"[a-z][a-z-]{0,19}(\.[A-Za-z-]{1,20})?")
_ORG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

Purpose = Literal["confirm", "manage", "unsubscribe"]


class SubscriptionError(ValueError):
    """Input refused: which field, and a sentence to show beside it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Spec:
    """What a subscription asks for, checked."""

    email: str
    kind: str = "digest"
    period: str = "daily"
    query: str | None = None
    since: date | None = None
    categories: tuple[str, ...] = ()
    organization: str | None = None
    has_code: bool | None = None

    @property
    def filters_json(self) -> dict:
        if self.kind != "alert":
            return {}
        return {
            "since": self.since.isoformat() if self.since else None,
            "categories": list(self.categories),
            "organization": self.organization,
            "has_code": self.has_code,
        }

    @property
    def signature(self) -> str:
        """What makes two subscriptions of one address the same (not the period: that can change)."""
        canonical = json.dumps(
            {"kind": self.kind, "query": (self.query or "").lower(), **self.filters_json}, sort_keys=True
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc).replace(tzinfo=None)
    return now.astimezone(timezone.utc).replace(tzinfo=None) if now.tzinfo else now


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# --- checking input -------------------------------------------------------------------------------


def check_address(email: object) -> str:
    """A single, valid address; a line break (header injection) or a control character is refused."""
    if not isinstance(email, str) or not email.strip():
        raise SubscriptionError("email", "Enter your email address.")
    if _CONTROL.search(email.strip()):
        raise SubscriptionError(
            "email", "Enter one email address, without line breaks or control characters."
        )
    if "," in email or ";" in email:
        raise SubscriptionError("email", "Enter one email address (no commas or semicolons).")
    try:
        return check_email(email)
    except AccountError as exc:
        raise SubscriptionError("email", exc.message) from None


def check_spec(
    email: object,
    *,
    kind: str = "digest",
    period: str = "daily",
    query: str | None = None,
    since: str | date | None = None,
    categories: str | list[str] | tuple[str, ...] | None = None,
    organization: str | None = None,
    has_code: bool | None = None,
) -> Spec:
    """Check form or command-line input; raises SubscriptionError naming the field at fault."""
    address = check_address(email)
    if kind not in KINDS:
        raise SubscriptionError("kind", "Choose a digest of trending papers or an alert for a search.")
    if period not in PERIODS:
        raise SubscriptionError("period", "Choose daily or weekly.")
    if kind == "digest":
        return Spec(address, "digest", period)

    text = (query or "").strip() if isinstance(query, str) else ""
    if _CONTROL.search(text):
        raise SubscriptionError(
            "query", "Remove the control characters (such as NUL or line breaks) from the search."
        )
    text = " ".join(text.split())
    if len(text) > QUERY_MAX:
        raise SubscriptionError(
            "query", f"A saved search can be at most {QUERY_MAX} characters (this one has {len(text):,})."
        )

    day = None
    if isinstance(since, date):
        day = since
    elif isinstance(since, str) and since.strip():
        try:
            day = (
                date.fromisoformat(since.strip())
                if re.fullmatch(r"\d{4}-\d{2}-\d{2}", since.strip())
                else None
            )
        except ValueError:
            day = None
        if day is None:
            raise SubscriptionError("since", "Enter a date like 2025-01-31, or leave it empty.")

    if isinstance(categories, str):
        categories = [c for c in re.split(r"[\s,]+", categories) if c]
    cats = tuple(dict.fromkeys(c.strip() for c in categories or () if c.strip()))
    if len(cats) > CATEGORIES_MAX:
        raise SubscriptionError("cat", f"Choose at most {CATEGORIES_MAX} categories.")
    for cat in cats:
        if not _CATEGORY.fullmatch(cat):
            raise SubscriptionError("cat", "Categories look like cs.LG or cs; separate several with commas.")

    org = organization.strip() if isinstance(organization, str) and organization.strip() else None
    if org is not None and not _ORG.fullmatch(org):
        raise SubscriptionError(
            "org", "An organization is its handle, like facebook (letters, digits, '-', '_' and '.')."
        )

    if not text and not cats and not org and not has_code:
        raise SubscriptionError(
            "query", "Enter words to search for, or choose a category, an organization or papers with code."
        )
    return Spec(address, "alert", period, text or None, day, cats, org, has_code or None)


def filters_of(sub: dict) -> Filters:
    f = sub.get("filters") or {}
    since = date.fromisoformat(f["since"]) if f.get("since") else None
    return Filters(
        since=since,
        categories=tuple(f.get("categories") or ()),
        organization=f.get("organization"),
        has_code=f.get("has_code"),
    )


def describe(sub: dict) -> str:
    """One line for people: "daily digest of trending papers", "weekly alert for “x” (cs.LG)"."""
    if sub["kind"] == "digest":
        return f"{sub['period']} digest of trending papers"
    return f"{sub['period']} alert for {search_label(sub)}"


def search_label(sub: dict) -> str:
    f = sub.get("filters") or {}
    parts = [*(f.get("categories") or ())]
    if f.get("organization"):
        parts.append(f"from {f['organization']}")
    if f.get("has_code"):
        parts.append("with code")
    if f.get("since"):
        parts.append(f"since {f['since']}")
    if sub.get("query"):
        return f"“{sub['query']}”" + (f" ({', '.join(parts)})" if parts else "")
    return ", ".join(parts) or "all papers"


# --- tokens ----------------------------------------------------------------------------------------


def new_token(conn: Connection, subscription_pk: int, purpose: Purpose, now: datetime) -> str:
    """A fresh token for a link; only its SHA-256 is stored. Returns the token (put it in the mail)."""
    token = secrets.token_urlsafe(32)
    conn.execute(
        insert(mail_tokens).values(
            token_hash=_digest(token),
            purpose=purpose,
            subscription_pk=subscription_pk,
            created_at=now,
            expires_at=now + VALID_FOR[purpose],
        )
    )
    return token


@dataclass
class TokenCheck:
    subscription: dict | None
    problem: Literal["unknown", "expired", "used"] | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_token(engine: Engine, token: str, purpose: Purpose, *, now: datetime | None = None) -> TokenCheck:
    """The subscription a link is for, or why the link no longer works (unknown, expired, used)."""
    now = _now(now)
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        return TokenCheck(None, "unknown")
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(mail_tokens).where(
                    mail_tokens.c.token_hash == _digest(token), mail_tokens.c.purpose == purpose
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return TokenCheck(None, "unknown")
        sub = (
            conn.execute(select(subscriptions).where(subscriptions.c.pk == row["subscription_pk"]))
            .mappings()
            .first()
        )
    if sub is None:
        return TokenCheck(None, "unknown")
    if row["used_at"] is not None:
        return TokenCheck(dict(sub), "used")
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return TokenCheck(dict(sub), "expired")
    return TokenCheck(dict(sub))


def prune_tokens(engine: Engine, *, now: datetime | None = None) -> int:
    """Delete expired tokens (their links already show "no longer valid"), and long-used ones."""
    now = _now(now)
    with engine.begin() as conn:
        return conn.execute(
            delete(mail_tokens).where(
                or_(
                    mail_tokens.c.expires_at < now - timedelta(days=30),
                    mail_tokens.c.used_at < now - timedelta(days=30),
                )
            )
        ).rowcount


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
    now = _now(now)
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
                elif confirmed:
                    pk = row["pk"]
                    conn.execute(
                        update(subscriptions)
                        .where(subscriptions.c.pk == pk)
                        .values(
                            status="active",
                            period=spec.period,
                            changed_at=now,
                            confirmed_at=row["confirmed_at"] or now,
                            last_error=None,
                            user_pk=row["user_pk"] or user_pk,
                        )
                    )
                    action = "confirmed"
                elif row["status"] in ("active", "paused"):
                    pk = row["pk"]
                    conn.execute(
                        update(subscriptions).where(subscriptions.c.pk == pk).values(requested_at=now)
                    )
                    action = "already"
                else:  # pending, bouncing, unsubscribed: confirm (again)
                    pk = row["pk"]
                    conn.execute(
                        update(subscriptions)
                        .where(subscriptions.c.pk == pk)
                        .values(
                            status="pending",
                            period=spec.period,
                            requested_at=now,
                            changed_at=now,
                            user_pk=row["user_pk"] or user_pk,
                        )
                    )
                    action = "confirm"
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
    now = _now(now)
    check = check_token(engine, token, "confirm", now=now)
    if not check.ok:
        return check
    with engine.begin() as conn:
        used = conn.execute(
            update(mail_tokens)
            .where(mail_tokens.c.token_hash == _digest(token), mail_tokens.c.used_at.is_(None))
            .values(used_at=now)
        ).rowcount
        if not used:  # opened twice at the same moment
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
    now = _now(now)
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
    now = _now(now)
    with engine.begin() as conn:
        return conn.execute(
            update(subscriptions)
            .where(subscriptions.c.email == email.strip().lower(), subscriptions.c.status != "unsubscribed")
            .values(status="unsubscribed", changed_at=now)
        ).rowcount


def mark_bouncing(engine: Engine, email: str, error: str, *, now: datetime | None = None) -> int:
    """A permanent failure (5xx) for an address: no more mail to any of its subscriptions."""
    now = _now(now)
    with engine.begin() as conn:
        return conn.execute(
            update(subscriptions)
            .where(subscriptions.c.email == email, subscriptions.c.status.in_(("active", "paused")))
            .values(status="bouncing", changed_at=now, last_error=error[:500])
        ).rowcount


def active(engine: Engine, kind: str, period: str | None = None) -> list[dict]:
    conditions = [subscriptions.c.kind == kind, subscriptions.c.status == "active"]
    if period:
        conditions.append(subscriptions.c.period == period)
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                select(subscriptions).where(and_(*conditions)).order_by(subscriptions.c.pk)
            ).mappings()
        ]


def forget_request(engine: Engine, pk: int) -> None:
    """The confirmation mail could not be sent: let the address ask again at once."""
    with engine.begin() as conn:
        conn.execute(update(subscriptions).where(subscriptions.c.pk == pk).values(requested_at=None))
