"""Comments rendered once and paged, submissions fetched politely with a short timeout, and the
throttles on both, through the real app on SQLite and PostgreSQL, arXiv replayed by a local server."""

import http.server
import re
import threading
import time
from importlib.resources import files

import pytest
from alembic import command
from alembic.config import Config
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from dailypapers import accounts, community, jobs
from dailypapers.config import get_settings
from dailypapers.ingest import ingest
from dailypapers.sources.hf_daily import parse_hf_json
from dailypapers.store.db import MIGRATIONS
from dailypapers.store.schema import comments, papers
from dailypapers.store.schema import paper_embeddings as embeddings
from dailypapers.web import actions
from dailypapers.web.app import create_app

VGC = "2506.10326"


@pytest.fixture(autouse=True)
def quick_hashing(monkeypatch):
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


class Arxiv(http.server.ThreadingHTTPServer):
    """A local arXiv API: answers with a recorded feed after ``stalls`` stalled requests; logs times."""

    def __init__(self, body: bytes, stalls: int = 0, stall: float = 2.0):
        self.body, self.stalls, self.stall, self.times = body, stalls, stall, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.times.append(time.monotonic())
                if len(server.times) <= server.stalls:
                    time.sleep(server.stall)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/atom+xml")
                    self.send_header("Content-Length", str(len(server.body)))
                    self.end_headers()
                    self.wfile.write(server.body)
                except OSError:
                    pass  # the client gave up

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/query"


@pytest.fixture
def feed(recorded) -> bytes:
    return (recorded / "arxiv-api" / "query_id_list-1605.08386.xml").read_bytes()


def make_app(engine, db_url, tmp_path, arxiv_url="http://127.0.0.1:9/api/query", delay=0.0, embedder=None):
    settings = get_settings(database_url=db_url, data_dir=tmp_path, base_url="http://testserver",
                            embedding_runtime="off", arxiv_api_url=arxiv_url, request_delay=delay)
    return create_app(settings, embedder=embedder)


@pytest.fixture
def site(engine, db_url, tmp_path):
    ingest(engine, parse_hf_json(files("dailypapers.sample").joinpath("papers.json").read_bytes()))
    with TestClient(make_app(engine, db_url, tmp_path), raise_server_exceptions=False,
                    follow_redirects=False) as client:
        yield client


def sign_up(client, name="ada") -> str:
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/signup").text).group(1)
    response = client.post("/signup", data={"email": f"{name}@example.org", "username": name,
                                            "password": "correct horse", "csrf_token": token})
    assert response.status_code == 303, response.text
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)


def user_pk(engine, name="ada") -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pk FROM users WHERE username = :u"), {"u": name}).scalar_one()


# --- comments -----------------------------------------------------------------------------------


def test_a_comment_is_rendered_once_when_written_and_again_when_edited(site, engine, monkeypatch):
    token = sign_up(site)
    response = site.post(f"/papers/{VGC}/comments", data={"body": "**bold** <script>x</script>",
                                                           "csrf_token": token})
    assert response.status_code == 303 and response.headers["location"].endswith("?comments=1#comments")
    with engine.connect() as conn:
        pk, html = conn.execute(select(comments.c.pk, comments.c.body_html)).one()
    assert html == "<p><strong>bold</strong> &lt;script&gt;x&lt;/script&gt;</p>\n"

    def no_rendering(text):
        raise AssertionError("a view rendered Markdown")

    real = community.render_markdown
    monkeypatch.setattr(community, "render_markdown", no_rendering)
    page = site.get(f"/papers/{VGC}")
    assert page.status_code == 200 and "<strong>bold</strong>" in page.text
    monkeypatch.setattr(community, "render_markdown", real)
    assert site.post(f"/comments/{pk}/edit", data={"body": "_now_", "csrf_token": token}).status_code == 303
    with engine.connect() as conn:
        assert conn.execute(select(comments.c.body_html)).scalar_one() == "<p><em>now</em></p>\n"


def test_a_comment_has_a_length_cap(site):
    token = sign_up(site)
    response = site.post(f"/papers/{VGC}/comments", data={"body": "x" * 10_001, "csrf_token": token})
    assert response.status_code == 400
    assert "A comment can be at most 10,000 characters; this one has 10,001." in response.text


