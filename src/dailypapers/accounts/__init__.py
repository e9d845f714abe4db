"""Accounts: sign-up, sign-in with back-off, sessions, password resets and changes, API tokens,
admins; verified addresses in verification.py.

Plain functions over an Engine; the web turns ``AccountError`` into a form message beside its field
and ``throttle.Throttled`` (sign-in back-off, a busy hasher) into a "try again in ..." message.
Passwords are hashed with argon2id, at most HASHES_AT_ONCE at a time per process (64 MiB each).
Session, reset, verification and API tokens are 32 random bytes handed to the user once; only their
SHA-256 is stored, so a copy of the database opens no account.
Times are naive UTC, as everywhere in the store; ``now`` may be passed in (tests, jobs).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from dailypapers import throttle
from dailypapers.store.schema import email_verifications, password_resets, sessions, users

EMAIL_MAX = 320
EMAIL_LOCAL_MAX = 64
PASSWORD_MIN = 8
PASSWORD_MAX = 256
USERNAME = re.compile(r"[A-Za-z0-9_-]{2,40}")
# One @, something on each side, a dot in the domain, no spaces or control characters: syntax only
# (whether the address receives mail is what a confirmation email finds out).
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f.]+(?:\.[^@\s\x00-\x1f\x7f.]+)+")

SESSION_DAYS = 30
RESET_VALID = timedelta(hours=1)
# Sign-in guesses go through throttle.attempt: this many free per hour, then exponential back-off
# (2 s, 4 s, ... at most 15 min between guesses). Per account, and (more, for shared NATs) per client.
GUESSES_PER_ACCOUNT = 5
GUESSES_PER_CLIENT = 30
# argon2 takes 64 MiB a hash: a few at once per process, the others wait HASH_WAIT seconds at most.
HASHES_AT_ONCE = 2
HASH_WAIT = 5.0
API_TOKEN_PREFIX = "dp_"  # recognisable in logs and secret scanners

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the email is unknown, so an unknown address takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password of anyone")

USER_COLUMNS = (users.c.pk, users.c.username, users.c.fullname, users.c.avatar_url, users.c.email,
                users.c.is_admin, users.c.created_at, users.c.email_verified_at)
_hash_slots = threading.BoundedSemaphore(HASHES_AT_ONCE)


class AccountError(ValueError):
    """A form's input refused: which field, and a sentence to show beside it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class Busy(throttle.Throttled):
    """Every password-hashing slot of this process stayed taken for HASH_WAIT seconds."""

    @property
    def message(self) -> str:
        return "The server is busy; try again in a few seconds."


def _hashing(work, *args: str):  # noqa: ANN001, ANN202
    """Run an argon2 call in one of the process's few slots (memory, not CPU, is the bound)."""
    if not _hash_slots.acquire(timeout=HASH_WAIT):
        raise Busy(HASH_WAIT)
    try:
        return work(*args)
    finally:
        _hash_slots.release()


def _hash(password: str) -> str:
    return _hashing(_hasher.hash, password)


def _verify(stored: str, password: str) -> bool:
    """True when the password matches the hash; False otherwise (never raises for a mismatch)."""
    try:
        return _hashing(_hasher.verify, stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc).replace(tzinfo=None)
    if now.tzinfo is not None:
        now = now.astimezone(timezone.utc).replace(tzinfo=None)
    return now


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, _digest(token)


# --- validation ---------------------------------------------------------------------------------


def normalize_email(email: str) -> str:
    """The address as stored and looked up: trimmed and lower-cased."""
    return email.strip().lower() if isinstance(email, str) else ""


def check_email(email: str) -> str:
    address = normalize_email(email)
    if not address:
        raise AccountError("email", "Enter your email address.")
    if len(address) > EMAIL_MAX:
        raise AccountError("email", f"An email address can be at most {EMAIL_MAX} characters.")
    if not _EMAIL.fullmatch(address) or len(address.partition("@")[0]) > EMAIL_LOCAL_MAX:
        raise AccountError("email", "Enter a valid email address, like name@example.com.")
    return address


def check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < PASSWORD_MIN:
        raise AccountError("password", f"A password needs at least {PASSWORD_MIN} characters.")
    if len(password) > PASSWORD_MAX:
        raise AccountError("password", f"A password can be at most {PASSWORD_MAX} characters.")
    return password


def check_username(username: str) -> str:
    name = username.strip() if isinstance(username, str) else ""
    if not USERNAME.fullmatch(name):
        raise AccountError("username", "A username is 2 to 40 letters, digits, '-' or '_'.")
    return name


def _email_taken(conn: Connection, address: str) -> bool:
    return conn.execute(select(users.c.pk).where(users.c.email == address)).first() is not None


def _username_taken(conn: Connection, name: str) -> bool:
    query = select(users.c.pk).where(func.lower(users.c.username) == name.lower())
    return conn.execute(query).first() is not None


# --- sign-up and sign-in ------------------------------------------------------------------------


