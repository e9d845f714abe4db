"""Kept pages for readers who are not signed in (web/pagecache.py), on SQLite and PostgreSQL: every
write that changes what such a page shows is seen at once, in this app and in another app on the same
database; signed-in readers' pages are never kept; each reader gets their own CSRF token and ETag."""

import re
from datetime import datetime
from importlib.resources import files

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import insert, update

from dailypapers import accounts, community
from dailypapers.config import get_settings
from dailypapers.domain import Organization, Paper
from dailypapers.ingest import ingest
from dailypapers.search.vectors import take_seqs
from dailypapers.sources.hf_daily import parse_hf_json
from dailypapers.store.queries import pages_version
from dailypapers.store.schema import organizations, users
from dailypapers.web import pagecache
from dailypapers.web.app import create_app

PAPER = "2506.09574"  # on the sample's latest day, 2025-10-10
LATEST = "Friday, October 10, 2025"


@pytest.fixture(autouse=True)
def quick_hashing_and_a_stopped_clock(monkeypatch):
    """Quick password hashing; and one minute throughout (a kept page lasts to the minute's end, so
    two requests either side of it would run the page twice), unless a test moves it."""
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    monkeypatch.setattr(pagecache, "_minute", lambda: 0)


@pytest.fixture
def apps(engine, db_url, tmp_path):
    """Two web apps (two processes' worth: each its own engine and kept pages) on one database."""
    ingest(engine, parse_hf_json(files("dailypapers.sample").joinpath("papers.json").read_bytes()))

    def app(name: str) -> TestClient:
        settings = get_settings(database_url=db_url, data_dir=tmp_path / name, base_url="http://testserver",
                                embedding_runtime="off", mail_schedule=False)
        return TestClient(create_app(settings, embedder=None), raise_server_exceptions=False)

    with app("one") as one, app("two") as two:
        yield one, two


def token(page) -> str:  # noqa: ANN001
    return re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)