def test_comments_come_in_pages_of_fifty(site, engine):
    sign_up(site)
    ada = user_pk(engine)
    for i in range(51):
        community.add_comment(engine, ada, VGC, f"comment number {i}")
    first = site.get(f"/papers/{VGC}").text
    assert "Comments (51)" in first and first.count('class="comment"') == 50
    assert f'href="/papers/{VGC}?comments=2#comments"' in first and "comment number 49" in first
    second = site.get(f"/papers/{VGC}?comments=2").text
    assert second.count('class="comment"') == 1 and "comment number 50" in second
    assert f'href="/papers/{VGC}?comments=1#comments"' in second
    for bad in ("3", "0", "x", "9" * 40):
        response = site.get(f"/papers/{VGC}?comments={bad}")
        assert response.status_code == 400 and "comments: a page from 1 to 2" in response.text
    assert site.get(f"/api/papers/{VGC}").json()["numComments"] == 51


def test_comments_are_throttled_per_user(site):
    token = sign_up(site)
    for i in range(5):
        assert site.post(f"/papers/{VGC}/comments", data={"body": f"hi {i}", "csrf_token": token}
                         ).status_code == 303
    response = site.post(f"/papers/{VGC}/comments", data={"body": "one more", "csrf_token": token})
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert "Too many requests; try again in" in response.text and "one more" in response.text


def test_the_migration_renders_comments_written_before_it(engine):
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    ingest(engine, parse_hf_json(files("dailypapers.sample").joinpath("papers.json").read_bytes()))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0005")
        paper_pk = conn.execute(select(papers.c.pk).where(papers.c.id == VGC)).scalar_one()
        user = conn.execute(text("INSERT INTO users (username, email, created_at) VALUES "
                                 "('ada', 'ada@example.org', '2025-01-01') RETURNING pk")).scalar_one()
        conn.execute(text("INSERT INTO comments (paper_pk, user_pk, body, created_at, hidden) VALUES "
                          "(:p, :u, '*old*', '2025-01-01', false)"), {"p": paper_pk, "u": user})
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    with engine.connect() as conn:
        assert conn.execute(select(comments.c.body_html)).scalar_one() == "<p><em>old</em></p>\n"


# --- submissions --------------------------------------------------------------------------------


def submit(client, token, paper="1605.08386"):
    return client.post("/submit", data={"paper": paper, "csrf_token": token})


def test_a_stalled_arxiv_is_asked_once_more_and_the_user_is_told(engine, db_url, tmp_path, feed, monkeypatch):
    monkeypatch.setattr(actions, "ARXIV_TIMEOUT", 0.5)
    arxiv = Arxiv(feed, stalls=1)
    with TestClient(make_app(engine, db_url, tmp_path, arxiv.url), follow_redirects=False) as client:
        token = sign_up(client)
        started = time.monotonic()
        response = submit(client, token)
        assert time.monotonic() - started < 2.0
        assert response.status_code == 303 and response.headers["location"] == (
            "/papers/1605.08386?submitted=fetched")
        assert len(arxiv.times) == 2
        page = client.get(response.headers["location"]).text
        assert "Fetched from arXiv and put on today&#39;s feed" in page
        response = submit(client, token, "arXiv:1605.08386v1")
        assert response.headers["location"] == "/papers/1605.08386?submitted=already"
        assert "already on the feed" in client.get(response.headers["location"]).text
        assert len(arxiv.times) == 2
    arxiv.shutdown()


def test_an_arxiv_that_does_not_answer_holds_a_worker_briefly(engine, db_url, tmp_path, feed, monkeypatch):
    monkeypatch.setattr(actions, "ARXIV_TIMEOUT", 0.3)
    arxiv = Arxiv(feed, stalls=10, stall=3.0)
    with TestClient(make_app(engine, db_url, tmp_path, arxiv.url), follow_redirects=False) as client:
        token = sign_up(client)
        started = time.monotonic()
        response = submit(client, token)
        assert time.monotonic() - started < 1.5 and len(arxiv.times) == 2
        assert response.status_code == 503
        assert "arXiv could not be asked for 1605.08386" in response.text
        assert "try again later" in response.text
        response = submit(client, token, "not an id")
        assert response.status_code == 400 and "is not an arXiv identifier" in response.text
    arxiv.shutdown()


