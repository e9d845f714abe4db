"""Query understanding (issue 16 §5): an author's name typed without ``author:``, a category code typed
bare, and "quoted phrases" — known items of the sample corpus, on both databases, through the core
search, the site, the API and the CLI."""

import json
import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dailypapers.config import get_settings
from dailypapers.ingest import ingest
from dailypapers.search.embedder import load_embedder
from dailypapers.search.filters import Filters
from dailypapers.search.hybrid import gather, search
from dailypapers.search.query import parse_query
from dailypapers.search.vectors import embed_backlog
from dailypapers.sources.hf_daily import parse_hf_json
from dailypapers.web.app import create_app

BIN = Path(sys.executable).with_name("dailypapers")
# The sample corpus's papers by Sergey Levine (6) and by Chelsea Finn (4).
LEVINE = {"2410.13816", "2402.15567", "2406.09246", "2307.00117", "2506.18123", "1910.10897"}
FINN = {"2406.09246", "1910.10897", "2311.01977", "2506.18123"}
ROBOTICS = {"2507.10087", "2504.02792", "2310.08581", "2503.19757", "2501.15830", "2502.19250", "2510.08547",
            "2410.02477", "2111.00765", "2412.00171", "2508.06426", "2409.05865", "2510.01068", "2506.18123"}  # cs.RO


@pytest.fixture(scope="session")
def embedder(tmp_path_factory):
    return load_embedder(cache_dir=tmp_path_factory.mktemp("models"))


@pytest.fixture
def corpus(engine, embedder):
    ingest(engine, parse_hf_json(files("dailypapers.sample").joinpath("papers.json").read_bytes()))
    assert embed_backlog(engine, embedder) == 98
    return engine


def ids(page):
    return [h.paper["id"] for h in page.hits]


def names(hit):
    return {a["name"] for a in hit.paper["authors"]}


# --- category codes typed bare --------------------------------------------------------------------


def test_a_real_category_typed_bare_is_a_category_filter():
    assert parse_query("cs.RO robots").categories == ("cs.RO",)
    assert parse_query("cs.RO robots").terms == ("robots",)
    assert parse_query("cs.ro, robots").categories == ("cs.RO",)  # arXiv's spelling; punctuation aside
    assert parse_query("hep-th q-fin.PM cond-mat.str-el").categories == ("hep-th", "q-fin.PM", "cond-mat.str-el")
    # Words stay words: archives without a dot or a dash, hyphenated words, "e.g.", a made-up code.
    for raw in ("math physics", "cs robots", "self-supervised", "e.g. robots", "cs.XY robots", "state-of-the-art"):
        assert parse_query(raw).categories == (), raw
    # The embedding reads the query without its categories (they are filters, not meaning).
    assert parse_query("cs.RO robot arms").meaning == parse_query("cat:cs.RO robot arms").meaning == "robot arms"
    assert parse_query("what is it ?").meaning == "what is it ?"
    # Quoted or excluded, a code is text as typed.
    assert parse_query('"cs.RO" robots').phrases == ("cs ro",) and parse_query('"cs.RO"').categories == ()
    assert parse_query("-cs.RO robots").excluded == ("cs ro",) and parse_query("-cs.RO").categories == ()


def test_a_bare_category_filters_like_cat(corpus, embedder):
    bare = search(corpus, "cs.RO manipulation", embedder=embedder, limit=50)
    assert bare.filters.categories == ("cs.RO",)
    assert bare.hits and set(ids(bare)) <= ROBOTICS
    assert ids(bare) == ids(search(corpus, "cat:cs.RO manipulation", embedder=embedder, limit=50))
    unfiltered = search(corpus, "manipulation", embedder=embedder, limit=50)
    assert len(unfiltered.hits) > len(bare.hits)
    # The paper about bimanual dexterous manipulation (cs.RO) is found either way.
    assert "2410.02477" in ids(bare)[:3]


# --- authors typed without author: --------------------------------------------------------------


def test_an_authors_name_puts_their_papers_first(corpus, embedder):
    page = search(corpus, "sergey levine", embedder=embedder)
    assert page.authors == ("Sergey Levine",)
    assert set(ids(page)[:6]) == LEVINE
    # Case and the other words do not matter; the rest of the results follow (a name is no filter).
    robots = search(corpus, "Robots SERGEY LEVINE", embedder=embedder, limit=30)
    assert set(ids(robots)[:6]) == LEVINE and robots.authors == ("Sergey Levine",)
    after = robots.hits[6:]
    assert after and all("Sergey Levine" not in names(h) for h in after)
    assert robots.total > 6
    finn = search(corpus, "chelsea finn", embedder=embedder)
    assert set(ids(finn)[:4]) == FINN and finn.authors == ("Chelsea Finn",)
    both = search(corpus, "chelsea finn sergey levine", embedder=embedder)
    assert set(ids(both)[:7]) == LEVINE | FINN  # 7 papers: three have both and set(both.authors) == {"Chelsea Finn", "Sergey Levine"}


