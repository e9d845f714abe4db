"""Accounts on both databases: sign-up checks, sign-in, sessions, resets, API tokens.

Sign-in throttling, verified addresses and password changes: tests/test_security_accounts.py."""

import hashlib
from datetime import datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, insert, select

from dailypapers import accounts
from dailypapers.accounts import verification
from dailypapers.accounts import (
    AccountError,
    authenticate,
    create_api_token,
    create_session,
    end_session,
    finish_password_reset,
    grant_admin,
    revoke_api_token,
    session_user,
    sign_up,
    start_password_reset,
    token_user,
)
from dailypapers.store.schema import sessions, users

T0 = datetime(2026, 3, 1, 12, 0, 0)
CLIENT = "192.0.2.1"
BAD_EMAIL = ("email", "Enter a valid email address, like name@example.com.")
BAD_NAME = ("username", "A username is 2 to 40 letters, digits, '-' or '_'.")


def refused(call, *args, **kwargs) -> tuple[str, str]:
    with pytest.raises(AccountError) as info:
        call(*args, **kwargs)
    return info.value.field, str(info.value)


def user_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(users)).scalar_one()


@pytest.fixture(autouse=True)
def quick_hashing(request, monkeypatch):
    """Cheap argon2 parameters (the defaults take ~0.4 s a hash here); one test keeps the real ones."""
    if "real_hashing" not in request.fixturenames:
        monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def ada(engine) -> int:
    return sign_up(engine, "Ada@Example.org", "correct horse", "ada")


@pytest.fixture
def real_hashing() -> None:
    """Asked for by a test that must hash with the production parameters."""


def test_sign_up_stores_a_normalized_address_and_an_argon2_hash(real_hashing, engine, ada):
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.pk == ada)).mappings().one()
    assert row["email"] == "ada@example.org" and row["username"] == "ada" and row["is_admin"] is False
    assert row["password_hash"].startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # the library's defaults
    assert "correct horse" not in row["password_hash"]
    assert authenticate(engine, "  ADA@example.org ", "correct horse", client=CLIENT) == ada


def test_duplicate_email_and_username_are_refused_whatever_their_case(engine, ada):
    assert refused(sign_up, engine, "ada@EXAMPLE.org", "another pass", "ada2") == (
        "email", "That address is already registered.")
    assert refused(sign_up, engine, "bob@example.org", "another pass", "ADA") == (
        "username", "That username is taken.")
    assert user_count(engine) == 1


def test_imported_submitters_keep_their_usernames_and_cannot_sign_in(engine):
    with engine.begin() as conn:  # as ingest creates a Hugging Face submitter: no email, no password
        conn.execute(insert(users).values(username="akhaliq", created_at=T0))
    assert refused(sign_up, engine, "me@example.org", "long enough", "akhaliq") == (
        "username", "That username is taken.")


@pytest.mark.parametrize("email, password, username, expected", [
    ("", "long enough", "bob", ("email", "Enter your email address.")),
    ("bob", "long enough", "bob", BAD_EMAIL),
    ("bob@example", "long enough", "bob", BAD_EMAIL),
    ("bob smith@example.org", "long enough", "bob", BAD_EMAIL),
    ("a@b@example.org", "long enough", "bob", BAD_EMAIL),
    ("b" * 65 + "@example.org", "long enough", "bob", BAD_EMAIL),
    ("bob@" + "x" * 320 + ".org", "long enough", "bob",
     ("email", "An email address can be at most 320 characters.")),
    ("bob@example.org", "short", "bob", ("password", "A password needs at least 8 characters.")),
    ("bob@example.org", "x" * 257, "bob", ("password", "A password can be at most 256 characters.")),
    ("bob@example.org", "long enough", "b", BAD_NAME),
    ("bob@example.org", "long enough", "bob smith", BAD_NAME),
    ("bob@example.org", "long enough", "böb", BAD_NAME),
    ("bob@example.org", "long enough", "b" * 41, BAD_NAME),
])
def test_sign_up_names_the_field_at_fault(engine, email, password, username, expected):
    assert refused(sign_up, engine, email, password, username) == expected
    assert user_count(engine) == 0


def test_limits_are_inclusive(engine):
    assert sign_up(engine, "bob@example.org", "x" * 8, "b-")
    assert sign_up(engine, "carol@example.org", "x" * 256, "C_" + "c" * 38)


def test_wrong_password_and_unknown_address_get_the_same_answer(engine, ada):
    assert refused(authenticate, engine, "ada@example.org", "wrong horse", client=CLIENT) == (
        "password", "Wrong email or password.")
    assert refused(authenticate, engine, "nobody@example.org", "correct horse", client=CLIENT) == (
        "password", "Wrong email or password.")


def test_a_success_clears_the_failures_of_its_account(engine, ada):
    for _ in range(4):
        refused(authenticate, engine, "ada@example.org", "wrong horse", client=CLIENT)
    authenticate(engine, "ada@example.org", "correct horse", client=CLIENT)
    for _ in range(4):  # four more free guesses: the success wiped the count
        refused(authenticate, engine, "ada@example.org", "wrong horse", client=CLIENT)
    assert authenticate(engine, "ada@example.org", "correct horse", client=CLIENT) == ada


