"""The one search function on the sample corpus with the real model, on both databases, and its CLI."""

import json
import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest

from dailypapers.ingest import ingest
from dailypapers.search.embedder import load_embedder
from dailypapers.search.filters import Filters
from dailypapers.search.hybrid import search
from dailypapers.search.vectors import embed_backlog
from dailypapers.sources.hf_daily import parse_hf_json

QUERIES = Path(__file__).resolve().parents[1] / "bench" / "sample_queries.tsv"
SEED_TOP = ["2506.10326", "2507.10087", "2505.08617", "2308.11339", "2503.13356"]


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


def test_policy_generalization_finds_the_papers_about_it_first(corpus, embedder):
    top = ids(search(corpus, "policy generalization", embedder=embedder, limit=5))
    assert len(set(top) & set(SEED_TOP)) >= 4 and top[0] in SEED_TOP, top


def rows(kind):
    return [line.split("\t") for line in QUERIES.read_text().splitlines() if line.startswith(kind + "\t")]


def test_fusion_keeps_what_dense_search_finds_confidently(corpus, embedder):
    """Paraphrases sharing (almost) no words with their paper. Where dense search puts the paper first
    with a clear margin, hybrid keeps it in its top 3; over all paraphrases hybrid finds at least as many
    in its top 3 as dense search (less one, on PostgreSQL's ranking), and more than plain reciprocal rank
    fusion."""
    found = {"dense": 0, "hybrid": 0, "rrf": 0}
    confident = 0
    for _, query, expected in rows("paraphrase"):
        for mode in found:
            found[mode] += expected in ids(search(corpus, query, embedder=embedder, mode=mode, limit=3))
        dense = search(corpus, query, embedder=embedder, mode="dense", limit=2).hits
        if dense[0].paper["id"] == expected and dense[0].dense_score - dense[1].dense_score >= 0.02:
            confident += 1
            assert expected in ids(search(corpus, query, embedder=embedder, limit=3)), query
    assert confident >= 5
    assert found["hybrid"] >= found["dense"] - 1 and found["hybrid"] > found["rrf"], found


def test_exact_titles_names_and_phrases_still_win(corpus, embedder):
    misses = [query for _, query, expected in rows("exact")
              if ids(search(corpus, query, embedder=embedder, limit=3))[:3].count(expected) == 0]
    assert misses == []


def test_filters_sorts_and_paging(corpus, embedder):
    assert ids(search(corpus, "agents", embedder=embedder, filters=Filters(organization="facebook"))) == \
        ["2510.08558"]
    newest = search(corpus, "robot manipulation", embedder=embedder, sort="newest", limit=10).hits
    dates = [h.paper["published_at"] for h in newest if h.paper["published_at"]]
    assert dates == sorted(dates, reverse=True)
    voted = [h.paper["upvotes"] for h in search(corpus, "robot", embedder=embedder, sort="upvotes", limit=10).hits]
    assert voted == sorted(voted, reverse=True)
    first = ids(search(corpus, "reinforcement learning", embedder=embedder, limit=5))
    second = ids(search(corpus, "reinforcement learning", embedder=embedder, limit=5, offset=5))
    assert len(first) == len(second) == 5 and not set(first) & set(second)
    assert all(h.paper["github_repo"] for h in search(corpus, "robot", embedder=embedder,
                                                       filters=Filters(has_code=True)).hits)
    # Results go 1,000 deep at most: further would make each side gather that many candidates.
    assert len(search(corpus, "robot", embedder=embedder, limit=10, offset=990).hits) == 0
    with pytest.raises(ValueError, match="results go no deeper than 1,000"):
        search(corpus, "robot", embedder=embedder, limit=10, offset=991)


def test_required_words_limit_dense_candidates(corpus, embedder):
    page = search(corpus, 'learning -reinforcement "imitation learning"', embedder=embedder, limit=50)
    assert page.hits and all("imitation" in (h.paper["title"] + h.paper["summary"]).lower() for h in page.hits)


def test_cli_search_prints_what_the_seed_page_shows(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAILYPAPERS_")} | {
        "DAILYPAPERS_DATA_DIR": str(tmp_path)}
    cli = Path(sys.executable).with_name("dailypapers")
    subprocess.run([cli, "ingest", "sample"], env=env, check=True, capture_output=True, timeout=600)
    out = subprocess.run([cli, "search", "policy generalization", "--limit", "3"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Competitive Pokémon" in out.stdout and "Cameron Angliss, Jiaxun Cui, Jiaheng Hu et al. · Jun 12, 2025 · ▲ 0 · 2506.10326" in out.stdout
    as_json = json.loads(subprocess.run([cli, "search", "glaucoma", "--json", "--limit", "2"], env=env,
                                        capture_output=True, text=True, timeout=300).stdout)
    assert as_json["results"][0]["title"].startswith("Harvard Glaucoma Detection")
    assert {"id", "title", "score", "numAuthors", "organization", "publishedAt", "upvotes"} <= set(
        as_json["results"][0])
    batch = tmp_path / "q.tsv"
    batch.write_text("q1\tglaucoma\nq2\tbasketball skills\n")
    lines = subprocess.run([cli, "search", "--queries", str(batch), "--limit", "1", "--json"], env=env,
                           capture_output=True, text=True, timeout=300).stdout.splitlines()
    assert [json.loads(line)["query_id"] for line in lines] == ["q1", "q2"]
    assert json.loads(lines[1])["results"][0]["title"].startswith("SkillMimic")