def signed_in(client, email="ada@example.org", username="ada") -> str:  # noqa: ANN001
    """Sign up in ``client`` (a new session); returns the session's CSRF token."""
    response = client.post("/signup", data={"email": email, "username": username, "password": "correct horse",
                                            "csrf_token": token(client.get("/signup"))}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return token(client.get("/signup"))


def upvotes_shown(page, paper_id: str) -> int:  # noqa: ANN001
    form = page.text.split(f'action="/papers/{paper_id}/upvote"', 1)[1]
    return int(re.search(r'class="count">(\d+)<', form).group(1))


def test_a_vote_a_comment_and_a_new_paper_show_at_once_to_readers_not_signed_in(apps, engine):
    reader, writer = apps
    for _ in range(2):  # the second view is the kept page
        home, paper = reader.get("/"), reader.get(f"/papers/{PAPER}")
    before = upvotes_shown(home, PAPER)
    assert upvotes_shown(paper, PAPER) == before and "Comments (0)" in paper.text

    csrf = signed_in(writer)
    assert writer.post(f"/papers/{PAPER}/upvote", headers={"x-csrf-token": csrf}).status_code in (200, 303)
    assert upvotes_shown(reader.get("/"), PAPER) == before + 1
    assert upvotes_shown(reader.get(f"/papers/{PAPER}"), PAPER) == before + 1
    assert upvotes_shown(reader.get("/trending"), PAPER) == before + 1

    writer.post(f"/papers/{PAPER}/comments", data={"body": "Kept pages must not hide me.", "csrf_token": csrf})
    page = reader.get(f"/papers/{PAPER}")
    assert "Comments (1)" in page.text and "Kept pages must not hide me." in page.text

    ingest(engine, [("new", Paper(id="2510.99999", title="A paper that arrived after the page was kept",
                                  summary="Fresh.", published_at=datetime(2025, 10, 9),
                                  submitted_on_daily_at=datetime(2025, 10, 10)))])
    assert "A paper that arrived after the page was kept" in reader.get("/").text

    community.hide_paper(engine, "2510.99999")  # by another process: the CLI, a worker
    assert "A paper that arrived after the page was kept" not in reader.get("/").text
    assert reader.get("/papers/2510.99999").status_code == 404


def test_each_app_serves_the_other_apps_writes_at_once(apps, engine):
    one, two = apps
    for client in apps:
        client.get(f"/papers/{PAPER}")
        client.get(f"/papers/{PAPER}")
    before = upvotes_shown(one.get(f"/papers/{PAPER}"), PAPER)
    csrf = signed_in(one)
    one.post(f"/papers/{PAPER}/upvote", headers={"x-csrf-token": csrf})
    assert upvotes_shown(two.get(f"/papers/{PAPER}"), PAPER) == before + 1
    csrf = signed_in(two, "bob@example.org", "bob")
    two.post(f"/papers/{PAPER}/upvote", headers={"x-csrf-token": csrf})
    one.cookies.clear()  # one's reader signs out: the anonymous page again
    assert upvotes_shown(one.get(f"/papers/{PAPER}"), PAPER) == before + 2


def test_signed_in_pages_are_never_kept_nor_shown_to_others(apps):
    reader, writer = apps
    reader.get(f"/papers/{PAPER}")
    csrf = signed_in(writer)
    writer.post(f"/papers/{PAPER}/upvote", headers={"x-csrf-token": csrf})
    mine = writer.get(f"/papers/{PAPER}")
    assert 'aria-pressed="true"' in mine.text and "etag" not in mine.headers  # rendered for ada alone
    theirs = reader.get(f"/papers/{PAPER}")
    assert 'aria-pressed="true"' not in theirs.text and 'href="/account"' not in theirs.text


def test_every_reader_gets_their_own_csrf_token_and_it_works(apps):
    one, two = apps
    first, second = one.get("/"), one.get("/")  # the second is kept: the same reader, the same token
    assert token(first) == token(second) and "dp-kept-page" not in second.text
    other = TestClient(one.app, raise_server_exceptions=False)  # a new visitor, no cookie yet
    with other:
        theirs = other.get("/")
        assert token(theirs) != token(second) and "dp_anon" in theirs.headers["set-cookie"]
        wrong = other.post("/login", data={"email": "nobody@example.org", "password": "not this one",
                                           "csrf_token": token(theirs)})
        assert wrong.status_code != 403 and "did not come from this site" not in wrong.text
        forged = other.post("/login", data={"email": "nobody@example.org", "password": "not this one",
                                            "csrf_token": token(second)})
        assert forged.status_code == 403


def test_a_browser_that_has_the_page_gets_a_304_until_it_changes(apps, engine, monkeypatch):
    reader, _ = apps
    first = reader.get(f"/papers/{PAPER}")
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, no-cache"
    again = reader.get(f"/papers/{PAPER}", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""
    other = TestClient(reader.app)  # another reader's token: another ETag
    with other:
        assert other.get(f"/papers/{PAPER}", headers={"if-none-match": etag}).status_code == 200
    user = accounts.sign_up(engine, "cy@example.org", "correct horse", "cy")
    community.toggle_upvote(engine, user, PAPER)
    changed = reader.get(f"/papers/{PAPER}", headers={"if-none-match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_bad_requests_and_plain_text_are_answered_as_before(apps):
    reader, _ = apps
    for _ in range(2):
        assert reader.get("/papers/date/2025-13-01").status_code == 400
        assert "dp-kept-page" not in reader.get("/papers/2999.99999").text
        bib = reader.get(f"/papers/{PAPER}.bib")
        assert bib.status_code == 200 and bib.text.startswith("@") and "set-cookie" not in bib.headers
    assert reader.get("/?followed=1").status_code == 401


def test_the_version_grows_with_every_write_a_page_shows(engine):
    ingest(engine, parse_hf_json(files("dailypapers.sample").joinpath("papers.json").read_bytes()))
    user = accounts.sign_up(engine, "ada@example.org", "correct horse", "ada")
    seen = [pages_version(engine)]

    def grew() -> bool:
        seen.append(pages_version(engine))
        return seen[-1] > seen[-2]

    community.toggle_upvote(engine, user, PAPER)
    assert grew()
    comment = community.add_comment(engine, user, PAPER, "First.")
    assert grew()
    community.edit_comment(engine, user, comment, "First, edited.")
    assert grew()
    community.hide_comment(engine, comment)
    assert grew()
    community.delete_comment(engine, user, comment)
    assert grew()
    community.hide_paper(engine, PAPER)
    assert grew()
    ingest(engine, [("org", Paper(id="2510.88888", title="T", summary="S",
                                  organization=Organization(name="lab", fullname="A lab")))])
    assert grew()
    with engine.begin() as conn:
        conn.execute(update(organizations).where(organizations.c.name == "lab").values(fullname="The lab"))
    assert grew()
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.pk == user).values(fullname="Ada L."))
    assert grew()
    with engine.begin() as conn:  # an embedding written (similar papers change)
        take_seqs(conn, 3)
    assert grew()
    with engine.begin() as conn:  # what no anonymous page shows: the reader's own signals, sessions
        community.signals_changed(conn, user)
    accounts.create_session(engine, user)
    assert not grew()


def test_kept_pages_stay_within_their_bytes(monkeypatch):
    monkeypatch.setattr(pagecache, "_pages", type(pagecache._pages)())
    monkeypatch.setattr(pagecache, "_size", 0)
    monkeypatch.setattr(pagecache, "MAX_BYTES", 250)
    for n in range(5):
        pagecache._keep(("db", f"/p/{n}", 1, 0), ("text/html", b"x" * 100))
    assert list(pagecache._pages) == [("db", "/p/3", 1, 0), ("db", "/p/4", 1, 0)] and pagecache._size == 200


def test_the_migration_goes_down_and_up(engine):
    from dailypapers.store.backend import create_page_triggers, drop_page_triggers

    with engine.begin() as conn:
        drop_page_triggers(conn)
    before = pages_version(engine)
    with engine.begin() as conn:
        conn.execute(insert(organizations).values(name="quiet"))
    assert pages_version(engine) == before  # no triggers, no counter
    with engine.begin() as conn:
        create_page_triggers(conn)
        conn.execute(insert(organizations).values(name="heard"))
    assert pages_version(engine) > before


def test_a_kept_page_lasts_a_minute_at_most(apps, monkeypatch):
    reader, _ = apps  # trending's order changes with the clock alone
    monkeypatch.setattr(pagecache, "_minute", lambda: 1)
    etag = reader.get("/trending").headers["etag"]
    assert reader.get("/trending", headers={"if-none-match": etag}).status_code == 304
    monkeypatch.setattr(pagecache, "_minute", lambda: 2)
    assert reader.get("/trending", headers={"if-none-match": etag}).status_code == 200


def test_a_search_is_kept_for_readers_not_signed_in_until_a_write(apps, engine, monkeypatch):
    """The same search by readers who are not signed in runs once per version (any reader, any token);
    a write runs it again; a signed-in reader's search always runs."""
    from dailypapers.web import pages

    reader, writer = apps
    runs = []
    real = pages.search
    monkeypatch.setattr(pages, "search", lambda *a, **k: runs.append(a[1]) or real(*a, **k))
    url = "/search?q=robot+manipulation"
    first, second = reader.get(url), reader.get(url)
    assert first.status_code == second.status_code == 200 and len(runs) == 1
    assert second.text == first.text and "dp-kept-page" not in second.text
    other = TestClient(reader.app)
    with other:
        theirs = other.get(url)
        assert len(runs) == 1 and token(theirs) != token(first)
        assert theirs.text.replace(token(theirs), "") == first.text.replace(token(first), "")
    user = accounts.sign_up(engine, "cy@example.org", "correct horse", "cy")
    community.toggle_upvote(engine, user, PAPER)
    assert reader.get(url).status_code == 200 and len(runs) == 2
    signed_in(writer)
    writer.get(url), writer.get(url)
    assert len(runs) == 4