def sign_up(engine: Engine, email: str, password: str, username: str, *, now: datetime | None = None) -> int:
    """Create an account; returns the new user's pk. Raises AccountError naming the field at fault.

    Usernames are unique regardless of case, and include the submitters imported from Hugging Face
    (those accounts have no password, so nobody can sign in as them).
    """
    address = check_email(email)
    name = check_username(username)
    check_password(password)
    hashed = _hash(password)
    try:
        with engine.begin() as conn:
            if _email_taken(conn, address):
                raise AccountError("email", "That address is already registered.")
            if _username_taken(conn, name):
                raise AccountError("username", "That username is taken.")
            return conn.execute(insert(users).values(
                username=name, email=address, password_hash=hashed, is_admin=False, created_at=_now(now),
            ).returning(users.c.pk)).scalar_one()
    except IntegrityError:  # someone took the address or name between our check and our insert
        with engine.connect() as conn:
            if _email_taken(conn, address):
                raise AccountError("email", "That address is already registered.") from None
        raise AccountError("username", "That username is taken.") from None


def _guess_key(kind: str, value: str) -> str:
    """A throttle key; long values (a 320-character address) are stored as their digest."""
    key = f"signin:{kind}:{value}"
    return key if len(key) <= 200 else f"signin:{kind}:sha256:{_digest(value)}"


def authenticate(engine: Engine, email: str, password: str, *, client: str | None = None,
                 now: datetime | None = None) -> int:
    """The user pk for a correct email and password; AccountError("password", ...) otherwise.

    Every guess is counted before the password is checked, per account (GUESSES_PER_ACCOUNT free an
    hour) and per client address (GUESSES_PER_CLIENT), then back-off: throttle.Throttled says when
    to try again, even for the right password. A success clears the account's count (not the
    client's: one known password must not buy more guesses at others).
    """
    address = normalize_email(email)
    account_key = _guess_key("acct", address)
    throttle.attempt(engine, account_key, free=GUESSES_PER_ACCOUNT)
    if client:
        throttle.attempt(engine, _guess_key("ip", client), free=GUESSES_PER_CLIENT)
    with engine.connect() as conn:
        row = conn.execute(select(users.c.pk, users.c.password_hash).where(users.c.email == address)).first()
    stored = row.password_hash if row is not None else None
    # An unknown address takes as long as a wrong password.
    ok = _verify(stored or _DUMMY_HASH, password if isinstance(password, str) else "") and stored is not None
    if not ok:
        raise AccountError("password", "Wrong email or password.")
    throttle.forget(engine, account_key)
    if _hasher.check_needs_rehash(stored):  # parameters got stronger since this hash was made
        rehashed = _hash(password)
        with engine.begin() as conn:
            conn.execute(update(users).where(users.c.pk == row.pk).values(password_hash=rehashed))
    return row.pk


def _end_everything(conn: Connection, user_pk: int) -> None:
    """After a reset or a password change: every session ends and the API token stops working."""
    conn.execute(delete(sessions).where(sessions.c.user_pk == user_pk))
    conn.execute(update(users).where(users.c.pk == user_pk).values(api_token_hash=None))


def set_password(engine: Engine, user_pk: int, new_password: str) -> None:
    """Replace a user's password (checked like at sign-up); ends all their sessions, revokes the API token."""
    check_password(new_password)
    hashed = _hash(new_password)
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.pk == user_pk).values(password_hash=hashed))
        _end_everything(conn, user_pk)


def change_password(engine: Engine, user_pk: int, current: str, new_password: str) -> None:
    """Change a password knowing the current one (guesses of it are throttled like sign-ins)."""
    check_password(new_password)
    key = f"password:user:{user_pk}"
    throttle.attempt(engine, key, free=GUESSES_PER_ACCOUNT)
    with engine.connect() as conn:
        stored = conn.execute(select(users.c.password_hash).where(users.c.pk == user_pk)).scalar()
    if not stored or not _verify(stored, current if isinstance(current, str) else ""):
        raise AccountError("current", "That is not your current password.")
    throttle.forget(engine, key)
    set_password(engine, user_pk, new_password)


# --- sessions -----------------------------------------------------------------------------------


def create_session(engine: Engine, user_pk: int, days: int = SESSION_DAYS, *,
                   now: datetime | None = None) -> str:
    """A new session token for the user (for a cookie); valid ``days`` days."""
    now = _now(now)
    token, digest = _new_token()
    with engine.begin() as conn:
        conn.execute(insert(sessions).values(token_hash=digest, user_pk=user_pk, created_at=now,
                                             expires_at=now + timedelta(days=days)))
    return token


def _user(conn: Connection, *where) -> dict | None:  # noqa: ANN002
    row = conn.execute(select(*USER_COLUMNS).where(*where)).mappings().first()
    return dict(row) if row is not None else None


def session_user(engine: Engine, token: str | None, *, now: datetime | None = None) -> dict | None:
    """The user of an unexpired session (pk, username, fullname, avatar_url, email, is_admin, created_at)."""
    if not token or not isinstance(token, str):
        return None
    with engine.connect() as conn:
        return _user(conn, users.c.pk == sessions.c.user_pk, sessions.c.token_hash == _digest(token),
                     sessions.c.expires_at > _now(now))


