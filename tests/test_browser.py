"""The site in a real browser (Debian's Chromium driven by Playwright) against a live server.

A new user signs up, searches, opens a paper, upvotes, saves, comments and submits an arXiv id (served
by a local replay of a recorded arXiv API response); no page may log a console error. Screenshots of
the main pages at desktop and phone widths go to a temporary folder, or to docs/screenshots/ when
DAILYPAPERS_SCREENSHOTS=1 (`make screenshots`).
"""

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from playwright.sync_api import expect

from dailypapers import accounts
from dailypapers.config import get_settings
from dailypapers.ingest import ingest
from dailypapers.search.embedder import load_embedder
from dailypapers.search.vectors import embed_backlog
from dailypapers.sources.hf_daily import parse_hf_json
from dailypapers.store.db import migrate, open_engine
from dailypapers.web.app import create_app
from live import free_port, serving

CHROMIUM = "/usr/bin/chromium"
DOCS_SHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


@pytest.fixture(scope="session")
def browser_type_launch_args():
    return {"executable_path": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]}



@pytest.fixture(scope="module")
def arxiv_replay(recorded):
    """A local stand-in for the arXiv API: answers id_list=1605.08386 with the recorded response."""
    body = (recorded / "arxiv-api" / "query_id_list-1605.08386.xml").read_bytes()
    empty = (recorded / "arxiv-api" / "query_id_list-0000.0000_empty-result.xml").read_bytes()

    class Replay(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            payload = body if "1605.08386" in self.path else empty
            self.send_response(200)
            self.send_header("Content-Type", "application/atom+xml")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Replay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/query"
    server.shutdown()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, arxiv_replay):
    """The real app under uvicorn on 127.0.0.1, with the sample corpus and its embeddings."""
    data = tmp_path_factory.mktemp("site")
    settings = get_settings(data_dir=data, arxiv_api_url=arxiv_replay, base_url=None, mail_schedule="off")
    engine = open_engine(settings.db_url)
    migrate(engine)
    ingest(engine, parse_hf_json(files("dailypapers.sample").joinpath("papers.json").read_bytes()))
    embedder = load_embedder(cache_dir=data / "models")
    embed_backlog(engine, embedder)
    accounts._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    port = free_port()
    with serving(create_app(settings, embedder=embedder), port) as url:
        yield url


@pytest.fixture
def shots(tmp_path) -> Path:
    return DOCS_SHOTS if os.environ.get("DAILYPAPERS_SCREENSHOTS") == "1" else tmp_path


class ConsoleErrors(list):
    """Console errors and uncaught exceptions of every page. A deliberate bad request (a form sent
    back with a 400) makes Chromium log "Failed to load resource" for that page: ``expect_status``
    names such a URL, and only that exact message for it is let through."""

    def __init__(self):
        super().__init__()
        self.expected: set[str] = set()

    def expect_status(self, url_part: str) -> None:
        self.expected.add(url_part)

    def add(self, msg) -> None:  # noqa: ANN001
        url = (msg.location or {}).get("url", "")
        if "Failed to load resource: the server responded with a status of 400" in msg.text and any(
                part in url for part in self.expected):
            return
        self.append(f"{msg.type}: {msg.text} ({url})")


