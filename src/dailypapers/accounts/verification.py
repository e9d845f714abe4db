"""Verified addresses: an account's address counts once its owner opens the link mailed to it, or
once the operator vouches for it (`dailypapers admin verify EMAIL`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from dailypapers.accounts import AccountError, _digest, _new_token, _now, normalize_email
from dailypapers.store.schema import email_verifications, users

VERIFY_VALID = timedelta(hours=48)
VERIFY_EXPIRED = "This verification link has expired or was already used."


def start_verification(engine: Engine, user_pk: int, *, now: datetime | None = None) -> tuple[str, str]:
    """(token, address): a verification link (valid VERIFY_VALID, once) for the account's address."""
    now = _now(now)
    token, digest = _new_token()
    with engine.begin() as conn:
        email = conn.execute(select(users.c.email).where(users.c.pk == user_pk)).scalar()
        if not email:
            raise AccountError("user", "No such user.")
        conn.execute(insert(email_verifications).values(token_hash=digest, user_pk=user_pk, email=email,
                                                        expires_at=now + VERIFY_VALID))
    return token, email


def _live_link(token: str, now: datetime) -> tuple:
    """Where-clauses for a verification link that is known, unused and unexpired."""
    v = email_verifications.c
    return v.token_hash == _digest(token), v.used_at.is_(None), v.expires_at > now


def verification_open(engine: Engine, token: str, *, now: datetime | None = None) -> bool:
    """Whether a verification link still works (looked at, not used: a GET must change nothing)."""
    if not token or not isinstance(token, str):
        return False
    with engine.connect() as conn:
        query = select(email_verifications.c.user_pk).where(*_live_link(token, _now(now)))
        return conn.execute(query).first() is not None


def verify_email(engine: Engine, token: str, *, now: datetime | None = None) -> int:
    """Use a verification link: the account's address counts as verified; returns the user pk.
    AccountError("token", VERIFY_EXPIRED) for an unknown, expired or used link."""
    now = _now(now)
    if not token or not isinstance(token, str):
        raise AccountError("token", VERIFY_EXPIRED)
    with engine.begin() as conn:
        row = conn.execute(
            update(email_verifications)
            .where(*_live_link(token, now))
            .values(used_at=now)
            .returning(email_verifications.c.user_pk, email_verifications.c.email)
        ).first()
        if row is None:
            raise AccountError("token", VERIFY_EXPIRED)
        conn.execute(update(users).where(users.c.pk == row.user_pk, users.c.email == row.email,
                                         users.c.email_verified_at.is_(None)).values(email_verified_at=now))
    return row.user_pk


def mark_verified(engine: Engine, email: str, *, now: datetime | None = None) -> int:
    """The operator vouches for an account's address (a lab without SMTP); returns its pk."""
    address = normalize_email(email)
    with engine.begin() as conn:
        pk = conn.execute(select(users.c.pk).where(users.c.email == address)).scalar()
        if pk is None:
            raise AccountError("email", f"No account has the address {address}.")
        conn.execute(update(users).where(users.c.pk == pk, users.c.email_verified_at.is_(None))
                     .values(email_verified_at=_now(now)))
    return pk


def unverified_account(engine: Engine, email: str) -> int | None:
    """The pk of the account with this address when the address is not verified yet."""
    with engine.connect() as conn:
        return conn.execute(select(users.c.pk).where(users.c.email == normalize_email(email),
                                                     users.c.email_verified_at.is_(None))).scalar()
