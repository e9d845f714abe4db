"""Every route of the site, from ``app.routes``, with hostile values in its path, query and form
fields, signed in and not, on SQLite and PostgreSQL: nothing answers 5xx, and a 4xx says what is wrong.
Then the inputs once known to give a 500, each with its exact answer."""

import json
import re
from urllib.parse import quote

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from dailypapers import accounts
from dailypapers.web import actions
from dailypapers.config import get_settings
from dailypapers.ingest import ingest
from dailypapers.sources.hf_daily import parse_hf_json
from dailypapers.web.app import create_app

from importlib.resources import files

VGC = "2506.10326"

# Values as they go into a URL or a form body, already percent-encoded where they must be.
HOSTILE = {
    "first day": "0001-01-01",
    "before arXiv": "1990-12-31",
    "last day": "9999-12-31",
    "last week": "9999-W52",
    "first month": "0001-01",
    "last month": "9999-12",
    "huge": "x" * 60_000,  # the longest URL the HTTP client sends; forms get 100 KB (below)
    "NUL": "%00",
    "bad UTF-8": "%FF%FE",
    "non-ASCII": quote("ü€😀"),
    "number too big": "9" * 30,
    "negative": "-1",
}
ONE_BY_ONE = ("last day", "huge", "NUL", "bad UTF-8")
# Query parameters the routes read (HTML routes read them from the request, so they are not declared).
QUERY_NAMES = ("date", "week", "month", "q", "sort", "page", "p", "limit", "since", "until", "cat", "org",
               "has_code", "submitter", "next", "comments", "kind", "period", "query", "email")


@pytest.fixture(autouse=True)
def quick_hashing(monkeypatch):
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def app(engine, db_url, tmp_path):
    ingest(engine, parse_hf_json(files("dailypapers.sample").joinpath("papers.json").read_bytes()))
    settings = get_settings(database_url=db_url, data_dir=tmp_path, base_url="http://testserver",
                            embedding_runtime="off", arxiv_api_url="http://127.0.0.1:9/api/query",
                            request_delay=0)
    return create_app(settings, embedder=None)


def routes(app) -> list[tuple[str, str, tuple[str, ...]]]:
    """(method, path, declared form fields) of every route, walking included routers."""
    found = []

    def walk(items, prefix=""):
        for route in items:
            if hasattr(route, "original_router"):  # FastAPI >= 0.130 keeps included routers as such
                walk(route.original_router.routes, prefix + route.include_context.prefix)
            elif hasattr(route, "methods") and route.methods:
                dependant = getattr(route, "dependant", None)
                fields = tuple(p.name for p in dependant.body_params) if dependant else ()
                for method in sorted(route.methods - {"HEAD"}):
                    found.append((method, prefix + route.path, fields))

    walk(app.routes)
    return found


def fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda _: value, path)


def csrf_token(client) -> str:
    page = client.get("/signup")
    return re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)


def sign_in(client) -> None:
    token = csrf_token(client)
    response = client.post("/signup", data={"email": "ada@example.org", "username": "ada",
                                            "password": "correct horse", "csrf_token": token},
                           follow_redirects=False)
    assert response.status_code == 303, response.text