@pytest.fixture
def console_errors(page):
    errors = ConsoleErrors()
    page.on("console", lambda msg: errors.add(msg) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    return errors


@pytest.mark.parametrize("width, height, name", [(1280, 800, "desktop"), (390, 844, "phone")])
def test_main_pages_render_without_console_errors(page, live_server, console_errors, shots, width, height, name):
    page.set_viewport_size({"width": width, "height": height})
    console_errors.expect_status("/papers/date/2025-13-45")
    for path, shot in [("/", "daily"), ("/trending", "trending"), ("/papers/week/2025-W41", "week"),
                       ("/search?q=robot+manipulation&has_code=1", "search-filters"),
                       ("/papers/2510.08558", "paper"), ("/orgs/facebook", "organization"),
                       ("/signup", "signup"), ("/papers/date/2025-13-45", "error")]:
        response = page.goto(live_server + path)
        assert response.status in (200, 400), path
        page.screenshot(path=shots / f"{shot}-{name}.png", full_page=False)
        # Nothing wider than the screen: the layout holds at phone width.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
    assert console_errors == []


def test_a_new_user_signs_up_searches_votes_saves_comments_and_submits(page, live_server, console_errors, shots):
    page.goto(live_server + "/")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Daily Papers")

    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Email").fill("ada@example.org")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Create account").click()
    assert page.get_by_role("link", name="ada", exact=True).is_visible()

    page.get_by_label("Search papers").fill("policy generalization")
    page.get_by_label("Search papers").press("Enter")
    page.wait_for_url("**/search?q=policy+generalization")
    titles = page.locator(".card h2").all_inner_texts()
    assert any("Competitive Pokémon" in t for t in titles[:4]), titles[:5]
    page.screenshot(path=shots / "search-desktop.png", full_page=False)

    page.locator(".card h2 a", has_text="Competitive Pokémon").click()
    page.wait_for_url("**/papers/2506.10326")
    upvote = page.get_by_role("button", name="Upvote")
    before = int(upvote.locator(".count").inner_text())
    upvote.click()
    expect(upvote).to_have_attribute("aria-pressed", "true")  # no wait_for_function: the CSP forbids eval
    assert int(upvote.locator(".count").inner_text()) == before + 1
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".actions .save")).to_have_text("Saved")

    page.get_by_label("Add a comment (Markdown)").fill("A **great** benchmark.")
    page.get_by_role("button", name="Comment").click()
    assert page.locator(".comment strong", has_text="great").is_visible()
    page.reload()
    assert page.get_by_role("button", name="Upvote").get_attribute("aria-pressed") == "true"
    assert int(page.get_by_role("button", name="Upvote").locator(".count").inner_text()) == before + 1
    page.screenshot(path=shots / "paper-desktop.png", full_page=True)

    page.goto(live_server + "/submit")
    page.get_by_label("arXiv id or URL").fill("https://arxiv.org/abs/1605.08386")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url("**/papers/1605.08386?submitted=fetched")
    assert "Heat-bath random walks with Markov bases" in page.locator("h1").inner_text()
    assert page.get_by_role("status").is_visible()  # the notice says what happened

    page.goto(live_server + "/submit")
    console_errors.expect_status("/submit")
    page.get_by_label("arXiv id or URL").fill("not an id")
    page.get_by_role("button", name="Submit").click()
    assert "is not an arXiv identifier" in page.locator("#paper-error").inner_text()

    page.goto(live_server + "/account")
    assert page.get_by_role("link", name="Export as BibTeX").is_visible()
    assert console_errors == []


def test_keyboard_reaches_the_search_box_and_signed_out_upvote_asks_to_sign_in(page, live_server, console_errors):
    page.goto(live_server + "/")
    page.keyboard.press("Tab")  # the skip link
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.locator(".card .upvote").first.click()
    page.wait_for_url("**/login?next=*")
    assert page.get_by_role("heading", name="Sign in").is_visible()
    assert console_errors == []


@pytest.mark.parametrize("path, operation", [("/docs", ".opblock-summary-path"),
                                             ("/redoc", "[data-section-id^='operation/']")])
def test_the_api_docs_render_offline_under_the_content_security_policy(page, live_server, console_errors,
                                                                       path, operation):
    """Swagger UI and ReDoc come from the site itself: no request leaves 127.0.0.1, and the strict
    policy (Swagger's start-up script allowed by its hash) lets them render every operation."""
    requests = []
    page.on("request", lambda request: requests.append(request))
    page.goto(live_server + path)
    page.locator(operation).first.wait_for(timeout=20_000)
    assert page.locator(operation).count() >= 5
    assert "/api/daily_papers" in page.content()
    # ReDoc always shows its logo from its CDN: the policy blocks it before it leaves (and says so).
    elsewhere = {r.url for r in requests if not r.url.startswith((live_server, "data:", "blob:"))}
    assert elsewhere <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}
    blocked = [e for e in console_errors if "Content Security Policy" in e and "has been blocked" in e]
    assert all(any(url in e for e in blocked) for url in elsewhere)
    assert all("https://cdn.redoc.ly/redoc/logo-mini.svg" in e for e in blocked)
    assert [e for e in console_errors if e not in blocked] == []
