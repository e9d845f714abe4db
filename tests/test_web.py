"""Every route of the site over HTTP (httpx through ASGI), on SQLite and PostgreSQL: pages, forms,
CSRF, errors, the Hugging Face-shaped API, and the feeds."""

import json
import re
import xml.etree.ElementTree as ET
from importlib.resources import files

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from dailypapers import accounts, community
from dailypapers.accounts import verification
from dailypapers.config import get_settings
from dailypapers.ingest import ingest
from dailypapers.sources.hf_daily import parse_hf_json, read_hf_json
from dailypapers.web.app import create_app

VGC = "2506.10326"  # the seed page's first paper


@pytest.fixture(autouse=True)
def quick_hashing(monkeypatch):
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def site(engine, db_url, tmp_path):
    """The sample corpus behind the real app, text search only (the model is tested elsewhere)."""
    ingest(engine, parse_hf_json(files("dailypapers.sample").joinpath("papers.json").read_bytes()))
    settings = get_settings(database_url=db_url, data_dir=tmp_path, base_url="http://testserver",
                            embedding_runtime="off")
    with TestClient(create_app(settings, embedder=None), raise_server_exceptions=False) as client:
        yield client


def csrf(client, path="/"):
    page = client.get(path)
    return re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)


def sign_up(client, email="ada@example.org", username="ada", password="correct horse"):
    """Sign up (which signs in); returns the CSRF token of the new session (it changes at sign-in)."""
    token = csrf(client, "/signup")
    response = client.post("/signup", data={"email": email, "username": username, "password": password,
                                            "csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf(client)


@pytest.mark.parametrize("path, needle", [
    ("/", "Daily Papers"),
    ("/papers/date/2025-10-09", "Thursday, October 9, 2025"),
    ("/papers/week/2025-W41", "Week 41, 2025"),
    ("/papers/month/2025-10", "October 2025"),
    ("/trending", "(upvotes + 1) / (hours since they were put on the feed + 2)"),
    ("/search?q=diverse+team+strategies", "Competitive Pokémon"),
    (f"/papers/{VGC}", "https://github.com/cameronangliss/VGC-Bench"),
    ("/orgs/facebook", "AI at Meta"),
    ("/signup", "Create account"),
    ("/login", "Forgot your password?"),
    ("/reset", "Send me a link"),
])
def test_pages(site, path, needle):
    response = site.get(path)
    assert response.status_code == 200
    assert needle in response.text


def test_home_shows_the_latest_day_with_cards_like_the_seed_page(site):
    page = site.get("/").text
    assert "Friday, October 10, 2025" in page and "9 papers" in page
    assert re.search(r"\d+ authors", page) and "▲" in page
    assert '<link rel="alternate" type="application/rss+xml"' in page
    assert 'rel="prev" href="/papers/date/2025-10-09"' in page


def test_search_highlights_and_filters(site):
    page = site.get("/search", params={"q": "policy generalization"}).text
    assert "<mark>" in page
    assert site.get("/search", params={"q": "agent", "org": "facebook"}).text.count('class="card"') == 1
    assert site.get("/search", params={"q": "robot", "org": "facebook"}).text.count('class="card"') == 0
    assert site.get("/search", params={"q": "zzzqqq"}).status_code == 200


@pytest.mark.parametrize("path, status, message", [
    ("/papers/date/2025-13-01", 400, "is not a real date"),
    ("/papers/date/yesterday", 400, "is not a date like 2025-10-10"),
    ("/papers/week/2025-W60", 400, "is not a real week"),
    ("/papers/month/2025-13", 400, "is not a month like 2025-02"),
    ("/papers/2999.99999", 404, "There is no paper &#39;2999.99999&#39; here."),
    ("/orgs/nobody", 404, "There is no organization"),
    ("/search?q=x&since=tomorrow", 400, "since: &#39;tomorrow&#39; is not a date"),
    ("/search?q=x&sort=random", 400, "sort must be one of"),
    ("/search?q=x&page=two", 400, "page must be a number"),
    # A page far down once made each side ask for billions of candidates (Tantivy aborted the process).
    ("/search?q=x&page=100000000", 400, "page: search results go no further than page 33"),
    ("/search?q=x&page=99999999999999999999", 400, "page: search results go no further than page 33"),
    ("/?sort=random", 400, "sort must be upvotes, publishedAt or trending"),
    ("/no/such/page", 404, "Not Found"),
    ("/account", 401, "Sign in to do that."),
])
def test_bad_requests_get_a_page_that_says_what_was_wrong(site, path, status, message):
    response = site.get(path)
    assert response.status_code == status
    assert message in response.text and "Traceback" not in response.text


def test_hostile_queries_never_break_the_search_page(site):
    for q in ['"', "NOT", "*", "'; DROP TABLE papers; --", "x" * 10_000, "(", "author:", "cat:"]:
        assert site.get("/search", params={"q": q}).status_code == 200, q
    nul = site.get("/search", params={"q": "a\x00b"})  # no field takes one (PostgreSQL cannot)
    assert nul.status_code == 400 and "NUL character" in nul.text
    assert site.get(f"/papers/{VGC}").status_code == 200


def test_an_arxiv_id_in_the_search_box_goes_to_the_paper(site, engine, recorded):
    from dailypapers.sources.arxiv_api import parse_feed

    ingest(engine, parse_feed((recorded / "arxiv-api" / "query_id_list-1605.08386.xml").read_bytes()))
    response = site.get("/search", params={"q": "https://arxiv.org/abs/1605.08386v1"}, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/papers/1605.08386")


def test_server_errors_are_a_page_without_a_trace(site, monkeypatch):
    from dailypapers.store import queries

    monkeypatch.setattr(queries, "trending", lambda *a, **k: 1 / 0)
    response = site.get("/trending")
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.text and "ZeroDivision" not in response.text
    api = site.get("/api/daily_papers", params={"date": "nonsense"})
    assert api.status_code == 400 and api.json() == {"error": "date: 'nonsense' is not a date like 2025-10-10"}


def test_sign_up_in_out(site):
    sign_up(site)
    assert "ada" in site.get("/").text and "Sign out" in site.get("/").text
    token = csrf(site)
    assert site.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert "Sign in" in site.get("/").text
    token = csrf(site, "/login")  # signing out changed the token
    bad = site.post("/login", data={"email": "ada@example.org", "password": "wrong password", "csrf_token": token})
    assert bad.status_code == 400 and "Wrong email or password." in bad.text and 'aria-invalid="true"' in bad.text
    good = site.post("/login", data={"email": "ada@example.org", "password": "correct horse", "next": "//evil.com",
                                     "csrf_token": token}, follow_redirects=False)
    assert (good.status_code, good.headers["location"]) == (303, "/")
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_sign_up_form_errors_come_back_beside_the_field(site):
    token = csrf(site, "/signup")
    response = site.post("/signup", data={"email": "not-an-address", "username": "ada", "password": "correct horse",
                                          "csrf_token": token})
    assert response.status_code == 400
    assert 'id="email-error">Enter a valid email address, like name@example.com.' in response.text
    assert 'value="not-an-address"' in response.text


def test_forms_without_the_csrf_token_are_refused(site):
    for path, data in [("/signup", {"email": "a@b.org", "username": "abc", "password": "12345678"}),
                       (f"/papers/{VGC}/upvote", {}), ("/logout", {})]:
        response = site.post(path, data=data)
        assert response.status_code == 403, path
        assert "did not come from this site" in response.text
    csrf(site)
    assert site.post("/logout", data={"csrf_token": "forged"}).status_code == 403


def test_upvote_toggles_once_per_user_by_form_and_by_script(site):
    assert site.post(f"/papers/{VGC}/upvote", data={"csrf_token": csrf(site)}).status_code == 401
    token = sign_up(site)
    before = site.get(f"/api/papers/{VGC}").json()["upvotes"]
    voted = site.post(f"/papers/{VGC}/upvote", headers={"X-CSRF-Token": token, "Accept": "application/json"})
    assert voted.json() == {"voted": True, "upvotes": before + 1}
    form = site.post(f"/papers/{VGC}/upvote", data={"csrf_token": token}, headers={"Referer": "http://testserver/"},
                     follow_redirects=False)
    assert (form.status_code, form.headers["location"]) == (303, "/")
    assert site.get(f"/api/papers/{VGC}").json()["upvotes"] == before


def test_save_and_export_bibtex(site):
    token = sign_up(site)
    assert site.post(f"/papers/{VGC}/save", headers={"X-CSRF-Token": token, "Accept": "application/json"}).json() == \
        {"saved": True}
    assert "A Benchmark for Generalizing Across Diverse Team Strategies" in site.get("/account").text
    bib = site.get("/saved.bib")
    assert bib.headers["content-type"].startswith("application/x-bibtex")
    assert bib.text.startswith("@misc{") and "Generalizing Across Diverse Team Strategies" in bib.text


def test_comments_are_rendered_sanitized_and_bad_ones_come_back_with_the_message(site):
    token = sign_up(site)
    site.post(f"/papers/{VGC}/comments", data={"body": "**Nice** <script>alert(1)</script> [x](javascript:alert(2))",
                                               "csrf_token": token})
    page = site.get(f"/papers/{VGC}").text
    assert "<strong>Nice</strong>" in page
    assert "<script>alert(1)" not in page and 'href="javascript:' not in page
    assert "&lt;script&gt;alert(1)" in page  # shown as the text it is
    empty = site.post(f"/papers/{VGC}/comments", data={"body": "   ", "csrf_token": token})
    assert empty.status_code == 400 and "A comment cannot be empty." in empty.text


def test_admin_can_hide_a_paper(site, engine):
    token = sign_up(site)
    assert site.post(f"/papers/{VGC}/hide", data={"csrf_token": token}).status_code == 403
    accounts.grant_admin(engine, "ada@example.org")
    site.post(f"/papers/{VGC}/hide", data={"csrf_token": token, "hidden": "1"})
    assert site.get(f"/api/papers/{VGC}").status_code == 404
    assert "This paper is hidden from the site." in site.get(f"/papers/{VGC}").text  # the admin still sees it


def test_api_daily_papers_has_the_hugging_face_shape(site, engine, recorded):
    recorded_items = json.loads((recorded / "hf-daily-papers" / "daily_papers_limit-30_2026-06-13.json").read_text())
    ingest(engine, read_hf_json(recorded / "hf-daily-papers" / "daily_papers_limit-30_2026-06-13.json"))
    ours = site.get("/api/daily_papers", params={"date": "2026-06-12", "limit": 100}).json()
    assert len(ours) == 30
    by_id = {item["paper"]["id"]: item for item in ours}
    for theirs in recorded_items:
        mine = by_id[theirs["paper"]["id"]]
        for key in ("title", "summary", "publishedAt", "numComments", "submittedBy", "organization"):
            if key in theirs:
                assert key in mine and type(mine[key]) is type(theirs[key]), key
        for key in ("id", "title", "summary", "publishedAt", "submittedOnDailyAt", "upvotes", "authors",
                    "githubRepo", "projectPage", "submittedOnDailyBy"):
            if theirs["paper"].get(key) is not None:
                assert type(mine["paper"][key]) is type(theirs["paper"][key]), key
        assert mine["paper"]["upvotes"] == theirs["paper"]["upvotes"]
        assert [a["name"] for a in mine["paper"]["authors"]] == [a["name"] for a in theirs["paper"]["authors"]]
        assert mine["paper"]["submittedOnDailyAt"] == theirs["paper"]["submittedOnDailyAt"]
        assert mine["paper"]["ai_keywords"] == theirs["paper"]["ai_keywords"]


@pytest.mark.parametrize("params, message", [
    ({"limit": 101}, "limit: Input should be less than or equal to 100"),
    ({"limit": 0}, "limit: Input should be greater than or equal to 1"),
    ({"date": "2025-02-30"}, "date: '2025-02-30' is not a real date"),
    ({"week": "2025-9"}, "week: '2025-9' is not a week like 2025-W09"),
    ({"month": "2025-2"}, "month: '2025-2' is not a month like 2025-02"),
    ({"date": "2025-10-10", "week": "2025-W41"}, "give only one of date, week and month"),
    ({"sort": "hot"}, "sort: String should match pattern '^(publishedAt|trending)$'"),
])
def test_api_bad_parameters_are_400_with_one_json_shape(site, params, message):
    response = site.get("/api/daily_papers", params=params)
    assert response.status_code == 400 and response.json() == {"error": message}


def test_api_periods_paging_sorting_and_submitter(site):
    week = site.get("/api/daily_papers", params={"week": "2025-W41", "limit": 100}).json()
    month = site.get("/api/daily_papers", params={"month": "2025-10", "limit": 100}).json()
    assert len(week) == 49 and len(month) == 79
    page0 = site.get("/api/daily_papers", params={"month": "2025-10", "limit": 10, "p": 0}).json()
    page1 = site.get("/api/daily_papers", params={"month": "2025-10", "limit": 10, "p": 1}).json()
    assert not {i["paper"]["id"] for i in page0} & {i["paper"]["id"] for i in page1}
    assert site.get("/api/daily_papers", params={"sort": "trending"}).status_code == 200
    assert site.get("/api/daily_papers", params={"submitter": "nobody"}).json() == []


def test_api_paper_search_and_bearer_upvote(site, engine):
    paper = site.get(f"/api/papers/{VGC}").json()
    assert paper["id"] == VGC and paper["numComments"] == 0 and paper["githubRepo"]
    assert site.get("/api/papers/2999.99999").json() == {"error": "There is no paper '2999.99999' here."}
    found = site.get("/api/papers/search", params={"q": "pokemon team strategies"}).json()
    assert found[0]["paper"]["id"] == VGC
    assert site.post(f"/api/papers/{VGC}/upvote").status_code == 401
    user_pk = accounts.sign_up(engine, "bot@example.org", "long password", "bot")
    token = accounts.create_api_token(engine, user_pk)
    voted = site.post(f"/api/papers/{VGC}/upvote", headers={"Authorization": f"Bearer {token}"})
    assert voted.json() == {"voted": True, "upvotes": paper["upvotes"] + 1}


def test_openapi_docs(site):
    assert site.get("/docs").status_code == 200
    spec = site.get("/openapi.json").json()
    assert {"/api/daily_papers", "/api/papers/search", "/api/papers/{paper_id}"} <= set(spec["paths"])


def test_rss_and_atom_feeds(site):
    rss = ET.fromstring(site.get("/feeds/daily.rss").content)
    items = rss.findall("./channel/item")
    assert len(items) == 9 and re.fullmatch(r"http://testserver/papers/\d{4}\.\d{5}", items[0].find("link").text)
    atom = ET.fromstring(site.get("/feeds/search.atom", params={"q": "robot manipulation"}).content)
    assert len(atom.findall("{http://www.w3.org/2005/Atom}entry")) > 3
    assert site.get("/feeds/daily.json").status_code == 404
    assert "Feeds end in .rss or .atom" in site.get("/feeds/search.json", params={"q": "robot"}).text
    assert site.get("/feeds/daily.rss", params={"date": "2025-02-31"}).status_code == 400


def test_password_reset_by_link(site, engine, monkeypatch):
    sign_up(site)
    verification.mark_verified(engine, "ada@example.org")  # an unverified address gets no reset mail
    sent = []
    site.app.state.send_reset = lambda email, link: sent.append((email, link))
    token = csrf(site, "/reset")
    page = site.post("/reset", data={"email": "ada@example.org", "csrf_token": token})
    assert "a link to choose a new password is on its way" in page.text
    unknown = site.post("/reset", data={"email": "nobody@example.org", "csrf_token": token})
    assert unknown.text.count("on its way") == 1 and len(sent) == 1  # same answer, no mail
    link = sent[0][1].replace("http://testserver", "")
    done = site.post(link, data={"password": "a new password", "csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303
    token = csrf(site)  # the reset signed in anew: a new session, a new token
    again = site.post(link, data={"password": "another one!", "csrf_token": token})
    assert again.status_code == 400 and "This reset link has expired or was already used." in again.text


def test_search_pages_run_one_at_a_time_in_arrival_order(site, monkeypatch):
    """A worker works on one search page at a time (HTML, API and feed share the queue), in the
    order the requests came: threads side by side only fight over the GIL."""
    import asyncio
    import threading
    import time

    from dailypapers.web import api, deps, pages

    running, overlaps, order = [], [], []
    lock = threading.Lock()
    real_search = pages.search

    def slow_search(engine, q, **kwargs):  # noqa: ANN001, ANN003, ANN202
        with lock:
            running.append(q)
            overlaps.append(len(running))
            order.append(q)
        time.sleep(0.1)
        try:
            return real_search(engine, q, **kwargs)
        finally:
            with lock:
                running.remove(q)

    class Counting(asyncio.Semaphore):
        """The worker's gate, counting the requests that reached it."""

        arrived = 0

        async def acquire(self) -> bool:
            self.arrived += 1
            return await super().acquire()

    assert site.get("/search?q=warm").status_code == 200  # the worker's gate exists on its loop
    loop = site.app.state.search_gate[0]
    gate = site.app.state.search_gate = (loop, Counting(deps.SEARCHES_AT_ONCE))
    monkeypatch.setattr(pages, "search", slow_search)
    monkeypatch.setattr(api, "search", slow_search)
    paths = [f"/search?q=robot+{n}" if n % 2 else f"/api/papers/search?q=robot+{n}" for n in range(6)]
    statuses = {}

    def get(path: str) -> None:
        statuses[path] = site.get(path).status_code

    threads = []
    for n, path in enumerate(paths, 1):  # one after the other, each sent once the earlier ones wait
        threads.append(threading.Thread(target=get, args=(path,)))
        threads[-1].start()
        deadline = time.monotonic() + 30
        while gate[1].arrived < n:
            assert time.monotonic() < deadline, f"request {n} never reached the gate"
            time.sleep(0.005)
    for thread in threads:
        thread.join()
    assert statuses == dict.fromkeys(paths, 200)
    assert max(overlaps) == 1
    assert order == [f"robot {n}" for n in range(6)]


def test_bad_search_requests_and_the_empty_form_do_not_wait_behind_a_search(site, monkeypatch):
    import threading
    import time

    from dailypapers.web import pages

    started, release = threading.Event(), threading.Event()
    real_search = pages.search

    def held_search(engine, q, **kwargs):  # noqa: ANN001, ANN003, ANN202
        started.set()
        release.wait(10)
        return real_search(engine, q, **kwargs)

    monkeypatch.setattr(pages, "search", held_search)
    searching = threading.Thread(target=site.get, args=("/search?q=robot",))
    searching.start()
    try:
        assert started.wait(5)
        begun = time.monotonic()
        assert site.get("/search?q=x&sort=random").status_code == 400
        assert site.get("/search?q=x&page=1000").status_code == 400
        assert "Search" in site.get("/search").text
        assert time.monotonic() - begun < 5  # answered while the search still held the queue
    finally:
        release.set()
        searching.join()
