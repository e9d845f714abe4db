"""The real Hugging Face client against a live dailypapers: `huggingface_hub.HfApi(endpoint=...)` and
every papers method it has, checking the fields it reads. Both databases."""

import socket
from datetime import datetime

import pytest
from argon2 import PasswordHasher
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from dailypapers import accounts, community
from dailypapers.config import get_settings
from dailypapers.domain import Author, Organization, Paper, User
from dailypapers.ingest import ingest
from dailypapers.web.app import create_app
from live import serving

DAY = datetime(2025, 10, 9)


def _paper(n: int, **kw) -> Paper:
    return Paper(id=f"2510.{n:05d}", title=f"Robot learning, part {n}", summary=f"We study robots, part {n}.",
                 authors=[Author("Ada Lovelace"), Author("Alan Turing")], categories=["cs.RO"],
                 published_at=datetime(2025, 10, 8, n), submitted_on_daily_at=DAY, upvotes=10 - n, **kw)


PAPERS = [_paper(1, github_repo="https://github.com/ada/robots", project_page="https://ada.example/robots",
                 organization=Organization("ada-lab", "Ada's Lab"), submitted_on_daily_by=User("bob", "Bob B.")),
          *[_paper(n) for n in range(2, 8)],
          Paper(id="2510.00099", title="Older", summary="From last week.", categories=["cs.RO"],
                published_at=datetime(2025, 9, 30), submitted_on_daily_at=datetime(2025, 10, 1), upvotes=50)]


@pytest.fixture
def hub(engine, db_url, tmp_path, monkeypatch):
    """HfApi pointed at the app under uvicorn on 127.0.0.1, with papers, a vote and a comment."""
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    assert ingest(engine, [(str(i), p) for i, p in enumerate(PAPERS)]).inserted == len(PAPERS)
    ada = accounts.sign_up(engine, "ada@example.org", "correct horse", "ada")
    community.toggle_upvote(engine, ada, "2510.00001")
    community.add_comment(engine, ada, "2510.00001", "Lovely robots.")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = get_settings(database_url=db_url, data_dir=tmp_path, base_url=f"http://127.0.0.1:{port}",
                            embedding_runtime="off", mail_schedule="off")
    with serving(create_app(settings, embedder=None), port) as url:
        yield HfApi(endpoint=url, token=False)


def test_list_daily_papers_with_each_parameter(hub):
    day = list(hub.list_daily_papers(date="2025-10-09"))  # the last published first
    assert [p.id for p in day] == [f"2510.{n:05d}" for n in range(7, 0, -1)]
    first = day[-1]
    assert [a.name for a in first.authors] == ["Ada Lovelace", "Alan Turing"]
    assert first.title == "Robot learning, part 1" and first.summary == "We study robots, part 1."
    assert first.upvotes == 10  # the source's 9 and Ada's vote
    assert first.comments == 1
    assert first.submitted_by.username == "bob" and first.submitted_by.fullname == "Bob B."
    assert first.organization.name == "ada-lab" and first.organization.fullname == "Ada's Lab"
    assert first.submitted_at is not None and first.published_at is not None
    trending = list(hub.list_daily_papers(date="2025-10-09", sort="trending"))
    assert [p.id for p in trending][0] == "2510.00001"  # the most upvoted of the day
    assert [p.id for p in hub.list_daily_papers(week="2025-W41")][:1] == ["2510.00007"]
    assert "2510.00099" in [p.id for p in hub.list_daily_papers(month="2025-10")]
    assert "2510.00099" not in [p.id for p in hub.list_daily_papers(week="2025-W41")]
    assert [p.id for p in hub.list_daily_papers(date="2025-10-09", limit=3, p=1)] == [
        "2510.00004", "2510.00003", "2510.00002"]
    assert [p.id for p in hub.list_daily_papers(date="2025-10-09", submitter="bob")] == ["2510.00001"]
    assert [p.id for p in hub.list_daily_papers()][:1] == ["2510.00007"]  # the latest day
    with pytest.raises(HfHubHTTPError) as refused:
        list(hub.list_daily_papers(date="2025-13-40"))
    assert refused.value.response.status_code == 400


def test_paper_info_read_paper_and_list_papers(hub):
    info = hub.paper_info("2510.00001")
    assert info.id == "2510.00001" and info.title == "Robot learning, part 1"
    assert [a.name for a in info.authors] == ["Ada Lovelace", "Alan Turing"]
    assert info.github_repo == "https://github.com/ada/robots"
    assert info.project_page == "https://ada.example/robots"
    assert info.upvotes == 10 and info.comments == 1
    assert info.submitted_by.username == "bob"
    with pytest.raises(HfHubHTTPError) as missing:
        hub.paper_info("2104.12255")
    assert missing.value.response.status_code == 404

    markdown = hub.read_paper("2510.00001")
    assert markdown.startswith("# Robot learning, part 1\n")
    assert "**Authors:** Ada Lovelace, Alan Turing" in markdown
    assert "[arXiv](https://arxiv.org/abs/2510.00001)" in markdown and "[PDF](https://arxiv.org/pdf/2510.00001)" in markdown
    assert "[Code](https://github.com/ada/robots)" in markdown
    assert markdown.rstrip().endswith("## Abstract\n\nWe study robots, part 1.")
    with pytest.raises(HfHubHTTPError):
        hub.read_paper("2104.12255")

    found = list(hub.list_papers(query="robots part 3", limit=5))
    assert found and found[0].id == "2510.00003"


def test_the_papers_listing_pages_with_a_cursor(hub):
    import httpx

    url, seen = f"{hub.endpoint}/api/papers?limit=3", []
    while url:
        response = httpx.get(url)
        assert response.status_code == 200
        seen += [p["id"] for p in response.json()]
        url = response.links.get("next", {}).get("url")
    assert sorted(seen) == sorted(p.id for p in PAPERS) and len(seen) == len(set(seen))
    bad = httpx.get(f"{hub.endpoint}/api/papers?cursor=abc")
    assert bad.status_code == 400 and bad.json() == {"error": "cursor: not one this site gave; start without it"}
