"""The edge of the site (issue 12, items 1, 3, 4 and 7), on SQLite and PostgreSQL through the real app,
and against a live `dailypapers serve`: the Host header is checked, links in mail never come from
the request, forwarded headers are believed only from trusted proxies, every response carries the
security headers, cross-site unsafe requests are refused, and no token or password reaches a log."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from email.message import EmailMessage
from importlib.resources import files

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import Request
from fastapi.testclient import TestClient
from sqlalchemy import update
from test_mail_delivery import SmtpSink, free_port, mail_settings, smtp  # noqa: F401 - fixture

from dailypapers import accounts
from dailypapers.config import get_settings, hide_password
from dailypapers.ingest import ingest
from dailypapers.mail import subscriptions as subs
from dailypapers.mail.smtp import MailError, Mailer, send_plain
from dailypapers.mail.subscription_spec import check_spec
from dailypapers.mail.tokens import new_token
from dailypapers.sources.hf_daily import parse_hf_json
from dailypapers.store.schema import users
from dailypapers.web.app import create_app
from dailypapers.web.security import redact

PAPER = "2506.10326"  # the sample's first paper
SRC = os.path.join(os.path.dirname(__file__), os.pardir, "src")


@pytest.fixture(autouse=True)
def quick_hashing(monkeypatch):
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def settings_for(db_url, tmp_path, **overrides):
    values = dict(database_url=db_url, data_dir=tmp_path, base_url="http://testserver", embedding_runtime="off",
                  mail_schedule=False)
    return get_settings(**(values | overrides))


@pytest.fixture
def loaded(engine):
    ingest(engine, parse_hf_json(files("dailypapers.sample").joinpath("papers.json").read_bytes()))
    return engine


@pytest.fixture
def site(loaded, db_url, tmp_path):
    with TestClient(create_app(settings_for(db_url, tmp_path)), raise_server_exceptions=False) as client:
        yield client


def verified_account(engine, email="ada@example.org"):
    """An account whose address is verified (as if its link was opened), so mail may go to it."""
    user_pk = accounts.sign_up(engine, email, "correct horse", email.partition("@")[0])
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.pk == user_pk).values(email_verified_at=datetime.now(timezone.utc)))
    return user_pk


def csrf(client, path="/login"):
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get(path).text).group(1)


def signed_in(client, email="ada@example.org"):
    token = csrf(client, "/signup")
    response = client.post("/signup", data={"email": email, "username": email.partition("@")[0],
                                            "password": "correct horse", "csrf_token": token},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf(client, "/")


# --- the Host header -------------------------------------------------------------------------------------

FORGED = {"host": "evil.example"}


def test_a_forged_host_gets_400_on_pages_the_api_and_forms(site):
    page = site.get("/", headers=FORGED)
    assert page.status_code == 400 and "does not answer to that host name" in page.text
    assert "evil.example" not in page.text
    api = site.get("/api/daily_papers", headers=FORGED)
    assert api.status_code == 400 and "does not answer to that host name" in api.json()["error"]
    token = csrf(site)
    form = site.post("/login", headers=FORGED, data={"email": "a@example.org", "password": "x" * 12,
                                                    "csrf_token": token}, follow_redirects=False)
    assert form.status_code == 400
    assert site.get("/static/app.css", headers={"host": "evil.example:8000"}).status_code == 400
    assert site.get("/", headers={"host": "testserver.evil.example"}).status_code == 400


@pytest.mark.parametrize("host", ["testserver", "TestServer:8000", "localhost", "localhost:8000", "127.0.0.1:8000",
                                  "[::1]:8000"])
def test_the_base_url_host_and_localhost_are_answered(site, host):
    assert site.get("/", headers={"host": host}).status_code == 200


def test_allowed_hosts_from_the_environment_replace_the_default(monkeypatch, loaded, db_url, tmp_path):
    monkeypatch.setenv("DAILYPAPERS_ALLOWED_HOSTS", "papers.example.org, Internal.Example")
    settings = settings_for(db_url, tmp_path, base_url="https://papers.example.org")
    assert settings.hosts == {"papers.example.org", "internal.example"}
    with TestClient(create_app(settings), base_url="https://papers.example.org") as client:
        assert client.get("/").status_code == 200
        assert client.get("/", headers={"host": "internal.example"}).status_code == 200
        assert client.get("/", headers={"host": "localhost"}).status_code == 400


def test_bad_settings_are_refused_with_their_name():
    with pytest.raises(ValueError, match="not an IP address or network"):
        get_settings(trusted_proxies="proxy.internal")
    with pytest.raises(ValueError, match="absolute http"):
        get_settings(base_url="papers.example.org")


# --- links in mail ---------------------------------------------------------------------------------------


def test_a_reset_mail_links_to_the_base_url_and_goes_to_the_stored_address(loaded, db_url, tmp_path, smtp):  # noqa: F811
    verified_account(loaded)
    settings = mail_settings(db_url, tmp_path, smtp, base_url="https://papers.example.org",
                             allowed_hosts="papers.example.org,mirror.example.org")
    with TestClient(create_app(settings), base_url="https://mirror.example.org",
                    raise_server_exceptions=False) as client:
        forged = client.post("/reset", headers=FORGED, data={"email": "ada@example.org",
                                                             "csrf_token": csrf(client, "/reset")})
        assert forged.status_code == 400 and smtp.messages == []
        # An allowed second name, and the address typed differently: the link still names the base URL
        # and the mail goes to the address the account has.
        sent = client.post("/reset", data={"email": "  ADA@Example.ORG ", "csrf_token": csrf(client, "/reset")})
        assert sent.status_code == 200
    (mail,) = smtp.messages
    assert mail.rcpt_tos == ["ada@example.org"] and mail.message["To"] == "ada@example.org"
    assert re.search(r"https://papers\.example\.org/reset/[A-Za-z0-9_-]{20,}", mail.text())
    assert "mirror.example.org" not in mail.text()


def test_without_a_base_url_links_use_the_checked_host(loaded, db_url, tmp_path, smtp):  # noqa: F811
    verified_account(loaded)
    with TestClient(create_app(mail_settings(db_url, tmp_path, smtp, base_url=None))) as client:
        assert client.post("/reset", data={"email": "ada@example.org", "csrf_token": csrf(client, "/reset")},
                           headers={"host": "localhost:8000"}).status_code == 200
    assert re.search(r"http://localhost:8000/reset/[A-Za-z0-9_-]{20,}", smtp.messages[0].text())


# --- forwarded headers -----------------------------------------------------------------------------------


def client_seen_by(db_url, tmp_path, peer, trusted):
    app = create_app(settings_for(db_url, tmp_path, base_url=None, trusted_proxies=trusted))

    @app.get("/whoami")
    def whoami(request: Request) -> dict:
        return {"client": request.client.host, "scheme": request.url.scheme,
                "link": request.app.state.base_url(request)}

    with TestClient(app, base_url="http://localhost", client=(peer, 40000)) as client:
        return client.get("/whoami", headers={"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https"}).json()


def test_forwarded_headers_are_ignored_from_an_untrusted_peer(engine, db_url, tmp_path):
    assert client_seen_by(db_url, tmp_path, "127.0.0.1", "") == {
        "client": "127.0.0.1", "scheme": "http", "link": "http://localhost"}
    assert client_seen_by(db_url, tmp_path, "198.51.100.7", "10.0.0.0/8")["client"] == "198.51.100.7"


def test_forwarded_headers_are_honoured_from_a_trusted_proxy(engine, db_url, tmp_path):
    assert client_seen_by(db_url, tmp_path, "10.1.2.3", "10.0.0.0/8,192.0.2.1") == {
        "client": "203.0.113.9", "scheme": "https", "link": "https://localhost"}


# --- headers on every response ---------------------------------------------------------------------------

SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "cross-origin-opener-policy": "same-origin",
}


def assert_hardened(response):
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url, name)
    policy = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'self'" and policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'" and policy["base-uri"] == "'self'"
    assert policy["form-action"] == "'self'" and "data:" in policy["img-src"]
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
    return policy


def test_every_kind_of_response_carries_the_security_headers(loaded, db_url, tmp_path):
    app = create_app(settings_for(db_url, tmp_path))

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        responses = {
            "html": client.get("/"), "json": client.get("/api/daily_papers"), "static": client.get("/static/app.js"),
            "feed": client.get("/feeds/daily.atom"), "404": client.get("/no/such/page"),
            "api 404": client.get("/api/papers/0000.00000"), "400 host": client.get("/", headers=FORGED),
            "403 origin": client.post("/logout", headers={"origin": "http://evil.example"}),
            "500": client.get("/boom"),
        }
    assert [r.status_code for r in responses.values()] == [200, 200, 200, 200, 404, 404, 400, 403, 500]
    for response in responses.values():
        policy = assert_hardened(response)
        assert policy["script-src"] == "'self'" and policy["img-src"] == "'self' https: data:"  # avatars
        assert "strict-transport-security" not in response.headers  # not under plain http


def test_hsts_only_when_the_base_url_is_https(loaded, db_url, tmp_path):
    settings = settings_for(db_url, tmp_path, base_url="https://papers.example.org")
    with TestClient(create_app(settings), base_url="https://papers.example.org") as client:
        for path in ("/", "/api/daily_papers", "/static/app.css", "/nowhere"):
            assert client.get(path).headers["strict-transport-security"] == "max-age=31536000"


def test_the_api_docs_are_served_from_local_assets_with_their_inline_script_allowed_by_hash(site):
    docs = site.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()
    policy = assert_hardened(docs)
    (inline,) = re.findall(r"<script>(.*?)</script>", docs.text, re.S)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert policy["script-src"] == f"'self' 'sha256-{digest}'"
    for asset in re.findall(r'(?:src|href)="(/[^"]+)"', docs.text):
        assert site.get(asset).status_code == 200, asset
    redoc = site.get("/redoc")
    assert redoc.status_code == 200 and "cdn" not in redoc.text.lower() and "fonts.googleapis" not in redoc.text
    policy = assert_hardened(redoc)
    assert policy["script-src"] == "'self'" and policy["img-src"] == "'self' data:"  # not its CDN's logo
    for asset in re.findall(r'(?:src|href)="(/[^"]+)"', redoc.text):
        assert site.get(asset).status_code == 200, asset
    assert "'unsafe-inline'" not in site.get("/").headers["content-security-policy"]


def test_no_template_or_script_needs_what_the_policy_forbids():
    web = files("dailypapers.web")
    for template in (web / "templates").iterdir():
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name  # inline script
        assert not re.search(r"\son[a-z]+\s*=", text), template.name  # inline handler
        assert not re.search(r"<style|\sstyle\s*=|javascript:", text), template.name
    script = (web / "static" / "app.js").read_text()
    assert "eval(" not in script and "innerHTML" not in script and "new Function" not in script


# --- cross-site requests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", [{"origin": "http://evil.example"}, {"origin": "null"},
                                   {"origin": "https://testserver"}, {"origin": "http://testserver:8000"},
                                   {"referer": "http://evil.example/page"},
                                   {"referer": "http://testserver.evil.example/"}])
def test_a_foreign_origin_or_referer_is_refused_on_forms_actions_and_the_api(site, loaded, claim):
    token = signed_in(site)
    form = site.post("/subscribe", headers=claim, data={"email": "ada@example.org", "kind": "digest",
                                                        "period": "daily", "csrf_token": token})
    assert form.status_code == 403 and "Cross-site request refused" in form.text
    action = site.post(f"/papers/{PAPER}/upvote", headers={"x-csrf-token": token, "accept": "application/json",
                                                           **claim})
    assert action.status_code == 403 and "Cross-site request refused" in action.json()["error"]
    api_token = accounts.create_api_token(loaded, accounts.sign_up(loaded, "bob@example.org", "correct horse", "bob"))
    api = site.post(f"/api/papers/{PAPER}/upvote", headers={"authorization": f"Bearer {api_token}", **claim})
    assert api.status_code == 403 and "Cross-site request refused" in api.json()["error"]
    assert site.get(f"/api/papers/{PAPER}").json()["upvotes"] == 0  # nothing changed


@pytest.mark.parametrize("claim", [{}, {"origin": "http://testserver"}, {"referer": "http://testserver/papers"},
                                   {"origin": "http://TESTSERVER:80"}])
def test_same_origin_or_no_claim_passes_to_the_csrf_check(site, claim):
    token = signed_in(site)
    action = site.post(f"/papers/{PAPER}/upvote", headers={"x-csrf-token": token, "accept": "application/json",
                                                           **claim})
    assert action.status_code == 200 and action.json()["voted"] is True
    no_token = site.post(f"/papers/{PAPER}/upvote", headers={"accept": "application/json", **claim})
    assert no_token.status_code == 403 and "Cross-site" not in no_token.text  # the CSRF check's answer


def test_a_get_from_another_site_is_not_refused(site):
    assert site.get("/", headers={"referer": "https://news.example/"}).status_code == 200


def test_one_click_unsubscribe_still_works_from_a_mail_provider(site, loaded):
    for n, claim in enumerate([{}, {"origin": "https://mail.example.com"}]):
        sub = subs.subscribe(loaded, check_spec(f"ada{n}@example.org"), confirmed=True).subscription
        with loaded.begin() as conn:
            token = new_token(conn, sub["pk"], "unsubscribe", datetime.now(timezone.utc))
        site.cookies.clear()  # as a mail provider posts: no cookie, no CSRF token
        done = site.post(f"/unsubscribe/{token}", headers=claim, data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200 and "You are unsubscribed" in done.text
        assert subs.get(loaded, sub["pk"])["status"] == "unsubscribed"


# --- secrets out of logs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path, shown", [
    ("/reset/Zm9vYmFyYmF6", "/reset/[redacted]"),
    ("/verify/Zm9vYmFyYmF6?next=/", "/verify/[redacted]"),
    ("/subscriptions/manage/abc_DEF-123", "/subscriptions/manage/[redacted]"),
    ("/subscriptions/confirm/abc/def", "/subscriptions/confirm/[redacted]"),
    ("/unsubscribe/abc", "/unsubscribe/[redacted]"),
    ("/reset", "/reset"), ("/subscriptions", "/subscriptions"), ("/papers/2501.00001", "/papers/2501.00001"),
])
def test_redaction_of_mail_link_paths(path, shown):
    assert redact(path) == shown


def test_passwords_in_urls_are_masked():
    assert hide_password("smtp://ada:hunter2@mail.example.org:587") == "smtp://ada:***@mail.example.org:587"
    assert hide_password("postgresql+psycopg://u:p%40ss@db/papers") == "postgresql+psycopg://u:***@db/papers"
    assert hide_password("sqlite:///papers.db") == "sqlite:///papers.db"
    assert "hunter2" not in repr(get_settings(smtp_url="smtp://ada:hunter2@h", database_url="sqlite:///x"))


def test_smtp_errors_never_show_the_password(tmp_path, caplog):
    closed = free_port()
    for url in (f"smtp://ada:hunter2@127.0.0.1:{closed}", "smtpx://ada:hunter2@127.0.0.1:25"):
        with Mailer(url, "noreply@example.org", retries=1, retry_delay=0) as mailer, \
                pytest.raises(MailError) as failed:
            message = EmailMessage()
            message.set_content("hi")
            mailer.send(message, "ada@example.org")
        assert "hunter2" not in str(failed.value) and "DAILYPAPERS_SMTP_URL" in str(failed.value)
    with pytest.raises(ValueError) as bad:
        send_plain(get_settings(data_dir=tmp_path, smtp_url="smtpx://ada:hunter2@127.0.0.1:25"),
                   "ada@example.org", "Hello", "a body")
    assert "hunter2" not in str(bad.value) and "ada:***@" in str(bad.value)
    assert "hunter2" not in caplog.text


def test_a_failed_reset_mail_logs_no_password(loaded, db_url, tmp_path, caplog):
    verified_account(loaded)
    settings = settings_for(db_url, tmp_path, smtp_url=f"smtp://ada:hunter2@127.0.0.1:{free_port()}")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.post("/reset", data={"email": "ada@example.org", "csrf_token": csrf(client, "/reset")})
    assert "hunter2" not in response.text and "hunter2" not in caplog.text


def test_without_smtp_the_mail_log_names_recipient_and_subject_only(loaded, db_url, tmp_path, caplog):
    verified_account(loaded)
    caplog.set_level(logging.INFO)
    with TestClient(create_app(settings_for(db_url, tmp_path))) as client:
        client.post("/reset", data={"email": "ada@example.org", "csrf_token": csrf(client, "/reset")})
        client.post("/subscribe", data={"email": "bob@example.org", "kind": "digest", "period": "daily",
                                        "csrf_token": csrf(client, "/subscribe")})
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("dailypapers")]
    assert "no DAILYPAPERS_SMTP_URL: not sent to ada@example.org: Reset your dailypapers password" in lines
    assert any(line.startswith("no DAILYPAPERS_SMTP_URL: not sent to bob@example.org: Confirm") for line in lines)
    assert not any("/reset/" in line or "/subscriptions/" in line or "http" in line for line in lines)


# --- a live `dailypapers serve` --------------------------------------------------------------------------


def dailypapers(*args, env, **options):
    return subprocess.Popen([sys.executable, "-c", "from dailypapers.cli import main; main()", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **options)


def clean_env(tmp_path, **values):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAILYPAPERS_")}
    return env | {"PYTHONPATH": os.path.abspath(SRC), "DAILYPAPERS_DATA_DIR": str(tmp_path),
                  "DAILYPAPERS_EMBEDDING_RUNTIME": "off"} | values


def test_serve_refuses_to_start_with_smtp_and_no_base_url(tmp_path):
    env = clean_env(tmp_path, DAILYPAPERS_SMTP_URL="smtp://ada:hunter2@127.0.0.1:2525")
    out, _ = dailypapers("serve", "--port", str(free_port()), env=env).communicate(timeout=60)
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: DAILYPAPERS_SMTP_URL is set but DAILYPAPERS_BASE_URL")
    assert "hunter2" not in out
    process = dailypapers("serve", "--port", str(free_port()), env=env)
    assert process.wait(60) == 1


def test_serve_never_prints_the_database_password(tmp_path):
    env = clean_env(tmp_path, DAILYPAPERS_DATABASE_URL=f"postgresql+psycopg://ada:hunter2@127.0.0.1:{free_port()}/x")
    process = dailypapers("serve", "--port", str(free_port()), env=env)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 1 and "hunter2" not in out and "ada:***@127.0.0.1" in out


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """`dailypapers serve` on 127.0.0.1 with the default settings (no trusted proxy), its output kept."""
    data = tmp_path_factory.mktemp("live")
    port = free_port()
    process = dailypapers("serve", "--port", str(port), env=clean_env(data), start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/static/favicon.svg", timeout=2)
            break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail(process.communicate()[0])
    yield {"url": url, "process": process}
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        process.wait(30)


def stop(live) -> str:
    live["process"].send_signal(signal.SIGINT)
    out, _ = live["process"].communicate(timeout=30)
    return out


def test_a_live_server(live):
    url = live["url"]
    with httpx.Client(base_url=url) as client:
        secrets = {}
        for n, prefix in enumerate(["/reset/", "/verify/", "/subscriptions/manage/", "/subscriptions/confirm/",
                                    "/unsubscribe/"]):
            secrets[prefix] = f"SeCrEtToKeN{n}xyz"
            client.get(f"{prefix}{secrets[prefix]}?utm=1")
        # uvicorn would believe these from 127.0.0.1 by default; here no proxy is trusted.
        forwarded = client.get("/api/daily_papers", headers={"x-forwarded-for": "203.0.113.9",
                                                             "x-forwarded-proto": "https"})
        assert forwarded.status_code == 200 and "strict-transport-security" not in forwarded.headers
        assert "server" not in forwarded.headers
        assert client.get("/", headers=FORGED).status_code == 400
        assert client.post("/logout", headers={"origin": "http://evil.example"}).status_code == 403
        docs = client.get("/docs")
        assert docs.status_code == 200 and "sha256-" in docs.headers["content-security-policy"]
    log = stop(live)
    for secret in secrets.values():
        assert secret not in log
    for prefix in secrets:
        assert f'"GET {prefix}[redacted] HTTP/1.1"' in log
    assert '127.0.0.1:' in log and "203.0.113.9" not in log
    assert '"GET /api/daily_papers HTTP/1.1" 200' in log
