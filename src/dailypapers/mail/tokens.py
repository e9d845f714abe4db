"""Links in mail carry random tokens (32 bytes, URL-safe) that are stored only as their SHA-256 and
are good for one purpose each: ``confirm`` (once, for CONFIRM_VALID), ``manage`` and ``unsubscribe``
(every mail has its own pair, valid for MANAGE_VALID and UNSUBSCRIBE_VALID). A copy of the database
gives nobody a working link.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine

from dailypapers.mail.clock import utc_now
from dailypapers.store.schema import mail_tokens, subscriptions

CONFIRM_VALID = timedelta(days=7)
MANAGE_VALID = timedelta(days=90)
UNSUBSCRIBE_VALID = timedelta(days=365)
VALID_FOR = {"confirm": CONFIRM_VALID, "manage": MANAGE_VALID, "unsubscribe": UNSUBSCRIBE_VALID}

Purpose = Literal["confirm", "manage", "unsubscribe"]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(conn: Connection, subscription_pk: int, purpose: Purpose, now: datetime) -> str:
    """A fresh token for a link; only its SHA-256 is stored. Returns the token (put it in the mail)."""
    token = secrets.token_urlsafe(32)
    conn.execute(
        insert(mail_tokens).values(
            token_hash=_hash(token),
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
    now = utc_now(now)
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        return TokenCheck(None, "unknown")
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(mail_tokens).where(
                    mail_tokens.c.token_hash == _hash(token), mail_tokens.c.purpose == purpose
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
    now = utc_now(now)
    with engine.begin() as conn:
        return conn.execute(
            delete(mail_tokens).where(
                or_(
                    mail_tokens.c.expires_at < now - timedelta(days=30),
                    mail_tokens.c.used_at < now - timedelta(days=30),
                )
            )
        ).rowcount



def use_token(conn: Connection, token: str, now: datetime) -> bool:
    """Mark a token used; False when it already was (a link opened twice at the same moment)."""
    return bool(
        conn.execute(
            update(mail_tokens)
            .where(mail_tokens.c.token_hash == _hash(token), mail_tokens.c.used_at.is_(None))
            .values(used_at=now)
        ).rowcount
    )
