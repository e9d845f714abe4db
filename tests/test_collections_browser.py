"""Collections in a real browser (Debian's Chromium driven by Playwright) against a live server, on
SQLite and PostgreSQL: a new reader makes a collection, adds a paper from its page, writes a note,
exports the collection as BibTeX and imports that file as a new collection."""

import socket
from importlib.resources import files

import pytest
from argon2 import PasswordHasher

from dailypapers import accounts
from dailypapers.config import get_settings
from dailypapers.ingest import ingest
from dailypapers.search.backends import upkeep
from dailypapers.sources.hf_daily import parse_hf_json
from dailypapers.web.app import create_app
from live import serving

VGC = "2506.10326"


@pytest.fixture(scope="session")
def browser_type_launch_args():
    return {"executable_path": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]}


@pytest.fixture
def live_server(engine, db_url, tmp_path, monkeypatch):
    ingest(engine, parse_hf_json(files("dailypapers.sample").joinpath("papers.json").read_bytes()))
    upkeep(engine)
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    settings = get_settings(database_url=db_url, data_dir=tmp_path, base_url=None, mail_schedule="off",
                            embedding_runtime="off")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with serving(create_app(settings, embedder=None), port) as url:
        yield url


def test_a_reader_makes_a_collection_exports_it_and_imports_it_back(page, live_server, tmp_path):
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(live_server + "/signup")
    page.get_by_label("Email").fill("ada@example.org")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Create account").click()

    page.goto(live_server + "/collections")
    page.locator("#name").fill("Games")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/collections/*")
    assert page.locator("h1").inner_text().startswith("Games")

    page.goto(live_server + f"/papers/{VGC}")
    page.get_by_label("Add to").select_option(label="Games")
    page.get_by_role("button", name="Add", exact=True).click()
    page.goto(live_server + "/collections")
    page.get_by_role("link", name="Games").click()
    assert "Competitive Pokémon" in page.locator(".card h2").first.inner_text()
    page.get_by_placeholder("A note").fill("Team building")
    page.get_by_role("button", name="Save note").click()
    assert page.get_by_placeholder("A note").input_value() == "Team building"

    with page.expect_download() as download:
        page.get_by_role("link", name="BibTeX").click()
    saved = tmp_path / "games.bib"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "games.bib"
    assert "Competitive Pok" in saved.read_text()

    page.goto(live_server + "/collections")
    page.locator("#import-name").fill("Games again")
    page.get_by_label("File (.bib or .ris)").set_input_files(str(saved))
    page.get_by_role("button", name="Import").click()
    assert "BibTeX file: 1 added, 0 already there, 0 not found" in page.get_by_role("status").inner_text()
    page.get_by_role("link", name="Games again").click()
    assert "Competitive Pokémon" in page.locator(".card h2").first.inner_text()
    assert errors == []