def assert_sane(response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    if 400 <= response.status_code < 500:
        if response.headers.get("content-type", "").startswith("application/json"):
            message = response.json().get("error")
        else:
            found = re.search(r'class="(?:message|error)"[^>]*>([^<]+)<', response.text)
            message = found and found.group(1)
        assert message and len(message.strip()) > 5, f"{what}: {response.status_code} without a message"


def test_the_walk_finds_every_kind_of_route(app):
    found = {(method, path) for method, path, _ in routes(app)}
    for expected in [("GET", "/"), ("GET", "/papers/date/{value}"), ("GET", "/api/daily_papers"),
                     ("POST", "/papers/{paper_id:path}/comments"), ("GET", "/feeds/daily.{kind}"),
                     ("POST", "/submit"), ("GET", "/api/stats")]:
        assert expected in found
    assert len(found) > 35


SKIP = ("/static", "/docs", "/redoc", "/openapi", "/logout")


def valid_base(path: str) -> str:
    """The route with ordinary path values, so that its query and form fields are reached."""
    return fill(path, VGC if "paper_id" in path else "2025-10-10" if "{value}" in path
                else "rss" if "{kind}" in path else "1" if "_pk" in path else "x")


@pytest.fixture
def hostile_client(app, monkeypatch):
    monkeypatch.setattr(actions, "COMMENT_LIMITS", ("10000/minute",))  # every value reaches the handler
    monkeypatch.setattr(actions, "SUBMIT_LIMITS", ("10000/minute",))
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        yield client


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
def test_no_hostile_value_in_a_path_or_query_gives_a_server_error(app, hostile_client, signed_in):
    client = hostile_client
    if signed_in:
        sign_in(client)
    token = csrf_token(client)
    for method, path, _ in routes(app):
        if path.startswith(SKIP):
            continue
        base = valid_base(path)
        for name, value in HOSTILE.items():
            url = fill(path, value)
            if method != "GET":
                assert_sane(client.post(url, data={"csrf_token": token}), f"{method} {url[:80]} ({name})")
                continue
            assert_sane(client.get(url), f"GET {url[:80]} ({name} in the path)")
            everything = f"{base}?" + "&".join(f"{param}={value}" for param in QUERY_NAMES)
            assert_sane(client.get(everything[:65_000]), f"GET {base} with every parameter ({name})")
            if name in ONE_BY_ONE and not signed_in:  # each alone, so that none hides behind another's 400
                for param in QUERY_NAMES:
                    target = f"{base}?{param}={value}"
                    assert_sane(client.get(target), f"GET {target[:80]} ({name})")


def test_no_hostile_value_in_a_form_gives_a_server_error(app, hostile_client):
    client = hostile_client
    sign_in(client)
    token = csrf_token(client)
    form = {"content-type": "application/x-www-form-urlencoded"}
    for method, path, fields in routes(app):
        if method != "POST" or path.startswith(SKIP):
            continue
        base = valid_base(path)
        for name, value in HOSTILE.items():
            value = "x" * 100_000 if name == "huge" else value
            for field in fields:
                if field != "csrf_token":
                    response = client.post(base, content=f"csrf_token={token}&{field}={value}", headers=form)
                    assert_sane(response, f"POST {base[:80]} {field}=({name})")
            repeated = f"csrf_token={token}&" + "&".join(f"{field}={value[:100]}" for field in fields) * 200
            response = client.post(base, content=repeated, headers=form)
            assert_sane(response, f"POST {base[:80]} repeated ({name})")


@pytest.fixture
def client(app):
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        yield client


@pytest.mark.parametrize("url, needle", [
    ("/papers/date/0001-01-01", "'0001-01-01' is out of range: papers are served for the years 1991 to 9998"),
    ("/papers/date/1990-12-31", "'1990-12-31' is out of range"),
    ("/papers/date/9999-12-31", "'9999-12-31' is out of range"),
    ("/papers/week/9999-W52", "'9999-W52' is out of range"),
    ("/papers/month/0001-01", "'0001-01' is out of range"),
    ("/papers/month/9999-12", "'9999-12' is out of range"),
    ("/api/daily_papers?date=9999-12-31", "date: '9999-12-31' is out of range"),
    ("/api/daily_papers?week=0001-W01", "week: '0001-W01' is out of range"),
    ("/feeds/daily.atom?date=9999-12-31", "date: '9999-12-31' is out of range"),
    ("/search?q=x&since=9999-12-31", "since: '9999-12-31' is out of range"),
    ("/search?q=x&until=0001-01-01", "until: '0001-01-01' is out of range"),
    ("/feeds/search.rss?q=x&until=9999-12-31", "until: '9999-12-31' is out of range"),
    ("/search?q=x&" + "&".join(["cat=cs.LG"] * 3000), "cat: at most 20 categories"),
    ("/feeds/search.rss?q=x&" + "&".join(["cat=cs.LG"] * 21), "cat: at most 20 categories"),
    ("/papers/date/2025-10-10?sort=%00", "The request contains a NUL character"),
    ("/papers/date/2025-10-10?sort=x", "sort must be upvotes, publishedAt or trending"),
])
def test_known_bad_inputs_get_a_400_that_names_the_problem(client, url, needle):
    response = client.get(url)
    assert response.status_code == 400, response.text[:300]
    text = response.json()["error"] if url.startswith("/api/") else response.text.replace("&#39;", "'")
    assert needle in text


def test_the_edges_of_the_served_years_are_served_and_links_stop_there(client):
    first = client.get("/papers/month/1991-01")
    assert first.status_code == 200
    assert 'rel="prev"' not in first.text and 'href="/papers/month/1991-02"' in first.text
    last = client.get("/papers/week/9998-W53")  # the last week of 9998
    assert last.status_code == 200 and 'rel="next"' not in last.text
    assert client.get("/papers/date/9998-12-31").status_code == 200
    assert client.get("/api/daily_papers", params={"month": "1991-01"}).json() == []


def test_twenty_categories_are_allowed(client):
    response = client.get("/search?q=policy&" + "&".join(f"cat=cs.X{i}" for i in range(20)))
    assert response.status_code == 200


def test_non_ascii_paths_work(client):
    assert client.get(f"/papers/{quote('ü€')}").status_code == 404
    page = client.get(f"/papers/{quote('ü€')}").text
    assert "There is no paper 'ü€' here" in page.replace("&#39;", "'")
    assert client.get(f"/orgs/{quote('Zürich')}").status_code == 404
    # Signed out, an action asks to sign in with a link back that keeps the non-ASCII path.
    token = csrf_token(client)
    response = client.post(f"/papers/{quote('ü€')}/upvote", data={"csrf_token": token})
    assert response.status_code == 401
    assert response.headers["X-Login"] == "/login?next=" + quote("/papers/ü€/upvote", safe="")
    response = client.post(f"/api/papers/{quote('ü€')}/upvote")
    assert response.status_code == 401 and "Bearer" in response.json()["error"]


def test_nul_and_bad_utf8_in_forms_are_answered(client):
    sign_in(client)
    token = csrf_token(client)
    form = {"content-type": "application/x-www-form-urlencoded"}
    # Invalid UTF-8 in a form is decoded with replacement characters, as browsers do.
    response = client.post(f"/papers/{VGC}/comments", content=f"csrf_token={token}&body=%FF%FE", headers=form)
    assert response.status_code == 303
    assert "\ufffd\ufffd" in client.get(f"/papers/{VGC}").text
    response = client.post(f"/papers/{VGC}/comments", content=f"csrf_token={token}&body=hi%00there",
                           headers=form)
    assert response.status_code == 400 and "NUL character" in response.text
    for url in ("/api/papers/%00", "/api/daily_papers?submitter=%00", "/search?q=a%00b", "/orgs/%00"):
        response = client.get(url)
        assert response.status_code == 400 and "NUL character" in response.text
    response = client.post("/submit", content=f"csrf_token={token}&paper=%00", headers=form)
    assert response.status_code == 400 and "NUL character" in response.text


def test_api_errors_are_json(client):
    response = client.get("/api/daily_papers", params={"date": "2025-13-01"})
    assert response.status_code == 400 and "is not a real date" in json.dumps(response.json())
    response = client.get("/api/daily_papers", params={"p": "9" * 30})
    assert response.status_code == 400 and response.json()["error"].startswith("p:")