def end_session(engine: Engine, token: str | None) -> None:
    """Sign out: the token stops working (an unknown token is not an error)."""
    if token and isinstance(token, str):
        with engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.token_hash == _digest(token)))


def end_all_sessions(engine: Engine, user_pk: int) -> None:
    with engine.begin() as conn:
        conn.execute(delete(sessions).where(sessions.c.user_pk == user_pk))


# --- password resets ----------------------------------------------------------------------------

RESET_EXPIRED = "This reset link has expired or was already used."


def start_password_reset(engine: Engine, email: str, *,
                         now: datetime | None = None) -> tuple[str, str] | None:
    """(token, stored address): a reset link (valid RESET_VALID, once) to mail to the address the
    account has; None when no account has it, or when the address is not verified yet (it gets no
    mail but the verification: see ``unverified_account``).

    The web shows the same message either way, so the form tells no one which addresses exist.
    """
    now = _now(now)
    with engine.begin() as conn:
        row = conn.execute(select(users.c.pk, users.c.email, users.c.email_verified_at)
                           .where(users.c.email == normalize_email(email))).first()
        if row is None or row.email_verified_at is None:
            return None
        token, digest = _new_token()
        conn.execute(insert(password_resets).values(token_hash=digest, user_pk=row.pk,
                                                    expires_at=now + RESET_VALID))
    return token, row.email


def finish_password_reset(engine: Engine, token: str, new_password: str, *,
                          now: datetime | None = None) -> int:
    """Set the new password with a reset token; returns the user pk. Ends all the user's sessions,
    revokes the API token and clears the sign-in back-off of the account.

    AccountError("token", RESET_EXPIRED) for an unknown, expired or used token; the password is
    checked first, so a too-short one does not use up the link.
    """
    check_password(new_password)
    now = _now(now)
    if not token or not isinstance(token, str):
        raise AccountError("token", RESET_EXPIRED)
    hashed = _hash(new_password)
    with engine.begin() as conn:
        # One UPDATE claims the token: of two concurrent uses, only one sees used_at still empty.
        user_pk = conn.execute(
            update(password_resets)
            .where(password_resets.c.token_hash == _digest(token), password_resets.c.used_at.is_(None),
                   password_resets.c.expires_at > now)
            .values(used_at=now)
            .returning(password_resets.c.user_pk)
        ).scalar()
        if user_pk is None:
            raise AccountError("token", RESET_EXPIRED)
        conn.execute(update(users).where(users.c.pk == user_pk).values(password_hash=hashed))
        _end_everything(conn, user_pk)
        # The user's other outstanding links are void too.
        conn.execute(update(password_resets)
                     .where(password_resets.c.user_pk == user_pk, password_resets.c.used_at.is_(None))
                     .values(used_at=now))
        email = conn.execute(select(users.c.email).where(users.c.pk == user_pk)).scalar_one()
    # Whoever was guessing the old password no longer holds the owner back from the new one.
    throttle.forget(engine, _guess_key("acct", email))
    return user_pk


# --- API tokens and admins ----------------------------------------------------------------------


def create_api_token(engine: Engine, user_pk: int) -> str:
    """A new personal API token (``Authorization: Bearer dp_...``); replaces the previous one. Shown once."""
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        found = conn.execute(update(users).where(users.c.pk == user_pk).values(api_token_hash=_digest(token)))
        if found.rowcount != 1:
            raise AccountError("user", "No such user.")
    return token


def revoke_api_token(engine: Engine, user_pk: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.pk == user_pk).values(api_token_hash=None))


def token_user(engine: Engine, token: str | None) -> dict | None:
    """The user a personal API token belongs to (same keys as session_user), or None."""
    if not token or not isinstance(token, str) or not token.startswith(API_TOKEN_PREFIX):
        return None
    with engine.connect() as conn:
        return _user(conn, users.c.api_token_hash == _digest(token))


def get_user(engine: Engine, user_pk: int) -> dict | None:
    with engine.connect() as conn:
        return _user(conn, users.c.pk == user_pk)


def grant_admin(engine: Engine, email: str, admin: bool = True) -> int:
    """Make the account with this address an admin (or not, with ``admin=False``); returns its pk."""
    with engine.begin() as conn:
        pk = conn.execute(update(users).where(users.c.email == normalize_email(email)).values(is_admin=admin)
                          .returning(users.c.pk)).scalar()
    if pk is None:
        raise AccountError("email", f"No account has the address {normalize_email(email)}.")
    return pk


def purge_expired(engine: Engine, *, now: datetime | None = None) -> int:
    """Delete expired sessions, reset and verification links, and expired throttle counts (a
    periodic job: see mail/schedule.py); returns the rows deleted."""
    now = _now(now)
    with engine.begin() as conn:
        n = conn.execute(delete(sessions).where(sessions.c.expires_at <= now)).rowcount
        n += conn.execute(delete(password_resets).where(password_resets.c.expires_at <= now)).rowcount
        n += conn.execute(delete(email_verifications).where(email_verifications.c.expires_at <= now)).rowcount
    return n + throttle.purge(engine)
