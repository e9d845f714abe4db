"""Accounts hardened (issue 12), on SQLite and PostgreSQL, through the real app (TestClient) and a real
SMTP server: verified addresses, one-button confirm and verify links, CSRF tied to the session,
throttled sign-in (per account and per client address, parallel guesses included), sign-up, reset,
verification and subscribe forms, the bound on concurrent password hashes, password change, sign out
everywhere, API-token revocation, and the purge of expired rows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select, update
from test_mail_delivery import link, load_sample, mail_settings, smtp  # noqa: F401 - fixture

from dailypapers import accounts, jobs, throttle
from dailypapers.accounts import verification
from dailypapers.accounts import AccountError
from dailypapers.mail import schedule
from dailypapers.mail import subscriptions as subs
from dailypapers.mail.subscription_spec import check_spec
from dailypapers.store.schema import email_verifications, password_resets, sessions, throttle_hits, users
from dailypapers.web.app import create_app

ADA = "ada@example.org"
BIN = Path(sys.executable).with_name("dailypapers")


@pytest.fixture(autouse=True)
def quick_hashing(monkeypatch):
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def settings(engine, db_url, tmp_path, smtp):  # noqa: F811
    load_sample(engine)
    return mail_settings(db_url, tmp_path, smtp)


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def site(app):
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def client_at(app, address: str, base_url: str = "http://testserver") -> TestClient:
    """Another browser, from another client address (request.client.host)."""
    return TestClient(app, base_url=base_url, client=(address, 50000), raise_server_exceptions=False)


def csrf(client, path="/") -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get(path).text).group(1)


def sign_up(client, email=ADA, username="ada", password="correct horse"):
    response = client.post("/signup", data={"email": email, "username": username, "password": password,
                                            "csrf_token": csrf(client, "/signup")}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return response


def sign_in(client, email=ADA, password="correct horse"):
    return client.post("/login", data={"email": email, "password": password, "csrf_token": csrf(client, "/login")},
                       follow_redirects=False)


def post(client, path, data=None, page="/"):
    return client.post(path, data={"csrf_token": csrf(client, page), **(data or {})}, follow_redirects=False)


def verified_at(engine, email=ADA):
    with engine.connect() as conn:
        return conn.execute(select(users.c.email_verified_at).where(users.c.email == email)).scalar_one()


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# --- verified addresses -------------------------------------------------------------------------------


def test_sign_up_mails_a_verification_link_that_a_get_does_not_use(site, engine, smtp):  # noqa: F811
    sign_up(site, email="Ada@Example.org")
    (mail,) = smtp.messages
    assert mail.to == ADA and mail.message["Subject"] == "Confirm your address for dailypapers"
    path = link(mail.message.get_content(), "/verify/")
    token = path.rsplit("/", 1)[1]
    with engine.connect() as conn:  # stored only as its SHA-256, valid 48 hours
        row = conn.execute(select(email_verifications)).mappings().one()
    assert row["token_hash"] != token and re.fullmatch(r"[0-9a-f]{64}", row["token_hash"])
    assert timedelta(hours=47) < row["expires_at"] - datetime.utcnow() <= timedelta(hours=48)
    assert "is not verified yet" in site.get("/account").text

    opened = site.get(path)  # what a mail scanner does: nothing changes
    assert opened.status_code == 200 and "Verify my address" in opened.text
    assert site.get(path).status_code == 200 and verified_at(engine) is None

    anonymous = client_at(site.app, "198.51.100.9")  # the link works in any browser, signed in or not
    done = anonymous.post(path, data={"csrf_token": csrf(anonymous, path)})
    assert done.status_code == 200 and "Your address is verified" in done.text
    assert verified_at(engine) is not None
    again = anonymous.post(path, data={"csrf_token": csrf(anonymous, "/")})
    assert again.status_code == 410 and "expired or was already used" in again.text
    assert site.get(path).status_code == 410
    assert "(verified)" in site.get("/account").text


def test_a_verification_link_expires(site, engine, smtp):  # noqa: F811
    sign_up(site)
    path = link(smtp.messages[0].message.get_content(), "/verify/")
    with engine.begin() as conn:
        conn.execute(update(email_verifications).values(expires_at=datetime.utcnow() - timedelta(seconds=1)))
    assert site.get(path).status_code == 410
    assert post(site, path).status_code == 410 and verified_at(engine) is None
    with pytest.raises(AccountError):
        verification.verify_email(engine, "made-up")


def test_an_unverified_account_with_someone_elses_address_sees_and_changes_none_of_their_mail(
        site, app, engine, smtp):  # noqa: F811
    victim = subs.subscribe(engine, check_spec(ADA, kind="alert", query="robots"), confirmed=True).subscription
    sign_up(site)  # Mallory, with Ada's address
    page = site.get("/subscriptions")
    assert page.status_code == 200 and "robots" not in page.text and "Verify your address first" in page.text
    for action in ("pause", "delete", "weekly"):
        refused = post(site, "/subscriptions", {"pk": victim["pk"], "action": action}, "/subscriptions")
        assert refused.status_code == 403 and "Verify your address first" in refused.text
    assert subs.get(engine, victim["pk"]) == victim  # untouched
    # Subscribing with the address does not tie anything to the unverified account either.
    form = post(site, "/subscribe", {"email": ADA, "kind": "digest", "period": "daily"}, "/subscribe")
    assert form.status_code == 200
    assert all(s["user_pk"] is None for s in subs.of_address(engine, ADA))
    assert "robots" not in site.get("/subscriptions").text

    # Once the address is verified (here by the operator), its subscriptions are the account's.
    verification.mark_verified(engine, ADA)
    assert "Daily alert for “robots”" in site.get("/subscriptions").text
    paused = post(site, "/subscriptions", {"pk": victim["pk"], "action": "pause"}, "/subscriptions")
    assert "Paused" in paused.text and subs.get(engine, victim["pk"])["status"] == "paused"


def test_a_subscription_is_confirmed_by_the_button_not_by_opening_the_link(site, engine, smtp):  # noqa: F811
    post(site, "/subscribe", {"email": "bob@example.org", "kind": "digest", "period": "weekly"}, "/subscribe")
    path = link(smtp.messages[-1].text(), "/subscriptions/confirm/")
    for _ in range(3):
        opened = site.get(path)
        assert opened.status_code == 200 and 'action="' + path + '" method="post"' in opened.text
    assert subs.of_address(engine, "bob@example.org")[0]["status"] == "pending"
    assert site.post(path, data={"csrf_token": "forged"}).status_code == 403  # the POST needs the page's token
    assert subs.of_address(engine, "bob@example.org")[0]["status"] == "pending"
    assert "You are subscribed" in post(site, path, page=path).text
    assert subs.of_address(engine, "bob@example.org")[0]["status"] == "active"


def test_an_unverified_address_gets_no_mail_but_the_verification(site, app, engine, smtp):  # noqa: F811
    sign_up(site)
    smtp.messages.clear()
    stranger = client_at(app, "198.51.100.20")
    quiet = post(stranger, "/reset", {"email": ADA}, "/reset")  # within a minute of the last verification:
    assert quiet.status_code == 200 and "on its way" in quiet.text and smtp.messages == []  # the same answer
    with engine.begin() as conn:
        conn.execute(update(throttle_hits).values(at=throttle_hits.c.at - 61))
    assert "on its way" in post(stranger, "/reset", {"email": ADA}, "/reset").text
    (mail,) = smtp.messages  # not a reset link: the verification again
    assert "/verify/" in mail.message.get_content() and "/reset/" not in mail.message.get_content()
    verification.mark_verified(engine, ADA)
    post(stranger, "/reset", {"email": "  ADA@Example.ORG "}, "/reset")
    reset = smtp.messages[-1]
    assert reset.to == ADA and "/reset/" in reset.message.get_content()  # to the stored address


def test_the_verification_can_be_sent_again_but_not_in_a_flood(site, engine, smtp):  # noqa: F811
    sign_up(site)
    at_once = post(site, "/account/verify", page="/account")  # sign-up's mail counts
    assert at_once.status_code == 429 and "try again in" in at_once.text
    assert int(at_once.headers["Retry-After"]) > 0 and len(smtp.messages) == 1
    with engine.begin() as conn:  # a minute later
        conn.execute(update(throttle_hits).values(at=throttle_hits.c.at - 61))
    again = post(site, "/account/verify", page="/account")
    assert again.status_code == 200 and f"A new verification link is on its way to {ADA}" in again.text
    assert len(smtp.messages) == 2
    first, second = (link(m.message.get_content(), "/verify/") for m in smtp.messages)
    assert first != second and post(site, first, page=first).status_code == 200  # either link works
    assert "already verified" in post(site, "/account/verify", page="/account").text


def test_admin_verify_from_the_command_line(engine, db_url, tmp_path):
    accounts.sign_up(engine, ADA, "correct horse", "ada")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DAILYPAPERS_")}
    environ |= {"DAILYPAPERS_DATA_DIR": str(tmp_path), "DAILYPAPERS_DATABASE_URL": db_url,
                "DAILYPAPERS_EMBEDDING_RUNTIME": "off", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}

    def run(*args):
        return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=environ, timeout=120)

    done = run("admin", "verify", "Ada@Example.org")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Ada@Example.org is now verified" and verified_at(engine) is not None
    unknown = run("admin", "verify", "nobody@example.org")
    assert unknown.returncode == 1 and "No account has the address nobody@example.org." in unknown.stderr


# --- CSRF tied to the session ---------------------------------------------------------------------------


def test_the_csrf_token_changes_at_sign_in_and_sign_out(site, app, engine):
    accounts.sign_up(engine, ADA, "correct horse", "ada")
    anonymous = csrf(site, "/login")
    first = site.cookies.get("dp_anon")
    assert first and anonymous != first  # derived from the cookie, not a copy of it
    assert csrf(site, "/") == anonymous  # stable within the session
    signed_in = site.post("/login", data={"email": ADA, "password": "correct horse", "csrf_token": anonymous},
                          follow_redirects=False)
    assert signed_in.status_code == 303
    cookies = signed_in.headers.get_list("set-cookie")
    assert any(c.startswith("dp_session=") and "HttpOnly" in c and "SameSite=lax" in c for c in cookies)
    assert not any("Secure" in c for c in cookies)  # plain http (localhost) keeps working
    # The token from before sign-in no longer works.
    assert site.post("/account/token", data={"csrf_token": anonymous}).status_code == 403
    session_token = csrf(site, "/account")
    assert session_token != anonymous
    assert site.post("/account/token", data={"csrf_token": session_token}).status_code == 200

    # Another session of the same user has its own token; neither works in the other.
    other = client_at(app, "198.51.100.2")
    assert sign_in(other).status_code == 303
    assert other.post("/account/token", data={"csrf_token": session_token}).status_code == 403
    assert site.post("/account/token", data={"csrf_token": csrf(other, "/account")}).status_code == 403
    # A visitor's token does not work for another visitor.
    visitor = client_at(app, "198.51.100.3")
    assert csrf(visitor, "/login") != anonymous
    assert visitor.post("/login", data={"email": ADA, "password": "correct horse",
                                        "csrf_token": anonymous}).status_code == 403

    out = site.post("/logout", data={"csrf_token": session_token}, follow_redirects=False)
    assert out.status_code == 303
    assert site.cookies.get("dp_anon") not in (None, first)  # a fresh anonymous cookie
    assert site.post("/logout", data={"csrf_token": session_token}).status_code == 403
    assert site.post("/login", data={"email": ADA, "password": "correct horse",
                                     "csrf_token": anonymous}).status_code == 403
    assert sign_in(site).status_code == 303  # with the new page's token it works


def test_cookies_are_secure_and_host_prefixed_under_https(engine, db_url, tmp_path, smtp):  # noqa: F811
    accounts.sign_up(engine, ADA, "correct horse", "ada")
    settings = mail_settings(db_url, tmp_path, smtp, base_url="https://testserver")
    client = client_at(create_app(settings), "198.51.100.4", base_url="https://testserver")
    page = client.get("/login")
    (anon,) = page.headers.get_list("set-cookie")
    assert anon.startswith("__Host-dp_anon=") and "Secure" in anon and "HttpOnly" in anon and "Path=/" in anon
    assert "Domain" not in anon and "SameSite=lax" in anon
    response = sign_in(client)
    assert response.status_code == 303
    session = next(c for c in response.headers.get_list("set-cookie") if "dp_session" in c)
    assert session.startswith("__Host-dp_session=") and "Secure" in session and "HttpOnly" in session
    assert client.get("/account").status_code == 200  # the prefixed session cookie signs in


# --- sign-in throttling ------------------------------------------------------------------------------------


def test_wrong_passwords_from_many_addresses_are_refused_after_the_free_ones(site, app, engine):
    accounts.sign_up(engine, ADA, "correct horse", "ada")
    answers = []
    for n in range(12):  # 12 guesses, each from another client address
        response = sign_in(client_at(app, f"203.0.113.{n + 1}"), password=f"guess number {n}")
        answers.append(response.status_code)
    assert answers == [400] * 5 + [429] * 7
    refused = sign_in(client_at(app, "203.0.113.99"))  # even the right password, until the back-off passes
    assert refused.status_code == 429 and "Too many requests; try again in" in refused.text
    assert int(refused.headers["Retry-After"]) >= 1 and 'name="email"' in refused.text
    with engine.begin() as conn:  # the back-off (2 s after the fifth) has passed
        conn.execute(update(throttle_hits).values(at=throttle_hits.c.at - 3))
    assert sign_in(client_at(app, "203.0.113.100")).status_code == 303
    # A success forgets the account's count: five free guesses again.
    assert [sign_in(site, password="wrong again").status_code for _ in range(5)] == [400] * 5


def test_one_client_address_guessing_many_accounts_is_refused(app, engine):
    client = client_at(app, "203.0.113.50")
    statuses = [sign_in(client, email=f"user{n}@example.org", password="a guess!").status_code
                for n in range(accounts.GUESSES_PER_CLIENT + 1)]
    assert statuses == [400] * accounts.GUESSES_PER_CLIENT + [429]
    # Other addresses are not affected.
    assert sign_in(client_at(app, "203.0.113.51"), email="user1@example.org").status_code == 400


def test_parallel_guesses_do_not_slip_between_the_check_and_the_record(engine):
    accounts.sign_up(engine, ADA, "correct horse", "ada")
    barrier = threading.Barrier(16)

    def guess(n: int) -> str:
        barrier.wait()
        try:
            accounts.authenticate(engine, ADA, f"wrong guess {n}", client=f"203.0.113.{n}")
        except throttle.Throttled:
            return "throttled"
        except AccountError:
            return "checked"
        return "signed in"

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(guess, range(16)))
    assert results.count("checked") == accounts.GUESSES_PER_ACCOUNT
    assert results.count("throttled") == 16 - accounts.GUESSES_PER_ACCOUNT


def test_password_hashes_wait_for_a_slot_and_a_busy_worker_says_so(site, engine, monkeypatch):
    accounts.sign_up(engine, ADA, "correct horse", "ada")
    monkeypatch.setattr(accounts, "HASH_WAIT", 0.2)
    held = [accounts._hash_slots.acquire(timeout=1) for _ in range(accounts.HASHES_AT_ONCE)]
    try:
        assert all(held)
        started = time.monotonic()
        busy = sign_in(site)
        assert busy.status_code == 429 and "The server is busy; try again in a few seconds." in busy.text
        assert 0.2 <= time.monotonic() - started < 3
    finally:
        for _ in held:
            accounts._hash_slots.release()
    assert sign_in(site).status_code == 303


def test_many_parallel_hashes_never_run_more_than_the_slots(engine, monkeypatch):
    running, peak, lock = [0], [0], threading.Lock()
    real = accounts._hasher

    class Counting:
        def __getattr__(self, name):
            return getattr(real, name)

        def verify(self, *args):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.05)
            try:
                return real.verify(*args)
            finally:
                with lock:
                    running[0] -= 1

    people = [accounts.sign_up(engine, f"user{n}@example.org", "correct horse", f"user{n}") for n in range(12)]
    monkeypatch.setattr(accounts, "_hasher", Counting())
    with ThreadPoolExecutor(12) as pool:
        signed_in = list(pool.map(lambda n: accounts.authenticate(engine, f"user{n}@example.org", "correct horse",
                                                                  client=f"192.0.2.{n}"), range(12)))
    assert signed_in == people
    assert peak[0] == accounts.HASHES_AT_ONCE


# --- other forms' throttles ----------------------------------------------------------------------------------


def test_sign_ups_from_one_address_are_throttled(app, engine):
    client = client_at(app, "203.0.113.60")
    for n in range(10):
        client.cookies.clear()
        sign_up(client, email=f"user{n}@example.org", username=f"user{n}")
    client.cookies.clear()
    refused = client.post("/signup", data={"email": "user10@example.org", "username": "user10",
                                           "password": "correct horse", "csrf_token": csrf(client, "/signup")})
    assert refused.status_code == 429 and "Too many requests; try again in" in refused.text
    assert 'value="user10@example.org"' in refused.text and refused.headers["Retry-After"]
    assert verification.unverified_account(engine, "user10@example.org") is None  # not created
    assert sign_up(client_at(app, "203.0.113.61"), email="other@example.org", username="other")


def test_reset_requests_are_throttled_per_address_and_per_client(app, engine, smtp):  # noqa: F811
    accounts.sign_up(engine, ADA, "correct horse", "ada")
    verification.mark_verified(engine, ADA)
    statuses = [post(client_at(app, f"203.0.113.{70 + n}"), "/reset", {"email": ADA}, "/reset").status_code
                for n in range(4)]
    assert statuses == [200, 200, 200, 429] and len(smtp.to(ADA)) == 3  # per target address
    client = client_at(app, "203.0.113.80")
    statuses = [post(client, "/reset", {"email": f"n{n}@example.org"}, "/reset").status_code for n in range(11)]
    assert statuses == [200] * 10 + [429]  # per client address
    assert "Too many requests; try again in" in post(client, "/reset", {"email": "x@example.org"}, "/reset").text


def test_the_subscribe_form_is_throttled_per_address_and_per_client(app, engine, smtp):  # noqa: F811
    def ask(client, email, query):
        return post(client, "/subscribe", {"email": email, "kind": "alert", "period": "daily", "query": query},
                    "/subscribe")

    statuses = [ask(client_at(app, f"203.0.113.{90 + n}"), "bob@example.org", f"topic {n}").status_code
                for n in range(6)]
    assert statuses == [200] * 5 + [429] and len(smtp.to("bob@example.org")) == 5
    client = client_at(app, "203.0.113.120")
    statuses = [ask(client, f"reader{n}@example.org", "robots").status_code for n in range(21)]
    assert statuses == [200] * 20 + [429]
    refused = ask(client, "carol@example.org", "robots")
    assert "Too many requests; try again in" in refused.text and 'value="carol@example.org"' in refused.text


# --- password change, sessions, API tokens -----------------------------------------------------------------------


def test_changing_the_password_ends_every_other_session_and_revokes_the_api_token(site, app, engine):
    sign_up(site)
    other = client_at(app, "198.51.100.30")
    assert sign_in(other).status_code == 303
    api_token = accounts.create_api_token(engine, verification.unverified_account(engine, ADA))

    wrong = post(site, "/account/password", {"current": "not it at all", "password": "battery staple"}, "/account")
    assert wrong.status_code == 400 and "That is not your current password." in wrong.text
    short = post(site, "/account/password", {"current": "correct horse", "password": "short"}, "/account")
    assert short.status_code == 400 and "A password needs at least 8 characters." in short.text
    changed = post(site, "/account/password", {"current": "correct horse", "password": "battery staple"},
                   "/account")
    assert changed.status_code == 303
    assert site.get("/account").status_code == 200  # this browser got a new session
    assert other.get("/account").status_code == 401  # the other one is signed out
    assert accounts.token_user(engine, api_token) is None
    assert sign_in(other).status_code == 400
    assert sign_in(other, password="battery staple").status_code == 303


def test_guessing_the_current_password_is_throttled(site):
    sign_up(site)
    statuses = [post(site, "/account/password", {"current": f"guess {n}!", "password": "battery staple"},
                     "/account").status_code for n in range(6)]
    assert statuses == [400] * 5 + [429]


def test_a_reset_ends_every_session_and_revokes_the_api_token(site, app, engine, smtp):  # noqa: F811
    sign_up(site)
    verification.mark_verified(engine, ADA)
    api_token = accounts.create_api_token(engine, verification.mark_verified(engine, ADA))
    guesser = client_at(app, "203.0.113.140")
    assert [sign_in(guesser, password=f"guess {n}!").status_code for n in range(6)][-1] == 429
    stranger = client_at(app, "198.51.100.40")
    post(stranger, "/reset", {"email": ADA}, "/reset")
    path = link(smtp.messages[-1].message.get_content(), "/reset/")
    assert post(stranger, path, {"password": "battery staple"}, path).status_code == 303
    assert site.get("/account").status_code == 401
    assert accounts.token_user(engine, api_token) is None
    # The reset also lifts the back-off the guesser caused: the owner signs in at once.
    assert sign_in(client_at(app, "198.51.100.41"), password="battery staple").status_code == 303


def test_sign_out_everywhere(site, app, engine):
    sign_up(site)
    other = client_at(app, "198.51.100.50")
    assert sign_in(other).status_code == 303
    out = post(site, "/account/sessions/end", page="/account")
    assert (out.status_code, out.headers["location"]) == (303, "/")
    assert site.get("/account").status_code == 401 and other.get("/account").status_code == 401
    assert count(engine, sessions) == 0


def test_the_api_token_is_revoked_and_regenerated_from_the_account_page(site, engine):
    sign_up(site)
    created = post(site, "/account/token", page="/account")
    token = re.search(r"<code>(dp_[^<]+)</code>", created.text).group(1)
    vote = f"/api/papers/{'2506.10326'}/upvote"
    assert site.post(vote, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    revoked = post(site, "/account/token/revoke", page="/account")
    assert revoked.status_code == 200 and "Your API token is revoked" in revoked.text
    assert site.post(vote, headers={"Authorization": f"Bearer {token}"}).status_code == 401
    newer = re.search(r"<code>(dp_[^<]+)</code>", post(site, "/account/token", page="/account").text).group(1)
    assert newer != token and accounts.token_user(engine, newer)["email"] == ADA


# --- the purge ---------------------------------------------------------------------------------------------------


def _expired_and_live_rows(engine) -> None:
    pk = accounts.sign_up(engine, ADA, "correct horse", "ada")
    past, future = datetime.utcnow() - timedelta(minutes=1), datetime.utcnow() + timedelta(days=1)
    with engine.begin() as conn:
        for n, expires in enumerate((past, future)):
            conn.execute(insert(sessions).values(token_hash=f"s{n}", user_pk=pk, created_at=past, expires_at=expires))
            conn.execute(insert(password_resets).values(token_hash=f"r{n}", user_pk=pk, expires_at=expires))
            conn.execute(insert(email_verifications).values(token_hash=f"v{n}", user_pk=pk, email=ADA,
                                                            expires_at=expires))
            conn.execute(insert(throttle_hits).values(key=f"k{n}", at=time.time() - 100,
                                                      expires_at=time.time() + (-1 if expires is past else 3600)))


def test_the_purge_deletes_expired_sessions_links_and_throttle_counts(engine):
    _expired_and_live_rows(engine)
    assert accounts.purge_expired(engine) == 4
    for table in (sessions, password_resets, email_verifications, throttle_hits):
        assert count(engine, table) == 1, table.name


def test_serve_purges_on_a_schedule_even_without_mail(engine, db_url, tmp_path, monkeypatch):
    _expired_and_live_rows(engine)
    monkeypatch.setattr(schedule, "FIRST_CHECK", 0.05)
    monkeypatch.setattr(schedule, "PURGE_INTERVAL", 0.05)
    settings = mail_settings(db_url, tmp_path, None)  # no SMTP: the mail scheduler is off
    app = create_app(settings)
    if jobs.uses_queue(engine):  # PostgreSQL: serve runs nothing periodic; the workers purge (test_jobs.py)
        assert getattr(app.state, "purger", None) is None and app.state.jobs_runner is None
        return
    with TestClient(app):
        assert getattr(app.state, "mail_scheduler", None) is None
        deadline = time.monotonic() + 20
        while count(engine, throttle_hits) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.state.purger.rounds >= 1
    assert app.state.purger.thread is None  # stopped with the app
    for table in (sessions, password_resets, email_verifications, throttle_hits):
        assert count(engine, table) == 1, table.name
