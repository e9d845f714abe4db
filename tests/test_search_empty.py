"""Honest result counts (issue 16 §2): nothing found says so, on the site, the API and the CLI alike."""

import json
import os
import re
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select

from dailypapers import accounts
from dailypapers.config import get_settings
from dailypapers.ingest import ingest
from dailypapers.search.embedder import load_embedder
from dailypapers.search.hybrid import BLANK_QUERY, SIMILARITY_FLOOR, search
from dailypapers.search.vectors import embed_backlog
from dailypapers.sources.hf_daily import parse_hf_json
from dailypapers.store.schema import papers
from dailypapers.web.app import create_app

BIN = Path(sys.executable).with_name("dailypapers")
NOT_STORED = "2104.12255"


@pytest.fixture(autouse=True)
def quick_hashing(monkeypatch):
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture(scope="session")
def embedder(tmp_path_factory):
    return load_embedder(cache_dir=tmp_path_factory.mktemp("models"))


@pytest.fixture
def sample(engine):
    ingest(engine, parse_hf_json(files("dailypapers.sample").joinpath("papers.json").read_bytes()))
    return engine


def client_for(db_url, tmp_path, embedder=None):
    settings = get_settings(database_url=db_url, data_dir=tmp_path, base_url="http://testserver",
                            embedding_runtime="off")
    return TestClient(create_app(settings, embedder=embedder), raise_server_exceptions=False)


def cards(html: str) -> int:
    return html.count('class="card"')


def cli(args, db_url, tmp_path):
    # A data dir of its own: PostgreSQL's full-text index is per machine, and this process's is held open.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAILYPAPERS_")} | {
        "DAILYPAPERS_DATA_DIR": str(tmp_path / "cli"), "DAILYPAPERS_DATABASE_URL": db_url,
        "DAILYPAPERS_EMBEDDING_RUNTIME": "off"}
    return subprocess.run([str(BIN), "search", *args], capture_output=True, text=True, env=env, timeout=300)


def test_nonsense_matches_nothing_and_shows_the_nearest_apart(sample, db_url, tmp_path, embedder):
    assert embed_backlog(sample, embedder) == 98
    page = search(sample, "xyzzyqq", embedder=embedder)
    assert page.hits == [] and page.total == 0 and not page.more
    assert 0 < len(page.nearest) <= 3 and all(h.dense_score < SIMILARITY_FLOOR for h in page.nearest)
    with client_for(db_url, tmp_path, embedder) as client:
        html = client.get("/search", params={"q": "xyzzyqq"}).text
    assert "No papers match <q>xyzzyqq</q>." in html and "Try fewer words." in html
    assert "Check the spelling." in html and "98 results" not in html and '<p class="count">' not in html
    nearest = html.split("Nearest by meaning (not matches)</h2>", 1)[1]
    assert cards(html) == cards(nearest) == len(page.nearest)


def test_a_real_query_counts_the_papers_that_match(sample, db_url, tmp_path, embedder):
    assert embed_backlog(sample, embedder) == 98
    page = search(sample, "glaucoma detection", embedder=embedder, limit=100)
    assert 0 < page.total < 98 and page.total == len(page.hits)
    assert all(h.text_score > 0 or h.dense_score >= SIMILARITY_FLOOR for h in page.hits)
    assert page.hits[0].paper["title"].startswith("Harvard Glaucoma Detection")


def test_text_only_counts_equal_the_papers_with_the_word(sample, db_url, tmp_path):
    with sample.connect() as conn:
        rows = conn.execute(select(papers.c.title, papers.c.summary)).all()
    expected = sum("glaucoma" in f"{t} {s}".lower() for t, s in rows)
    assert 0 < expected < 98
    with client_for(db_url, tmp_path) as client:
        html = client.get("/search", params={"q": "glaucoma"}).text
        assert f"{expected} paper{'s' if expected > 1 else ''} match" in html and cards(html) == expected
        empty = client.get("/search", params={"q": "xyzzyqq"}).text
        assert "No papers match" in empty and cards(empty) == 0
        assert client.get("/api/papers/search", params={"q": "xyzzyqq"}).json() == []
    out = cli(["xyzzyqq"], db_url, tmp_path)
    assert out.returncode == 0 and out.stdout == ""
    assert "No papers match. Try fewer words, or check the spelling." in out.stderr
    counted = cli(["glaucoma", "--json"], db_url, tmp_path)
    assert json.loads(counted.stdout)["total"] == expected


def test_an_arxiv_id_that_is_not_stored_says_so_and_offers_to_add_it(sample, db_url, tmp_path):
    page = search(sample, f"https://arxiv.org/abs/{NOT_STORED}v2")
    assert page.missing_id == NOT_STORED and page.hits == [] and page.total == 0
    with client_for(db_url, tmp_path) as client:
        html = client.get("/search", params={"q": NOT_STORED}).text
        assert f"arXiv:{NOT_STORED} is not on this site yet." in html and cards(html) == 0
        assert 'href="/login?next=/submit">Sign in</a> to add it' in html
        token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/signup").text).group(1)
        client.post("/signup", data={"email": "ada@example.org", "username": "ada", "password": "correct horse",
                                     "csrf_token": token})
        signed_in = client.get("/search", params={"q": NOT_STORED}).text
        form = signed_in.split('<form action="/submit" method="post">', 1)[1].split("</form>", 1)[0]
        assert f'name="paper" value="{NOT_STORED}"' in form and 'name="csrf_token"' in form
        assert f"Add arXiv:{NOT_STORED}" in form
        assert client.get("/api/papers/search", params={"q": NOT_STORED}).json() == []
    out = cli([NOT_STORED], db_url, tmp_path)
    assert out.returncode == 0 and out.stdout == ""
    assert f"arXiv:{NOT_STORED} is not stored here. Add it with: dailypapers ingest arxiv {NOT_STORED}" in out.stderr
    assert json.loads(cli([NOT_STORED, "--json"], db_url, tmp_path).stdout)["missing_id"] == NOT_STORED


@pytest.mark.parametrize("q", ["", "   ", "-survey", "?!"])
def test_blank_queries_get_the_same_answer_everywhere(sample, db_url, tmp_path, q):
    assert search(sample, q).blank and search(sample, q).hits == []
    with client_for(db_url, tmp_path) as client:
        html = client.get("/search", params={"q": q})
        assert html.status_code == 200 and BLANK_QUERY in html.text and cards(html.text) == 0
        api = client.get("/api/papers/search", params={"q": q})
        assert api.status_code == 400 and api.json()["error"] == f"q: {BLANK_QUERY}"
        assert BLANK_QUERY not in client.get("/search").text  # the empty form, before anything is asked
        browse = client.get("/search", params={"q": q, "org": "facebook"}).text  # filters alone browse
        assert BLANK_QUERY not in browse and cards(browse) > 0
    out = cli(["--", q], db_url, tmp_path)
    assert out.returncode == 2 and out.stdout == "" and out.stderr == f"error: {BLANK_QUERY}\n"
