"""The MCP server as an assistant reaches it: the `mcp` SDK's own client, over stdio (`dailypapers mcp`,
a real process) and over streamable HTTP (/mcp on the site under uvicorn). Both databases."""

import asyncio
from concurrent.futures import ThreadPoolExecutor
import json
import os
import re
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from argon2 import PasswordHasher
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from dailypapers import accounts
from dailypapers.collections import saved as saved_list
from dailypapers.config import get_settings
from dailypapers.domain import Author, Organization, Paper, User
from dailypapers.ingest import ingest
from dailypapers.search.vectors import embed_backlog
from dailypapers.store import queries
from dailypapers.store.schema import EMBEDDING_DIM
from dailypapers.web.app import create_app
from live import serving

BIN = Path(sys.executable).with_name("dailypapers")
SRC = Path(__file__).resolve().parents[1] / "src"
DAY = datetime(2025, 10, 9)
TOOLS = {"search_papers", "get_paper", "daily_papers", "similar_papers", "my_saved_papers", "upvote_paper"}



def run(coroutine):  # noqa: ANN001, ANN201
    """asyncio.run in a thread of its own: the browser tests' Playwright keeps an event loop running in
    the main thread for the whole session."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()

def _paper(n: int, **kw) -> Paper:
    return Paper(id=f"2510.{n:05d}", title=f"Robot learning, part {n}", summary=f"We study robots, part {n}.",
                 authors=[Author("Ada Lovelace"), Author("Alan Turing")], categories=["cs.RO"],
                 published_at=datetime(2025, 10, 8, n), submitted_on_daily_at=DAY, upvotes=10 - n, **kw)


PAPERS = [_paper(1, github_repo="https://github.com/ada/robots", organization=Organization("ada-lab", "Ada's Lab"),
                 submitted_on_daily_by=User("bob", "Bob B.")),
          *[_paper(n) for n in range(2, 6)],
          Paper(id="2510.00099", title="Older", summary="From last week.", categories=["cs.CL"],
                published_at=datetime(2025, 9, 30), submitted_on_daily_at=datetime(2025, 10, 1), upvotes=50)]


class PartEmbedder:
    """Papers "part n" lie on an arc, n apart: the nearest to part 3 are parts 4 and 2."""

    name, dim = "test-parts", EMBEDDING_DIM

    def embed(self, texts, batch_size: int = 32) -> np.ndarray:  # noqa: ANN001
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in zip(out, texts):
            n = int(re.search(r"part (\d+)", text).group(1))
            row[0], row[1] = np.cos(n / 10), np.sin(n / 10)
        return out


@pytest.fixture
def library(engine, db_url, tmp_path, monkeypatch):
    """Papers with embeddings (but the older one), and Ada with an API token and one saved paper."""
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    assert ingest(engine, [(str(i), p) for i, p in enumerate(PAPERS)]).inserted == len(PAPERS)
    parts = [queries.paper(engine, f"2510.{n:05d}")["pk"] for n in range(1, 6)]
    assert embed_backlog(engine, PartEmbedder(), only=parts) == 5
    ada = accounts.sign_up(engine, "ada@example.org", "correct horse", "ada")
    saved_list.toggle_saved(engine, ada, "2510.00004")
    return {"db_url": db_url, "data_dir": tmp_path, "token": accounts.create_api_token(engine, ada)}


def text(result) -> str:  # noqa: ANN001
    return " ".join(part.text for part in result.content)


async def call(client: Client, tool: str, **arguments) -> dict:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text(result)
    return json.loads(text(result))


async def refused(client: Client, tool: str, **arguments) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, text(result)
    return text(result)


async def exercise(connect, site: str, token: str) -> None:  # noqa: ANN001
    """Every tool through the client ``connect(token)`` opens: answers, links, and refusals."""
    async with connect(None) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS

        found = await call(client, "search_papers", query="robots part 3", limit=5)
        assert found["papers"][0]["id"] == "2510.00003"
        first = found["papers"][0]
        assert first["authors"] == ["Ada Lovelace", "Alan Turing"] and first["url"] == f"{site}/papers/2510.00003"
        assert first["pdf"] == "https://arxiv.org/pdf/2510.00003"
        by_org = await call(client, "search_papers", query="robots", organization="ada-lab")
        assert [p["id"] for p in by_org["papers"]] == ["2510.00001"]
        with_code = await call(client, "search_papers", has_code=True)
        assert [p["id"] for p in with_code["papers"]] == ["2510.00001"]
        in_cl = await call(client, "search_papers", categories=["cs.CL"], sort="newest")
        assert [p["id"] for p in in_cl["papers"]] == ["2510.00099"]
        recent = await call(client, "search_papers", categories=["cs"], since="2025-10-01", limit=50)
        assert recent["total"] == 5 and "2510.00099" not in [p["id"] for p in recent["papers"]]
        assert "since: '2025-13-40' is not a real date" in await refused(
            client, "search_papers", query="robots", since="2025-13-40")
        assert "limit" in await refused(client, "search_papers", query="robots", limit=51)
        assert "Give a query, or at least one filter" in await refused(client, "search_papers")
        assert "categories" in await refused(client, "search_papers", categories=["cs"] * 21)
        assert "sort" in await refused(client, "search_papers", query="robots", sort="best")

        paper = await call(client, "get_paper", paper_id="2510.00001")
        assert paper["title"] == "Robot learning, part 1" and paper["summary"] == "We study robots, part 1."
        assert [a["name"] for a in paper["authors"]] == ["Ada Lovelace", "Alan Turing"]
        assert paper["githubRepo"] == "https://github.com/ada/robots" and paper["organization"]["name"] == "ada-lab"
        assert paper["links"]["url"] == f"{site}/papers/2510.00001"
        assert paper["links"]["arxiv"] == "https://arxiv.org/abs/2510.00001"
        assert "no paper '2104.99999'" in await refused(client, "get_paper", paper_id="2104.99999")
        assert "paper_id" in await refused(client, "get_paper", paper_id="")

        latest = await call(client, "daily_papers")
        assert latest["date"] == "2025-10-09" and latest["total"] == 5
        assert latest["papers"][0]["id"] == "2510.00001"  # trending: the most upvoted first
        assert latest["previousDay"] == "2025-10-01" and latest["nextDay"] is None
        assert latest["url"] == f"{site}/papers/date/2025-10-09"
        published = await call(client, "daily_papers", date="2025-10-09", sort="published", limit=2)
        assert [p["id"] for p in published["papers"]] == ["2510.00005", "2510.00004"]
        assert [p["id"] for p in (await call(client, "daily_papers", date="2025-10-01"))["papers"]] == ["2510.00099"]
        assert "date: '9 Oct' is not a date like 2025-10-10" in await refused(client, "daily_papers", date="9 Oct")

        similar = await call(client, "similar_papers", paper_id="2510.00003", limit=2)
        assert {p["id"] for p in similar["papers"]} == {"2510.00002", "2510.00004"}
        more = await call(client, "similar_papers", paper_id="2510.00003")  # 5 asked: the 4 others embedded
        assert [p["id"] for p in more["papers"]][:2] == [p["id"] for p in similar["papers"]]
        assert len(more["papers"]) == 4
        alone = await call(client, "similar_papers", paper_id="2510.00099")
        assert alone["papers"] == [] and "no embedding" in alone["note"]
        assert "limit" in await refused(client, "similar_papers", paper_id="2510.00003", limit=0)

        assert f"make one at {site}/account" in await refused(client, "my_saved_papers")
        assert "needs your personal API token" in await refused(client, "upvote_paper", paper_id="2510.00002")

    async with connect(token) as client:
        saved = await call(client, "my_saved_papers")
        assert saved["user"] == "ada" and [p["id"] for p in saved["papers"]] == ["2510.00004"]
        voted = await call(client, "upvote_paper", paper_id="2510.00002")
        assert voted == {"paper": "2510.00002", "voted": True, "upvotes": 9, "url": f"{site}/papers/2510.00002"}
        assert (await call(client, "upvote_paper", paper_id="2510.00002"))["upvotes"] == 9  # one vote a reader
        assert (await call(client, "get_paper", paper_id="2510.00002"))["upvotes"] == 9
        undone = await call(client, "upvote_paper", paper_id="2510.00002", undo=True)
        assert undone["voted"] is False and undone["upvotes"] == 8
        assert "no paper" in await refused(client, "upvote_paper", paper_id="2104.99999")



def _environment(library: dict, **extra: str) -> dict[str, str]:
    return {"PYTHONPATH": str(SRC), "DAILYPAPERS_DATABASE_URL": library["db_url"],
            "DAILYPAPERS_DATA_DIR": str(library["data_dir"]), "DAILYPAPERS_EMBEDDING_RUNTIME": "off",
            "DAILYPAPERS_MAIL_SCHEDULE": "off"} | extra


def test_stdio(library):
    """`dailypapers mcp` as an assistant starts it: the token comes from the environment."""

    def connect(token: str | None) -> Client:
        extra = {"DAILYPAPERS_API_TOKEN": token} if token else {}
        return Client(StdioServerParameters(command=str(BIN), args=["mcp"], env=_environment(library, **extra)))

    run(exercise(connect, "http://127.0.0.1:8000", library["token"]))


def test_stdio_refuses_a_wrong_token_at_once(library):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DAILYPAPERS_")} | _environment(library)
    result = subprocess.run([str(BIN), "mcp", "--token", "not-a-token"], capture_output=True, text=True,
                            env=environ, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == "error: that API token is not valid (revoked or mistyped); make a new one at /account\n"


@pytest.fixture
def live(library):
    """The site under uvicorn on 127.0.0.1; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = get_settings(database_url=library["db_url"], data_dir=library["data_dir"], embedding_runtime="off",
                            mail_schedule="off", allowed_hosts="127.0.0.1,papers.test")
    with serving(create_app(settings, embedder=None), port) as url:
        yield url


