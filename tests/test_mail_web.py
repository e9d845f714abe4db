"""Subscriptions on the site, against the running app (TestClient) and a real SMTP server: the form
with double opt-in, hostile input, the manage pages, one-click unsubscribe (RFC 8058), and links that
no longer work."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import update
from test_mail_delivery import RUN_DAY, link, load_sample, mail_settings, smtp  # noqa: F401 - fixture

from dailypapers import accounts
from dailypapers.mail import subscriptions as subs
from dailypapers.mail.alerts import send_alerts
from dailypapers.mail.digests import send_digests
from dailypapers.mail.subscription_spec import check_spec
from dailypapers.store.schema import mail_tokens
from dailypapers.web.app import create_app

EMAIL_ERROR = "Enter one email address, without line breaks or control characters."


@pytest.fixture(autouse=True)
def quick_hashing(monkeypatch):
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def settings(engine, db_url, tmp_path, smtp):  # noqa: F811
    load_sample(engine)
    return mail_settings(db_url, tmp_path, smtp)


@pytest.fixture
def site(settings):
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def csrf(client, path="/subscribe"):
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get(path).text).group(1)


def post_form(client, data, path="/subscribe"):
    return client.post(path, data={"csrf_token": csrf(client), **data}, follow_redirects=False)


def open_and_confirm(client, path):
    """Open a confirmation link (GET: a page with one button, nothing changes) and press the button."""
    page = client.get(path)
    assert page.status_code == 200 and "Confirm my subscription" in page.text, page.text
    return client.post(path, data={"csrf_token": re.search(r'name="csrf-token" content="([^"]+)"',
                                                           page.text).group(1)})


def test_every_page_links_to_the_subscribe_form(site):
    page = site.get("/").text
    assert '<a href="/subscribe">Get trending papers in your email inbox</a>' in page
    form = site.get("/subscribe")
    assert form.status_code == 200 and "Get trending papers in your email inbox" in form.text


def test_subscribe_confirm_by_link_then_the_digest_arrives(site, engine, settings, smtp):  # noqa: F811
    response = post_form(site, {"email": "Ada@Example.org", "kind": "digest", "period": "daily"})
    assert response.status_code == 200 and "Check your inbox" in response.text
    assert "ada@example.org" in response.text

    (confirmation,) = smtp.messages
    assert confirmation.to == "ada@example.org"
    assert confirmation.message["Subject"] == "Confirm your daily digest of trending papers from dailypapers"
    confirm_path = link(confirmation.text(), "/subscriptions/confirm/")
    assert send_digests(engine, settings, "daily", now=RUN_DAY).sent == []  # nothing before confirming

    opened = site.get(confirm_path)  # opening the link (GET) only shows the button: scanners open links
    assert opened.status_code == 200 and "ada@example.org will get the daily digest" in opened.text
    assert subs.of_address(engine, "ada@example.org")[0]["status"] == "pending"
    confirmed = open_and_confirm(site, confirm_path)
    assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
    assert "ada@example.org now gets the daily digest of trending papers" in confirmed.text
    again = site.get(confirm_path)
    assert again.status_code == 410 and "This link is no longer valid" in again.text
    assert "It has already been used" in again.text and "Traceback" not in again.text

    report = send_digests(engine, settings, "daily", now=RUN_DAY)
    assert [p.subject for p in report.sent] == ["Trending papers for Fri Oct 10: 9 papers"]


def test_an_alert_from_the_form(site, engine, settings, smtp):  # noqa: F811
    response = post_form(
        site,
        {
            "email": "bob@example.org",
            "kind": "alert",
            "period": "weekly",
            "query": "policy generalization",
            "cat": "cs.LG, cs.AI",
            "has_code": "1",
        },
    )
    assert response.status_code == 200, response.text
    text = smtp.messages[0].text()
    assert "weekly alert for “policy generalization” (cs.LG, cs.AI, with code)" in text
    open_and_confirm(site, link(text, "/subscriptions/confirm/"))
    (sub,) = subs.of_address(engine, "bob@example.org")
    assert (sub["status"], sub["kind"], sub["period"], sub["query"]) == (
        "active",
        "alert",
        "weekly",
        "policy generalization",
    )
    assert sub["filters"] == {
        "since": None,
        "categories": ["cs.LG", "cs.AI"],
        "organization": None,
        "has_code": True,
    }


def test_the_form_is_prefilled_from_a_search(site):
    page = site.get("/subscribe", params={"q": "diffusion", "cat": "cs.CV"}).text
    assert 'value="diffusion"' in page and 'value="cs.CV"' in page
    assert '<input type="radio" name="kind" value="alert" checked>' in page


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({"email": "not an address"}, "email", "Enter a valid email address, like name@example.com."),
        ({"email": ""}, "email", "Enter your email address."),
        ({"email": "a@b.org\r\nBcc: x@y.org"}, "email", EMAIL_ERROR),
        ({"email": "a@b.org\nBcc: x@y.org"}, "email", EMAIL_ERROR),
        ({"email": "a\x00@b.org"}, "email", EMAIL_ERROR),
        ({"email": "a@b.org, c@d.org"}, "email", "Enter one email address (no commas or semicolons)."),
        ({"email": "x" * 400 + "@b.org"}, "email", "An email address can be at most 320 characters."),
        (
            {"kind": "alert", "query": "x" * 10_000},
            "query",
            "A saved search can be at most 300 characters (this one has 10,000).",
        ),
        (
            {"kind": "alert", "query": "policy\x00 generalization"},
            "query",
            "Remove the control characters (such as NUL or line breaks) from the search.",
        ),
        (
            {"kind": "alert", "query": ""},
            "query",
            "Enter words to search for, or choose a category, an organization or papers with code.",
        ),
        (
            {"kind": "alert", "query": "x", "cat": "cs.LG; DROP TABLE"},
            "cat",
            "Categories look like cs.LG or cs; separate several with commas.",
        ),
        (
            {"kind": "alert", "query": "x", "since": "yesterday"},
            "since",
            "Enter a date like 2025-01-31, or leave it empty.",
        ),
        (
            {"kind": "alert", "query": "x", "org": "<script>"},
            "org",
            "An organization is its handle, like facebook "
            "(letters, digits, &#39;-&#39;, &#39;_&#39; and &#39;.&#39;).",
        ),
        ({"period": "hourly"}, "period", "Choose daily or weekly."),
        ({"kind": "spam"}, "kind", "Choose a digest of trending papers or an alert for a search."),
    ],
)
def test_hostile_input_returns_the_form_with_the_message_beside_the_field(site, smtp, data, field, message):  # noqa: F811
    response = post_form(site, {"email": "ada@example.org", "kind": "digest", "period": "daily"} | data)
    assert response.status_code == 400
    assert f'<span class="error" id="{field}-error">{message}</span>' in response.text
    assert "Traceback" not in response.text and "\x00" not in response.text
    assert smtp.messages == []


def test_the_form_needs_its_csrf_token(site, smtp):  # noqa: F811
    response = site.post("/subscribe", data={"email": "ada@example.org"})
    assert response.status_code == 403 and smtp.messages == []


def test_asking_again_neither_duplicates_nor_tells_strangers_anything(site, engine, smtp):  # noqa: F811
    subs.subscribe(engine, check_spec("ada@example.org"), confirmed=True)
    response = post_form(site, {"email": "ada@example.org", "kind": "digest", "period": "weekly"})
    assert (
        response.status_code == 200 and "Check your inbox" in response.text
    )  # the same page as for a new one
    note = smtp.messages[0]
    assert note.message["Subject"] == "You already get the daily digest of trending papers"
    assert len(subs.of_address(engine, "ada@example.org")) == 1
    manage = site.get(link(note.text(), "/subscriptions/manage/"))
    assert manage.status_code == 200 and "Daily digest of trending papers" in manage.text
    too_soon = post_form(site, {"email": "ada@example.org", "kind": "digest", "period": "daily"})
    assert too_soon.status_code == 400 and "We have just sent a mail about this" in too_soon.text
    assert len(smtp.messages) == 1


def test_an_unreachable_mail_server_is_a_message_not_an_error(engine, db_url, tmp_path):
    from test_mail_delivery import free_port

    load_sample(engine)
    settings = mail_settings(
        db_url, tmp_path, None, smtp_url=f"smtp://127.0.0.1:{free_port()}", smtp_retries=0
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = post_form(client, {"email": "ada@example.org", "kind": "digest", "period": "daily"})
        assert response.status_code == 503
        assert "We could not send the confirmation mail just now" in response.text
        retry = post_form(client, {"email": "ada@example.org", "kind": "digest", "period": "daily"})
        assert "We could not send" in retry.text  # not "we have just sent": nothing went out


def _digest_for(engine, settings, site, smtp, address="ada@example.org"):  # noqa: F811
    outcome = subs.subscribe(engine, check_spec(address), confirmed=True)
    send_digests(engine, settings, "daily", now=RUN_DAY)
    (mail,) = smtp.to(address)
    return outcome.subscription, mail


def test_one_click_unsubscribe_is_a_post_without_csrf(site, engine, settings, smtp):  # noqa: F811
    sub, mail = _digest_for(engine, settings, site, smtp)
    header = mail.message["List-Unsubscribe"].strip().strip("<>")
    path = header.removeprefix("http://testserver")
    assert link(mail.text(), "/unsubscribe/") == path  # the same link in the body

    site.cookies.clear()  # as a mail provider would: no cookie, no CSRF token
    response = site.post(path, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and "You are unsubscribed" in response.text
    assert subs.get(engine, sub["pk"])["status"] == "unsubscribed"
    assert (
        site.post(
            path,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ).status_code
        == 200
    )  # twice: fine
    assert send_digests(engine, settings, "daily", now=datetime(2025, 10, 14, 7)).sent == []


def test_the_unsubscribe_link_opened_in_a_browser_asks_first(site, engine, settings, smtp):  # noqa: F811
    sub, mail = _digest_for(engine, settings, site, smtp)
    path = link(mail.text(), "/unsubscribe/")
    page = site.get(path)
    assert page.status_code == 200 and "Unsubscribe?" in page.text
    assert f'<form action="{path}" method="post">' in page.text
    assert subs.get(engine, sub["pk"])["status"] == "active"  # a GET (or a link scanner) changes nothing
    done = site.post(path)
    assert "You are unsubscribed" in done.text and "Resume it" in done.text
    resume_page = re.search(r'href="(/subscriptions/manage/[^"]+)"', done.text).group(1)
    token = csrf(site, resume_page)
    resumed = site.post(resume_page, data={"csrf_token": token, "pk": sub["pk"], "action": "resume"})
    assert "Resumed: the daily digest of trending papers." in resumed.text
    assert subs.get(engine, sub["pk"])["status"] == "active"


def test_the_manage_page_pauses_resumes_changes_period_and_deletes(site, engine, settings, smtp):  # noqa: F811
    sub, mail = _digest_for(engine, settings, site, smtp)
    path = link(mail.text(), "/subscriptions/manage/")
    assert link(mail.html(), "/subscriptions/manage/") == path
    page = site.get(path)
    assert page.status_code == 200 and "Mail for <strong>ada@example.org</strong>" in page.text
    token = csrf(site, path)

    def act(action, pk=sub["pk"]):
        return site.post(path, data={"csrf_token": token, "pk": pk, "action": action})

    assert "Paused: the daily digest of trending papers." in act("pause").text
    assert subs.get(engine, sub["pk"])["status"] == "paused"
    assert "Resumed" in act("resume").text
    assert "Changed: you now get the weekly digest of trending papers." in act("weekly").text
    assert subs.get(engine, sub["pk"])["period"] == "weekly"
    other = subs.subscribe(engine, check_spec("eve@example.org"), confirmed=True).subscription
    refused = act("pause", other["pk"])  # another address's subscription: not through this link
    assert refused.status_code == 400 and "This subscription no longer exists." in refused.text
    assert subs.get(engine, other["pk"])["status"] == "active"
    assert site.post(path, data={"pk": sub["pk"], "action": "delete"}).status_code == 403  # CSRF
    deleted = act("delete")
    assert "Deleted: the weekly digest of trending papers for ada@example.org." in deleted.text
    assert subs.get(engine, sub["pk"]) is None
    gone = site.get(path)
    assert gone.status_code == 404 and "This link is no longer valid" in gone.text


def test_unknown_links_get_a_page_that_says_what_to_do(site):
    for path in ["/subscriptions/confirm/", "/subscriptions/manage/", "/unsubscribe/"]:
        for token in ["nope", "A" * 43, "%00" * 30, "x" * 5000, "..%2F..%2Fetc%2Fpasswd"]:
            response = site.get(path + token)
            assert response.status_code == 404, (path, token)
            assert "This link is no longer valid" in response.text and "What to do:" in response.text
            assert "Traceback" not in response.text
    assert site.post("/unsubscribe/" + "A" * 43).status_code == 404


def test_expired_links_and_tokens_of_another_purpose(site, engine, settings, smtp):  # noqa: F811
    sub, mail = _digest_for(engine, settings, site, smtp)
    manage_path = link(mail.text(), "/subscriptions/manage/")
    unsubscribe_path = link(mail.text(), "/unsubscribe/")
    # single-purpose: a manage token does not unsubscribe, an unsubscribe token does not manage
    assert site.post("/unsubscribe/" + manage_path.rsplit("/", 1)[1]).status_code == 404
    assert site.get("/subscriptions/manage/" + unsubscribe_path.rsplit("/", 1)[1]).status_code == 404
    assert subs.get(engine, sub["pk"])["status"] == "active"
    with engine.begin() as conn:
        conn.execute(update(mail_tokens).values(expires_at=datetime.utcnow() - timedelta(minutes=1)))
    expired = site.get(manage_path)
    assert expired.status_code == 410 and "It has expired" in expired.text
    assert "use the links at the bottom of the latest mail from us" in expired.text


def test_tokens_are_stored_only_as_hashes(site, engine, settings, smtp):  # noqa: F811
    from sqlalchemy import select

    _, mail = _digest_for(engine, settings, site, smtp)
    token = link(mail.text(), "/unsubscribe/").rsplit("/", 1)[1]
    with engine.connect() as conn:
        stored = conn.execute(select(mail_tokens.c.token_hash)).scalars().all()
    assert token not in stored and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in stored)


def test_a_signed_in_user_sees_and_manages_their_subscriptions(site, engine, smtp):  # noqa: F811
    assert site.get("/subscriptions").status_code == 401
    token = csrf(site, "/signup")
    site.post(
        "/signup",
        data={
            "email": "ada@example.org",
            "username": "ada",
            "password": "correct horse",
            "csrf_token": token,
        },
    )
    verification = smtp.messages.pop(0)  # sign-up mails a verification link; verify before managing
    verify_path = link(verification.text(), "/verify/")
    site.post(verify_path, data={"csrf_token": csrf(site, verify_path)})
    form = site.get("/subscribe").text
    assert 'value="ada@example.org"' in form and '<a href="/subscriptions">Your subscriptions</a>' in form
    post_form(site, {"email": "ada@example.org", "kind": "alert", "period": "daily", "query": "robots"})
    open_and_confirm(site, link(smtp.messages[0].text(), "/subscriptions/confirm/"))
    page = site.get("/subscriptions")
    assert page.status_code == 200 and "Daily alert for “robots”" in page.text
    (sub,) = subs.of_address(engine, None, user_pk=subs.of_address(engine, "ada@example.org")[0]["user_pk"])
    response = site.post(
        "/subscriptions",
        data={"csrf_token": csrf(site, "/subscriptions"), "pk": sub["pk"], "action": "pause"},
    )
    assert "Paused: the daily alert for “robots”." in response.text


def test_alert_mail_links_work_too(site, engine, settings, smtp):  # noqa: F811
    subs.subscribe(engine, check_spec("ada@example.org", kind="alert", query="policy"), confirmed=True)
    send_alerts(engine, settings)
    mail = smtp.messages[0]
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    site.cookies.clear()
    path = mail.message["List-Unsubscribe"].strip().strip("<>").removeprefix("http://testserver")
    assert "You are unsubscribed" in site.post(path, data={"List-Unsubscribe": "One-Click"}).text