def test_without_an_embedder_and_under_filters_too(corpus):
    assert set(ids(search(corpus, "sergey levine"))[:6]) == LEVINE  # text side alone
    in_ro = search(corpus, "sergey levine", filters=Filters(categories=("cs.RO",)))
    assert ids(in_ro)[0] == "2506.18123" and all("cs.RO" in h.paper["categories"].split() for h in in_ro.hits)
    assert ids(search(corpus, "cs.RO sergey levine"))[0] == "2506.18123"


def test_what_is_not_a_name_changes_nothing(corpus, embedder):
    # Two authors' words side by side ("..., Sergey Levine, Chelsea ..." is not one name), a surname
    # alone (the text side weighs it in the author field already), a topic that is nobody's name.
    for raw in ("levine chelsea", "levine", "policy generalization"):
        assert search(corpus, raw, embedder=embedder).authors == (), raw
        assert gather(corpus, parse_query(raw), Filters(), embedder, "hybrid", 300).author == set(), raw
    # author: still requires the name.
    required = search(corpus, "author:levine robots", embedder=embedder, limit=50)
    assert required.hits and all("Sergey Levine" in names(h) for h in required.hits)


# --- quoted phrases -------------------------------------------------------------------------------


def test_quoted_phrases_find_the_paper_that_has_them(corpus, embedder):
    assert ids(search(corpus, '"hilbert representations"', embedder=embedder)) == ["2402.15567"]
    assert ids(search(corpus, '"representations hilbert"', embedder=embedder)) == []  # in order, adjacent
    rewards = search(corpus, '"reward model"', embedder=embedder, limit=50)
    assert rewards.hits and ids(rewards)[0] == "2507.05197"  # "...are General Reward Models"
    for hit in rewards.hits:
        assert "reward model" in f"{hit.paper['title']} {hit.paper['summary']}".lower().replace("-", " ")
    # A phrase and an author's name together: the name's papers first among those with the phrase.
    combined = search(corpus, '"foundation policies" sergey levine', embedder=embedder)
    assert ids(combined)[0] == "2402.15567"


# --- the faces ------------------------------------------------------------------------------------


def test_the_site_and_the_api_say_what_they_understood(corpus, db_url, tmp_path, embedder):
    settings = get_settings(database_url=db_url, data_dir=tmp_path, base_url="http://testserver",
                            embedding_runtime="off")
    with TestClient(create_app(settings, embedder=embedder)) as client:
        html = client.get("/search", params={"q": "sergey levine"}).text
        assert 'Papers by <a href="/authors/Sergey%20Levine">Sergey Levine</a> first.' in html
        cards = html.split('class="card"')[1:]
        assert len(cards) >= 6 and all(f"/papers/{i}" in "".join(cards[:6]) for i in LEVINE)
        robotics = client.get("/search", params={"q": "cs.RO manipulation"}).text
        assert "Category from the query: cs.RO." in robotics and "2410.02477" in robotics
        assert "Category from the query" not in client.get("/search", params={"q": "manipulation"}).text
        api = client.get("/api/papers/search", params={"q": "chelsea finn", "limit": 4})
        assert api.status_code == 200 and {p["paper"]["id"] for p in api.json()} == FINN


def test_the_cli_ranks_the_same(corpus, db_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAILYPAPERS_")} | {
        "DAILYPAPERS_DATA_DIR": str(tmp_path / "cli"), "DAILYPAPERS_DATABASE_URL": db_url,
        "DAILYPAPERS_EMBEDDING_RUNTIME": "off"}
    out = subprocess.run([str(BIN), "search", "chelsea finn", "--json", "--limit", "4"], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert {r["id"] for r in json.loads(out.stdout)["results"]} == FINN
    robotics = subprocess.run([str(BIN), "search", "cs.RO manipulation", "--json"], capture_output=True,
                              text=True, env=env, timeout=300)
    found = {r["id"] for r in json.loads(robotics.stdout)["results"]}
    assert "2410.02477" in found and found <= ROBOTICS


# --- a pasted abstract ----------------------------------------------------------------------------


def test_a_pasted_abstract_is_searched_by_its_most_telling_words(corpus):
    from dailypapers.search.fulltext import open_fulltext
    from dailypapers.search.fulltext_search import MAX_QUERY_TERMS, STOP_WORDS, _weighted_tokens
    from dailypapers.search.query import _words
    from dailypapers.store.queries import paper

    abstract = paper(corpus, "2402.15567")["summary"]
    query = parse_query(abstract)
    counts = dict(query.counts)
    assert sum(counts.values()) == len(_words(query.raw)) and counts["unsupervised"] == 4  # every word, counted
    with corpus.connect() as conn:
        index = open_fulltext(conn)
        weighted = dict(_weighted_tokens(index, query))
    assert len(weighted) == MAX_QUERY_TERMS < len({w for w in counts if w not in STOP_WORDS})
    assert weighted[index.tokens("unsupervised")[0]] == 4.0  # weighed by its count
    assert not {t for w in STOP_WORDS for t in index.tokens(w)} & set(weighted)
    assert ids(search(corpus, abstract, mode="text"))[0] == "2402.15567"  # the paper itself, by its words