def test_sessions_are_looked_up_by_token_expire_and_end(engine, ada):
    token = create_session(engine, ada, days=30, now=T0)
    with engine.connect() as conn:
        stored = conn.execute(select(sessions.c.token_hash)).scalar_one()
    assert stored == hashlib.sha256(token.encode()).hexdigest() and len(token) >= 43  # 32 random bytes
    user = session_user(engine, token, now=T0 + timedelta(days=29))
    assert user["pk"] == ada and user["username"] == "ada" and user["email"] == "ada@example.org"
    assert user["is_admin"] is False and "password_hash" not in user
    assert session_user(engine, token, now=T0 + timedelta(days=30, seconds=1)) is None
    assert session_user(engine, token + "x", now=T0) is None
    assert session_user(engine, None) is None and session_user(engine, "") is None
    other = create_session(engine, ada, now=T0)
    end_session(engine, token)
    assert session_user(engine, token, now=T0) is None
    assert session_user(engine, other, now=T0)["pk"] == ada  # signing out ends only that session
    end_session(engine, "not a token")  # nothing to end is not an error


def test_password_reset_is_single_use_and_expires(engine, ada):
    assert start_password_reset(engine, "nobody@example.org") is None
    assert start_password_reset(engine, "ada@example.org") is None  # not verified: no mail but that
    verification.mark_verified(engine, "ada@example.org")
    session = create_session(engine, ada, now=T0)
    token, stored = start_password_reset(engine, "ADA@example.org", now=T0)
    assert stored == "ada@example.org"  # the mail goes to the stored address, not to what was typed
    # A refused new password does not use the link up.
    assert refused(finish_password_reset, engine, token, "short", now=T0) == (
        "password", "A password needs at least 8 characters.")
    assert finish_password_reset(engine, token, "battery staple", now=T0 + timedelta(minutes=5)) == ada
    assert authenticate(engine, "ada@example.org", "battery staple", client=CLIENT) == ada
    old = refused(authenticate, engine, "ada@example.org", "correct horse", client=CLIENT)
    assert old == ("password", "Wrong email or password.")
    assert session_user(engine, session, now=T0) is None  # a reset signs out everywhere
    expired = "This reset link has expired or was already used."
    assert refused(finish_password_reset, engine, token, "third password", now=T0 + timedelta(minutes=6)) == (
        "token", expired)
    late, _ = start_password_reset(engine, "ada@example.org", now=T0)
    assert refused(finish_password_reset, engine, late, "third password", now=T0 + timedelta(minutes=61)) == (
        "token", expired)
    assert refused(finish_password_reset, engine, "made-up", "third password") == ("token", expired)
    assert authenticate(engine, "ada@example.org", "battery staple", client=CLIENT) == ada


def test_a_reset_voids_the_other_links_of_the_user(engine, ada):
    verification.mark_verified(engine, "ada@example.org")
    first, _ = start_password_reset(engine, "ada@example.org", now=T0)
    second, _ = start_password_reset(engine, "ada@example.org", now=T0)
    finish_password_reset(engine, second, "battery staple", now=T0)
    assert refused(finish_password_reset, engine, first, "third password", now=T0)[0] == "token"


def test_api_tokens_are_shown_once_replace_each_other_and_can_be_revoked(engine, ada):
    token = create_api_token(engine, ada)
    assert token.startswith("dp_") and token_user(engine, token)["username"] == "ada"
    with engine.connect() as conn:
        stored = conn.execute(select(users.c.api_token_hash)).scalar_one()
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    newer = create_api_token(engine, ada)
    assert token_user(engine, token) is None and token_user(engine, newer)["pk"] == ada
    assert token_user(engine, "dp_guess") is None and token_user(engine, None) is None
    revoke_api_token(engine, ada)
    assert token_user(engine, newer) is None
    assert refused(create_api_token, engine, 999_999) == ("user", "No such user.")


def test_grant_admin(engine, ada):
    assert refused(grant_admin, engine, "nobody@example.org") == (
        "email", "No account has the address nobody@example.org.")
    assert grant_admin(engine, "Ada@example.org") == ada
    token = create_session(engine, ada)
    assert session_user(engine, token)["is_admin"] is True
    grant_admin(engine, "ada@example.org", admin=False)
    assert session_user(engine, token)["is_admin"] is False


def test_a_hash_made_with_weaker_parameters_is_upgraded_at_sign_in(engine, ada, monkeypatch):
    stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    monkeypatch.setattr(accounts, "_hasher", stronger)
    assert authenticate(engine, "ada@example.org", "correct horse", client=CLIENT) == ada
    with engine.connect() as conn:
        stored = conn.execute(select(users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$v=19$m=2048,t=2,p=1$")
    assert authenticate(engine, "ada@example.org", "correct horse", client=CLIENT) == ada