def test_workers_keep_arxivs_spacing_between_them(engine, db_url, tmp_path, feed):
    """Two apps (two engines: two workers, or two machines) submitting at once ask arXiv 1 s apart."""
    arxiv = Arxiv(feed)
    apps = [make_app(engine, db_url, tmp_path, arxiv.url, delay=1.0) for _ in range(2)]
    clients = [TestClient(app, follow_redirects=False) for app in apps]
    tokens = [sign_up(client, name) for client, name in zip(clients, ("ada", "bob"))]
    answers = []
    threads = [threading.Thread(target=lambda c=c, t=t, p=p: answers.append(submit(c, t, p)))
               for c, t, p in zip(clients, tokens, ("1605.08386", "2104.12255"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(arxiv.times) == 2 and abs(arxiv.times[1] - arxiv.times[0]) >= 0.95
    assert sorted(a.status_code for a in answers) == [303, 404]  # the replay knows one of the papers
    arxiv.shutdown()


def test_submissions_are_throttled_per_user(site):
    token = sign_up(site)
    for _ in range(5):
        assert submit(site, token, "not-an-id").status_code == 400  # not an arXiv id, but counted
    response = submit(site, token, "not-an-id")
    assert response.status_code == 429 and "Too many requests; try again in" in response.text


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    from dailypapers.search.embedder import load_embedder

    return load_embedder(cache_dir=tmp_path_factory.mktemp("models"))


def test_a_submitted_paper_is_embedded_by_the_jobs_and_found_by_meaning(engine, db_url, tmp_path, feed, embedder):
    arxiv = Arxiv(feed)
    with TestClient(make_app(engine, db_url, tmp_path, arxiv.url, embedder=embedder),
                    follow_redirects=False) as client:
        token = sign_up(client)
        assert submit(client, token).status_code == 303
        if jobs.uses_queue(engine):  # the embedding job's work (a worker's; tests/test_jobs.py runs real ones)
            jobs.work.embed_new(engine, client.app.state.settings, embedder=embedder)
        else:  # the app's jobs thread, woken by the submission
            wait = time.monotonic() + 60
            while not jobs.work.embedded(engine):
                assert time.monotonic() < wait, "the submission was not embedded"
                time.sleep(0.05)
        with engine.connect() as conn:
            assert conn.execute(select(embeddings.c.model).join(papers, papers.c.pk == embeddings.c.paper_pk)
                                .where(papers.c.id == "1605.08386")).scalar_one() == embedder.name
        found = client.get("/api/papers/search", params={"q": "random walks on lattice points of polytopes"})
        assert "1605.08386" in [item["paper"]["id"] for item in found.json()]
    arxiv.shutdown()


def test_a_worker_fetches_only_a_few_submissions_at_once(site):
    token = sign_up(site)
    held = [actions._submitting.acquire(blocking=False) for _ in range(actions.SUBMITS_AT_ONCE)]
    try:
        assert all(held)
        response = submit(site, token)
        assert response.status_code == 503
        assert "Other submissions are being fetched from arXiv right now; try again in a minute." in response.text
    finally:
        for _ in held:
            actions._submitting.release()


def test_a_submission_gives_up_rather_than_queue_long_for_arxiv(engine, db_url, tmp_path, feed):
    from dailypapers import throttle

    arxiv = Arxiv(feed)
    with TestClient(make_app(engine, db_url, tmp_path, arxiv.url, delay=4.0), follow_redirects=False) as client:
        token = sign_up(client)
        for _ in range(2):  # two requests of other workers ahead: the third turn is 8 s away
            throttle.wait_turn(engine, "arxiv", 4.0)
        started = time.monotonic()
        response = submit(client, token)
        assert time.monotonic() - started < 1.0 and arxiv.times == []
        assert response.status_code == 503 and "arXiv is busy with other requests from this site" in response.text
    arxiv.shutdown()
