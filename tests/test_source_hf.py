"""Hugging Face daily-papers JSON, from the recorded responses, and the bundled sample built from it."""

import json
from datetime import datetime
from importlib.resources import files

import pytest

from dailypapers.domain import Paper, RecordError, local_id
from dailypapers.sources.common import SourceError
from dailypapers.sources.hf_daily import parse_hf_json, read_hf_json


def papers_of(records):
    return [item for _, item in records if isinstance(item, Paper)]


def test_daily_papers_list(recorded):
    records = list(read_hf_json(recorded / "hf-daily-papers" / "daily_papers_limit-30_2026-06-13.json"))
    found = papers_of(records)
    assert len(found) == 30 and len(records) == 30
    first = found[0]
    assert first.id == "2606.00467"
    assert first.title.startswith("On the Limits of LLM Adaptability")
    assert [a.name for a in first.authors] == ["Etienne Casanova", "Rafal Kocielnik", "R. Michael Alvarez"]
    assert first.published_at == datetime(2026, 5, 30)
    assert first.submitted_on_daily_at == datetime(2026, 6, 12)
    assert first.submitted_on_daily_by.username == "RKocielnik"
    assert all(p.submitted_on_daily_at == datetime(2026, 6, 12) for p in found)
    raw = json.loads((recorded / "hf-daily-papers" / "daily_papers_limit-30_2026-06-13.json").read_text())
    assert sum(p.organization is not None for p in found) == sum("organization" in i for i in raw) == 16
    assert [p.upvotes for p in found] == [i["paper"]["upvotes"] for i in raw]
    assert sum(p.github_repo is not None for p in found) >= 16
    assert records[0][0] == "item 1 (2606.00467)"
    assert first.keywords[:2] == ["zero-shot annotation", "LLM-as-a-judge"] and len(first.keywords) == 14
    assert [p.keywords for p in found] == [i["paper"]["ai_keywords"] for i in raw]


def test_paper_objects(recorded):
    (where, p), = read_hf_json(recorded / "hf-daily-papers" / "paper_2608.09888_pretty-printed.json")
    assert where == "item 1 (2608.09888)" and p.id == "2608.09888"
    assert p.authors[0].name == "Björn Engdahl"
    (_, q), = read_hf_json(recorded / "hf-daily-papers" / "paper_2605.13301.json")
    assert q.id == "2605.13301" and q.title and q.summary


@pytest.mark.parametrize("raw, message", [
    (b"\xff\xfe not utf-8", "feed.json: is not UTF-8 text (byte 0xff at offset 0)"),
    (b'[{"paper": ', "feed.json: is not valid JSON: Expecting value at line 1 column 12"),
    (b'"a string"', "feed.json: expected a JSON array of daily papers or a paper object"),
])
def test_unreadable_files_fail_with_one_message(raw, message):
    with pytest.raises(SourceError) as err:
        list(parse_hf_json(raw, "feed.json"))
    assert str(err.value) == message


def test_bad_items_are_named_and_the_rest_come_through():
    items = [
        {"paper": {"id": "2501.00001", "title": "Good", "summary": "fine"}},
        {"paper": {"id": "2501.00002", "summary": "no title"}},
        {"paper": {"id": "2501.00003", "title": "T", "publishedAt": "yesterday"}},
        {"paper": {"id": "2501.00004", "title": "T", "upvotes": "many"}},
        ["not", "an", "object"],
        {"paper": {"id": "2501.00006", "title": "T", "authors": [{"nom": "x"}]}},
        {"paper": {"id": "2501.00007", "title": "Also good", "summary": "s", "categories": ["cs.RO", "cs.LG"]}},
        {"paper": {"id": "2501.00008", "title": "T", "categories": "cs.RO"}},
        {"paper": {"id": "2501.00009", "title": "T", "ai_keywords": "robots"}},
        {"paper": {"id": "2501.00010", "title": "T", "ai_keywords": ["robots", 3]}},
    ]
    records = list(parse_hf_json(json.dumps(items).encode()))
    errors = [(w, str(e)) for w, e in records if isinstance(e, RecordError)]
    assert errors == [
        ("item 2 (2501.00002)", "paper.title: is missing"),
        ("item 3 (2501.00003)", "paper.publishedAt: 'yesterday' is not a date"),
        ("item 4 (2501.00004)", "paper.upvotes: must be a whole number, got str"),
        ("item 5", "item: must be an object, got list"),
        ("item 6 (2501.00006)", "paper.authors[0].name: is missing"),
        ("item 8 (2501.00008)", "paper.categories: must be a list of strings"),
        ("item 9 (2501.00009)", "paper.ai_keywords: must be a list of strings"),
        ("item 10 (2501.00010)", "paper.ai_keywords: must be a list of strings"),
    ]
    assert [p.id for p in papers_of(records)] == ["2501.00001", "2501.00007"]
    assert papers_of(records)[1].categories == ["cs.RO", "cs.LG"]  # dailypapers' own extension, read back


def test_bundled_sample_is_the_seed_page_over_ten_feed_days(shared_data):
    records = list(parse_hf_json(files("dailypapers.sample").joinpath("papers.json").read_bytes(), "sample"))
    found = papers_of(records)
    seed = json.loads((shared_data / "seed" / "seed_papers.json").read_text())["papers"]
    assert len(found) == len(records) == len(seed) == 98
    assert [p.title for p in found] == [s["title"] for s in seed]
    assert [p.upvotes for p in found] == [s["upvotes"] for s in seed]
    # Joined with their arXiv metadata by rank: ids, names, categories and dates where arXiv showed them.
    arxiv = {a["rank"]: a for a in json.loads((shared_data / "seed" / "seed_papers_arxiv.json").read_text())["papers"]}
    assert [p.id for p in found] == [arxiv[s["rank"]].get("arxiv_id") or local_id(s["title"]) for s in seed]
    assert sum(p.is_arxiv for p in found) == 97 and len({p.id for p in found}) == 98
    for paper, s in zip(found, seed):
        known = arxiv[s["rank"]]
        if known.get("authors"):
            assert [a.name for a in paper.authors] == known["authors"]
        else:
            assert paper.authors == [] and paper.author_count == (s["authors_count"] or 0)
        if known.get("categories"):
            assert paper.categories == known["categories"]
    assert found[0].id == "2506.10326" and found[0].authors[0].name == "Cameron Angliss"
    assert found[0].published_at == datetime(2025, 6, 12)
    days = {p.submitted_on_daily_at for p in found}
    assert len(days) == 10 and max(days) == datetime(2025, 10, 10)
    assert all(p.published_at is None or p.published_at <= p.submitted_on_daily_at for p in found)
    assert found[0].github_repo == "https://github.com/cameronangliss/VGC-Bench"
    meta = [p for p in found if p.organization]
    assert [(p.organization.name, p.organization.fullname) for p in meta] == [("facebook", "AI at Meta")]
