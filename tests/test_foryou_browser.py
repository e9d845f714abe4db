"""Issue 14's reader, start to end, in a real browser (Debian's Chromium driven by Playwright) against a
live server over the sample corpus with its MiniLM embeddings, on SQLite and PostgreSQL.

A new reader signs up, follows a category from the For-you page, saves three papers from search
results, marks one recommendation "not interested" (undoes it, marks it again), and sees For you
change with each signal and say why it picked every paper; then makes a collection, adds papers
from a card and from a paper's page, downloads it as BibTeX, RIS and CSL-JSON (parsed with the
libraries reference managers use), and imports a Zotero-style BibTeX file into it. Every signal
goes through the site's scripts (fetch, no page load), and no page logs a console error.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files

import bibtexparser
import pytest
import rispy
from argon2 import PasswordHasher
from playwright.sync_api import Page, expect
from test_browser import arxiv_replay, browser_type_launch_args  # noqa: F401 - fixtures

from dailypapers import accounts
from dailypapers.config import get_settings
from dailypapers.ingest import ingest
from dailypapers.search.backends import upkeep
from dailypapers.search.embedder import load_embedder
from dailypapers.search.vectors import embed_backlog
from dailypapers.sources.hf_daily import parse_hf_json
from dailypapers.web.app import create_app
from live import serving

LLM_RL = "2509.25004"  # CLPO: Curriculum Learning meets Policy Optimization for LLM Reasoning (cs.AI)
OPENVLA = "2406.09246"  # OpenVLA: An Open-Source Vision-Language-Action Model
EARLY = "2510.08558"  # Agent Learning via Early Experience
ZOTERO = r"""@misc{zhang_agent_2025,
	title = {Agent {Learning} via {Early} {Experience}},
	url = {http://arxiv.org/abs/2510.08558},
	doi = {10.48550/arXiv.2510.08558},
	publisher = {arXiv},
	author = {Zhang, Kai and Chen, Xiangchao},
	month = oct,
	year = {2025},
	note = {arXiv:2510.08558 [cs]},
	keywords = {Computer Science - Artificial Intelligence},
}

@article{kim_openvla_2024,
	title = {{OpenVLA}: {An} {Open}-{Source} {Vision}-{Language}-{Action} {Model}},
	journal = {Proceedings of Machine Learning Research},
	author = {Kim, Moo Jin and Pertsch, Karl},
	year = {2024},
	pages = {1--20},
}

@article{plackett_heat_2016,
	title = {Heat-bath random walks with {Markov} bases},
	url = {http://arxiv.org/abs/1605.08386},
	author = {Kahle, Caprice Stanley and Windisch, Tobias},
	year = {2016},
	note = {arXiv:1605.08386 [math]},
}
"""


class CachedEmbedder:
    """The bundled MiniLM, loaded once for both databases, each text embedded once."""

    def __init__(self, embedder):  # noqa: ANN001
        self.inner, self.name, self.dim, self.seen = embedder, embedder.name, embedder.dim, {}

    def embed(self, texts, batch_size: int = 32):  # noqa: ANN001, ANN201
        import numpy as np

        todo = [t for t in dict.fromkeys(texts) if t not in self.seen]
        if todo:
            self.seen |= dict(zip(todo, self.inner.embed(todo, batch_size=batch_size), strict=True))
        return np.stack([self.seen[t] for t in texts])


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    return CachedEmbedder(load_embedder(cache_dir=tmp_path_factory.mktemp("models")))


@pytest.fixture
def live_server(engine, db_url, tmp_path, embedder, arxiv_replay, monkeypatch):  # noqa: F811
    ingest(engine, parse_hf_json(files("dailypapers.sample").joinpath("papers.json").read_bytes()))
    embed_backlog(engine, embedder)
    upkeep(engine)
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    settings = get_settings(database_url=db_url, data_dir=tmp_path, base_url=None, mail_schedule="off",
                            arxiv_api_url=arxiv_replay)
    with serving(create_app(settings, embedder=embedder)) as url:
        yield url


def shown(page: Page) -> list[str]:
    """The ids of the cards on the page, in order."""
    return [i.removeprefix("paper-") for i in page.locator("article.card").evaluate_all("cs => cs.map(c => c.id)")]


def reasons(page: Page) -> dict[str, str]:
    return dict(zip(shown(page), page.locator("article.card .because").all_inner_texts(), strict=True))


def test_a_new_reader_from_sign_up_to_for_you_collections_export_and_import(page, live_server, tmp_path):
    errors, posts = [], []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda r: posts.append((r.url, r.resource_type)) if r.method == "POST" else None)

    # Sign up.
    page.goto(live_server + "/")
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Email").fill("ada@example.org")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("link", name="ada", exact=True)).to_be_visible()

    # For you starts with where to begin: follow a category.
    page.get_by_role("link", name="For you", exact=True).click()
    page.wait_for_url("**/for-you")
    expect(page.get_by_role("heading", name="Follow categories")).to_be_visible()
    assert shown(page) == []
    page.get_by_role("button", name="Follow cs.RO").click()
    expect(page.get_by_role("button", name="Unfollow cs.RO")).to_have_text("Following")
    page.get_by_role("link", name="Show the papers picked for you").click()
    expect(page.locator("article.card").first).to_be_visible()
    followed = reasons(page)
    assert followed and set(followed.values()) == {"from cs.RO, which you follow"}, followed
    expect(page.get_by_role("button", name="Unfollow cs.RO")).to_be_visible()  # in "You follow"

    # Save three papers from search results.
    page.get_by_label("Search papers").first.fill("reinforcement learning for language model reasoning")
    page.get_by_label("Search papers").first.press("Enter")
    page.wait_for_url("**/search?q=*")
    saved = shown(page)[:3]
    assert len(saved) == 3
    titles = {}
    for paper in saved:
        card = page.locator(f'[id="paper-{paper}"]')
        titles[paper] = card.locator("h2").inner_text()
        card.get_by_role("button", name="Save").click()
        expect(card.locator("button.save")).to_have_text("Saved")

    # For you changes: the saved papers are gone, and it now says "because you saved ...".
    page.get_by_role("link", name="For you", exact=True).click()
    page.wait_for_url("**/for-you")
    after_saves = reasons(page)
    assert list(after_saves) != list(followed) and not set(saved) & set(after_saves)
    because_saved = {p: r for p, r in after_saves.items() if r.startswith("because you saved")}
    assert because_saved and "from cs.RO, which you follow" in after_saves.values(), after_saves
    assert all(any(f'"{t}"' in r for t in titles.values()) for r in because_saved.values()), because_saved

    # Below the cards, more categories to follow (not the one followed already).
    page.get_by_text("Follow more categories").click()
    more = page.locator(".more-follows")
    expect(more.get_by_role("button", name="Follow cs.CL")).to_be_visible()
    assert more.get_by_role("button", name=re.compile("cs.RO")).count() == 0
    more.get_by_role("button", name="Follow cs.CL").click()
    expect(more.get_by_role("button", name="Unfollow cs.CL")).to_have_text("Following")

    # Not interested, undone, then again.
    unwanted = next(iter(because_saved))
    card = page.locator(f'[id="paper-{unwanted}"]')
    card.get_by_role("button", name="Not interested").click()
    expect(card).to_have_class(re.compile(r"\bdismissed\b"))
    undo = card.get_by_role("button", name="Undo “not interested”")
    undo.click()
    expect(card).not_to_have_class(re.compile(r"\bdismissed\b"))
    card.get_by_role("button", name="Not interested").click()
    expect(card.locator("button.dismiss")).to_have_text("Undo “not interested”")
    page.reload()
    assert unwanted not in shown(page)
    assert page.locator("article.card .because").first.is_visible()
    expect(page.get_by_role("region", name="You follow")).to_contain_text("category: cs.RO Following category: cs.CL")

    # Every signal went by script, not by a page load.
    signals = [(url.removeprefix(live_server), kind) for url, kind in posts if "/signup" not in url]
    assert [url for url, _ in signals if "follow" in url] == ["/follow", "/follow"]
    assert signals and all(kind == "fetch" for _, kind in signals), signals
    assert sum(url.endswith("/save") for url, _ in signals) == 3
    assert [url.rsplit("/", 1)[1] for url, _ in signals if "dismiss" in url] == ["dismiss", "undismiss", "dismiss"]

    # A collection: from a paper's page, where a reader with none is offered to make one.
    page.goto(live_server + f"/papers/{OPENVLA}")
    page.get_by_role("link", name="New collection").click()
    page.wait_for_url("**/collections")
    page.get_by_label("Name").first.fill("Reading group")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/collections/\d+$"))
    collection_url = page.url
    expect(page.locator("h1")).to_contain_text("Reading group")

    # Add one paper from a For-you card and one from its page.
    page.get_by_role("link", name="For you", exact=True).click()
    page.wait_for_url("**/for-you")
    first = shown(page)[0]
    card = page.locator(f'[id="paper-{first}"]')
    card.get_by_label(re.compile("^Collection for")).select_option(label="Reading group")
    card.get_by_role("button", name="Add", exact=True).click()
    expect(card.get_by_role("status")).to_have_text("Added to Reading group")
    page.goto(live_server + f"/papers/{LLM_RL}")
    expect(page.get_by_role("button", name="Follow cs.AI")).to_be_visible()  # its category, followable here
    page.get_by_label("Add to").select_option(label="Reading group")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Added to Reading group")
    assert [kind for url, kind in posts if url.endswith("/collections/add")] == ["fetch", "fetch"]
    page.get_by_role("link", name="Collections", exact=True).click()
    expect(page.locator("ul.collections li")).to_have_text(["Saved 3 papers · private",
                                                             "Reading group 2 papers · private"])
    page.get_by_role("link", name="Reading group").click()
    page.wait_for_url(collection_url)
    in_collection = shown(page)
    assert in_collection == [first, LLM_RL], in_collection

    # Export in the three formats and read each back.
    downloads = {}
    for label in ("BibTeX", "RIS", "CSL-JSON"):
        with page.expect_download() as download:
            page.get_by_role("link", name=label, exact=True).click()
        downloads[label] = tmp_path / download.value.suggested_filename
        download.value.save_as(downloads[label])
    assert sorted(p.name for p in downloads.values()) == ["reading-group.bib", "reading-group.json",
                                                          "reading-group.ris"]
    bib = bibtexparser.parse_string(downloads["BibTeX"].read_text()).entries
    ris = rispy.loads(downloads["RIS"].read_text())
    csl = json.loads(downloads["CSL-JSON"].read_text())
    assert [e["eprint"] for e in bib] == in_collection and [e["archivePrefix"] for e in bib] == ["arXiv"] * 2
    assert [r["urls"] for r in ris] == [[f"https://arxiv.org/abs/{p}"] for p in in_collection]
    assert [c["URL"] for c in csl] == [f"https://arxiv.org/abs/{p}" for p in in_collection]
    keys, titles = [e.key for e in bib], [e["title"] for e in bib]  # one key and title per paper in all three
    assert [r["id"] for r in ris] == keys == [c["id"] for c in csl]
    assert [r["title"] for r in ris] == titles == [c["title"] for c in csl]
    assert titles[1] == "CLPO: Curriculum Learning meets Policy Optimization for LLM Reasoning"
    assert ris[1]["authors"][0] == "Zhang, Shijie" and csl[1]["author"][0] == {"family": "Zhang", "given": "Shijie"}

    # A broken file is refused with a message naming the entry, and a way back to the form.
    broken = tmp_path / "broken.bib"
    broken.write_text("@misc{ok, title={Fine}}\n@misc{smith2020, title = {unclosed\n")
    page.get_by_text("Import a BibTeX or RIS file").click()
    page.get_by_label(re.compile(r"^File \(\.bib or \.ris")).set_input_files(str(broken))
    page.get_by_role("button", name="Import").click()
    expect(page.locator(".message")).to_contain_text("line 2 (smith2020): this entry is not valid BibTeX")
    errors.remove("Failed to load resource: the server responded with a status of 400 (Bad Request)")
    page.get_by_role("link", name="Back to the form").click()
    page.wait_for_url(collection_url)

    # Import a Zotero-style export: one by arXiv id, one by title, one this site lacks.
    zotero = tmp_path / "My Library.bib"
    zotero.write_text(ZOTERO)
    page.get_by_text("Import a BibTeX or RIS file").click()
    page.get_by_label(re.compile(r"^File \(\.bib or \.ris")).set_input_files(str(zotero))
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("status")).to_have_text(
        "BibTeX file: 2 added, 0 already there, 1 not found on this site.")
    added = page.get_by_role("region", name=re.compile("^Added"))
    expect(added.get_by_role("link")).to_have_text([re.compile("Agent Learning via Early Experience"),
                                                    re.compile("OpenVLA")])
    missing = page.get_by_role("region", name=re.compile("^Not found"))
    expect(missing).to_contain_text("Heat-bath random walks with Markov bases")
    page.get_by_role("button", name="Fetch from arXiv").click()
    expect(page.get_by_role("status")).to_have_text("1 added.")
    page.get_by_role("link", name="Reading group").click()
    assert shown(page) == in_collection + [EARLY, OPENVLA, "1605.08386"]

    # At phone width the signed-in pages hold: the header wraps instead of widening the page.
    page.set_viewport_size({"width": 390, "height": 844})
    for url in (live_server + "/for-you", collection_url, live_server + f"/papers/{LLM_RL}"):
        page.goto(url)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), url
    assert errors == []


def test_without_scripts_the_same_controls_post_and_come_back(page, live_server):
    """Not interested, follow and add-to-collection are forms first: with scripts off they still work."""
    plain = page.context.browser.new_context(java_script_enabled=False)
    try:
        nojs = plain.new_page()
        nojs.goto(live_server + "/signup")
        nojs.get_by_label("Email").fill("grace@example.org")
        nojs.get_by_label("Username").fill("grace")
        nojs.get_by_label("Password").fill("correct horse")
        nojs.get_by_role("button", name="Create account").click()
        nojs.goto(live_server + "/for-you")
        nojs.get_by_role("button", name="Follow cs.RO").click()  # back on For you, now with papers
        expect(nojs.get_by_role("region", name="You follow")).to_contain_text("category: cs.RO")
        expect(nojs.locator("article.card .because").first).to_have_text("from cs.RO, which you follow")
        unwanted = shown(nojs)[0]
        nojs.locator(f'[id="paper-{unwanted}"]').get_by_role("button", name="Not interested").click()
        nojs.wait_for_url(live_server + "/for-you")
        expect(nojs.locator("article.card").first).not_to_have_id(f"paper-{unwanted}")
        assert unwanted not in shown(nojs)

        nojs.get_by_text("Follow more categories").click()
        nojs.locator(".more-follows").get_by_role("button", name="Follow cs.CV").click()
        expect(nojs.get_by_role("region", name="You follow")).to_contain_text("category: cs.CV")

        nojs.get_by_role("link", name="Collections", exact=True).click()
        nojs.get_by_label("Name").first.fill("Robots")
        nojs.get_by_role("button", name="Create").click()
        nojs.get_by_role("link", name="For you", exact=True).click()
        nojs.wait_for_url("**/for-you")
        wanted = shown(nojs)[0]
        nojs.locator(f'[id="paper-{wanted}"]').get_by_role("button", name="Add", exact=True).click()
        nojs.wait_for_url(live_server + "/for-you")
        nojs.get_by_role("link", name="Collections", exact=True).click()
        nojs.get_by_role("link", name="Robots").click()
        nojs.wait_for_url(re.compile(r"/collections/\d+$"))
        assert shown(nojs) == [wanted]
    finally:
        plain.close()