def test_streamable_http(library, live):
    """/mcp on the site: the token comes from each request's Authorization header; links use its host."""

    def connect(token: str | None) -> Client:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        return Client(streamable_http_client(f"{live}/mcp", http_client=create_mcp_http_client(headers=headers)))

    run(exercise(connect, live, library["token"]))

    async def wrong_token() -> str:
        async with connect("not-a-token") as client:
            return await refused(client, "my_saved_papers")

    assert "That API token is not valid" in run(wrong_token())


def test_http_keeps_the_site_edge(live):
    """The site's Host and Origin checks apply to /mcp; a host the site answers to passes the SDK's own."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    port = live.rsplit(":", 1)[1]
    stranger = httpx.post(f"{live}/mcp", json=body, headers=headers | {"Host": "evil.example"})
    assert stranger.status_code == 400 and "host name" in stranger.json()["error"]
    cross = httpx.post(f"{live}/mcp", json=body, headers=headers | {"Origin": "https://evil.example"})
    assert cross.status_code == 403 and "Cross-site" in cross.json()["error"]
    for host in ("papers.test", f"papers.test:{port}", f"127.0.0.1:{port}"):  # the SDK lets them through
        answer = httpx.post(f"{live}/mcp", json=body, headers=headers | {"Host": host})
        assert answer.status_code == 200 and answer.json()["id"] == 1, (host, answer.text)


def test_mcp_runs_with_each_lifespan_of_the_app(db_url, tmp_path):
    """The SDK's session manager runs once: a fresh one each time the app starts (the tests start an app
    several times); without a lifespan (a bare test client) /mcp says it is not running."""
    from fastapi.testclient import TestClient

    app = create_app(get_settings(database_url=db_url, data_dir=tmp_path, base_url="http://testserver",
                                  embedding_runtime="off", mail_schedule="off"))
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream"}
    assert TestClient(app).post("/mcp", json=ping, headers=headers).status_code == 503
    for _ in range(2):
        with TestClient(app) as client:
            answer = client.post("/mcp", json=ping, headers=headers)
            assert answer.status_code == 200, answer.text
            assert answer.json()["id"] == 1
