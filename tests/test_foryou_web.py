"""For you on the site, over HTTP on SQLite and PostgreSQL: follows and "not interested" (forms and
scripts, bad input, signed-out readers, CSRF), an author's page, the feed's "followed only" filter,
and /for-you from onboarding to cards with their reasons. A browser flow at the end."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

import numpy as np
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from playwright.sync_api import expect
from sqlalchemy import func, select
from test_browser import browser_type_launch_args  # noqa: F401 - fixture
from test_mail_delivery import RUN_DAY, link, mail_settings, smtp  # noqa: F401 - fixture

from dailypapers import accounts
from dailypapers.config import get_settings
from dailypapers.domain import Author, Organization, Paper
from dailypapers.ingest import ingest
from dailypapers.mail import subscriptions as subs
from dailypapers.mail.digests import send_digests
from dailypapers.search.backends import upkeep
from dailypapers.search.vectors import embed_backlog
from dailypapers.store.schema import dismissals, follows
from dailypapers.web.app import create_app
from live import serving

TOPICS = {
    "robots": ("cs.RO", "robot grasping manipulation arm gripper"),
    "language": ("cs.CL", "language model tokens transformer text"),
    "proteins": ("q-bio.BM", "protein folding structure residues biology"),
}
DAY = datetime(2025, 10, 10, 9)
ACCENTED = "José Ñúñez-O'Brien"
QUOTED = 'Ada "the Countess" Lovelace'


class WordsEmbedder:
    """Each word a fixed random unit vector, a text the normalized sum of its words': papers on one
    topic share words, so they lie near each other, with no model to load."""

    name, dim = "test-words", 384

    def embed(self, texts, batch_size: int = 32) -> np.ndarray:  # noqa: ANN001, ARG002
        out = []
        for text in texts:
            v = sum(np.random.default_rng(int.from_bytes(hashlib.sha256(w.encode()).digest()[:4], "little"))
                    .standard_normal(384) for w in text.lower().split())
            out.append(v / np.linalg.norm(v))
        return np.stack(out).astype(np.float32)


def pid(topic: str, i: int) -> str:
    return f"2510.{list(TOPICS).index(topic) + 1}{i:04d}"


def corpus() -> list[tuple[str, Paper]]:
    """Six papers per topic, all on the feed of one day; the robot papers are Ada Lovelace's (newest
    first: 5, 4, ...), the protein ones come from deepmind, one language paper has hard names."""
    out = []
    for topic, (category, words) in TOPICS.items():
        for i in range(6):
            w = words.split()
            authors = {"robots": ["Ada Lovelace", "Alan Turing"], "language": ["Grace Hopper"],
                       "proteins": ["Rosalind Franklin"]}[topic]
            if topic == "language" and i == 0:
                authors = [ACCENTED, QUOTED]
            out.append(("test", Paper(
                id=pid(topic, i), title=f"{topic} study {i}: " + " ".join(w[j % 5] for j in range(i, i + 3)),
                summary=words, categories=[category], authors=[Author(a) for a in authors],
                published_at=datetime(2025, 10, 1 + i, 12), submitted_on_daily_at=DAY, upvotes=i,
                organization=Organization("deepmind", "Google DeepMind") if topic == "proteins" else None)))
    return out


def load(engine) -> None:  # noqa: ANN001
    report = ingest(engine, corpus())
    assert report.inserted == 18, report.rejections
    embed_backlog(engine, WordsEmbedder())
    upkeep(engine)


@pytest.fixture(autouse=True)
def quick_hashing(monkeypatch):
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def site(engine, db_url, tmp_path):
    load(engine)
    settings = get_settings(database_url=db_url, data_dir=tmp_path, base_url="http://testserver",
                            embedding_runtime="off")
    with TestClient(create_app(settings, embedder=None), raise_server_exceptions=False) as client:
        yield client


def csrf(client, path="/daily") -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get(path).text).group(1)


def sign_up(client, username="ada") -> str:
    token = csrf(client, "/signup")
    response = client.post("/signup", data={"email": f"{username}@example.org", "username": username,
                                            "password": "correct horse", "csrf_token": token},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf(client)


def post(client, path, token, data=None, json=False, referer="/daily"):
    headers = {"Referer": f"http://testserver{referer}"}
    if json:
        headers |= {"Accept": "application/json", "X-CSRF-Token": token}
        return client.post(path, data=data or {}, headers=headers, follow_redirects=False)
    return client.post(path, data={"csrf_token": token, **(data or {})}, headers=headers, follow_redirects=False)


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def cards(html: str) -> list[str]:
    return re.findall(r'<article class="card[^"]*" id="paper-([^"]+)"', html)


def test_follow_and_unfollow_by_form_and_by_script(site, engine):
    token = sign_up(site)
    first = post(site, "/follow", token, {"kind": "category", "target": "cs.RO"}, referer="/for-you")
    assert first.status_code == 303 and first.headers["location"] == "/for-you"
    again = post(site, "/follow", token, {"kind": "category", "target": "cs.RO"}, json=True)
    assert again.status_code == 200 and again.json() == {"following": True, "kind": "category", "target": "cs.RO"}
    assert count(engine, follows) == 1  # following twice is one row
    page = site.get("/for-you").text
    assert 'action="/unfollow"' in page and "Following" in page
    gone = post(site, "/unfollow", token, {"kind": "category", "target": "cs.RO"}, json=True)
    assert gone.json()["following"] is False and count(engine, follows) == 0

    assert post(site, "/follow", token, {"kind": "organization", "target": "deepmind"}).status_code == 303
    org = site.get("/orgs/deepmind").text
    assert 'aria-label="Unfollow Google DeepMind"' in org
    assert 'aria-label="Follow cs.CL"' in site.get("/search", params={"q": "model", "cat": "cs.CL"}).text


@pytest.mark.parametrize("kind, target, message", [
    ("category", "cs.ZZ", "there is no arXiv category 'cs.ZZ'"),
    ("category", "not a category", "does not look like an arXiv category"),
    ("author", "", "name the author to follow"),
    ("author", "x" * 301, "an author's name can be at most 300 characters; this one has 301"),
    ("author", "Ada\x07Lovelace", "cannot hold control characters"),
    ("organization", "nobody", "there is no organization 'nobody' here"),
    ("friend", "ada", "follow an author, a category or an organization"),
])
def test_bad_follows_are_a_400_that_says_why(site, engine, kind, target, message):
    token = sign_up(site)
    as_json = post(site, "/follow", token, {"kind": kind, "target": target}, json=True)
    assert as_json.status_code == 400 and message in as_json.json()["error"]
    as_form = post(site, "/follow", token, {"kind": kind, "target": target})
    assert as_form.status_code == 400 and message.replace("'", "&#39;") in as_form.text
    assert "Traceback" not in as_form.text and count(engine, follows) == 0


def test_signed_out_readers_are_sent_to_sign_in_and_csrf_is_required(site, engine):
    token = csrf(site)
    form = post(site, "/follow", token, {"kind": "category", "target": "cs.RO"}, referer="/search?q=x")
    assert form.status_code == 303 and form.headers["location"] == "/login?next=/search%3Fq%3Dx"
    script = post(site, "/follow", token, {"kind": "category", "target": "cs.RO"}, json=True)
    assert script.status_code == 401 and script.json() == {"error": "Sign in to do that."}
    dismissed = post(site, f"/papers/{pid('robots', 0)}/dismiss", token, json=True)
    assert dismissed.status_code == 401
    forgot = site.get("/for-you", follow_redirects=False)
    assert forgot.status_code == 303 and forgot.headers["location"] == "/login?next=/for-you"

    token = sign_up(site)
    for path in ("/follow", "/unfollow", f"/papers/{pid('robots', 0)}/dismiss",
                 f"/papers/{pid('robots', 0)}/undismiss"):
        refused = site.post(path, data={"kind": "category", "target": "cs.RO"}, follow_redirects=False)
        assert refused.status_code == 403 and "did not come from this site" in refused.text, path
    assert count(engine, follows) == 0 and count(engine, dismissals) == 0


def test_not_interested_then_undo(site, engine):
    token = sign_up(site)
    paper = pid("robots", 0)
    marked = post(site, f"/papers/{paper}/dismiss", token)
    assert marked.status_code == 303 and marked.headers["location"] == "/daily"
    feed = site.get("/daily").text
    assert f'<article class="card dismissed" id="paper-{paper}">' in feed
    assert f'action="/papers/{paper}/undismiss"' in feed and "Undo “not interested”" in feed
    assert post(site, f"/papers/{paper}/dismiss", token, json=True).json() == {"dismissed": True}
    assert count(engine, dismissals) == 1
    assert post(site, f"/papers/{paper}/undismiss", token, json=True).json() == {"dismissed": False}
    assert count(engine, dismissals) == 0
    assert f'<article class="card" id="paper-{paper}">' in site.get("/daily").text
    missing = post(site, "/papers/2999.99999/dismiss", token, json=True)
    assert missing.status_code == 404 and "There is no paper" in missing.json()["error"]


def test_an_authors_page_lists_exactly_their_papers_newest_first(site):
    page = site.get("/authors/Ada Lovelace")
    assert page.status_code == 200
    assert cards(page.text) == [pid("robots", i) for i in (5, 4, 3, 2, 1, 0)]
    assert 'href="/authors/Ada%20Lovelace"' in site.get("/daily").text  # cards link their authors
    for name in (ACCENTED, QUOTED):
        assert cards(site.get(f"/authors/{name}").text) == [pid("language", 0)], name
    unknown = site.get("/authors/Nobody Atall")
    assert unknown.status_code == 200 and cards(unknown.text) == []
    assert "No papers by an author named exactly “Nobody Atall” here." in unknown.text
    assert site.get("/authors/" + "x" * 301).status_code == 400
    assert site.get("/authors/Ada%07Lovelace").status_code == 400
    assert site.get("/authors/Ada Lovelace", params={"page": "zero"}).status_code == 400


def test_an_authors_page_is_paged(site, monkeypatch):
    from dailypapers.web import foryou

    monkeypatch.setattr(foryou, "PAGE_SIZE", 4)
    first = site.get("/authors/Ada Lovelace").text
    assert cards(first) == [pid("robots", i) for i in (5, 4, 3, 2)]
    assert 'rel="next" href="/authors/Ada%20Lovelace?page=2"' in first
    assert cards(site.get("/authors/Ada Lovelace", params={"page": 2}).text) == [pid("robots", 1), pid("robots", 0)]


def test_the_feed_can_show_only_what_the_reader_follows(site):
    assert site.get("/daily", params={"followed": "1"}).status_code == 401
    token = sign_up(site)
    assert cards(site.get("/daily", params={"followed": "1"}).text) == []
    post(site, "/follow", token, {"kind": "author", "target": "Grace Hopper"})
    post(site, "/follow", token, {"kind": "organization", "target": "deepmind"})
    shown = set(cards(site.get("/papers/date/2025-10-10", params={"followed": "1"}).text))
    assert shown == {pid("language", i) for i in range(1, 6)} | {pid("proteins", i) for i in range(6)}
    post(site, "/follow", token, {"kind": "category", "target": "cs.RO"})
    assert len(cards(site.get("/daily", params={"followed": "1"}).text)) == 17  # not the hard-names one
    assert len(cards(site.get("/daily").text)) == 18


def test_a_new_reader_is_shown_where_to_start_then_cards_with_reasons(site):
    token = sign_up(site)
    start = site.get("/for-you").text
    assert "Follow categories" in start and "cs.RO</span> <span class=\"count\">6 papers" in start
    assert cards(site.get("/").text) == cards(site.get("/daily").text) != []  # no signals: the feed

    for i in range(3):
        assert post(site, f"/papers/{pid('robots', i)}/save", token, json=True).json() == {"saved": True}
    page = site.get("/for-you").text
    shown = cards(page)
    assert shown[:3] == [pid("robots", i) for i in (3, 4, 5)] or set(shown[:3]) == {pid("robots", i)
                                                                                   for i in (3, 4, 5)}
    assert not {pid("robots", i) for i in range(3)} & set(shown)  # saved papers are not recommended
    reason = re.search(r'<p class="because"><a href="/papers/([^"]+)">because you saved &#34;robots study',
                       page)
    assert reason and reason.group(1) in {pid("robots", i) for i in range(3)}
    assert cards(site.get("/").text) == shown  # a reader with signals lands on For you
    assert "Daily Papers" in site.get("/daily").text  # the daily feed keeps its own address

    dismissed = shown[0]
    post(site, f"/papers/{dismissed}/dismiss", token, json=True)
    after = cards(site.get("/for-you").text)
    assert dismissed not in after  # and the other robot papers still come first
    assert set(after[:2]) == {pid("robots", i) for i in (3, 4, 5)} - {dismissed}


def test_a_for_you_digest_mails_a_verified_reader_their_recommendations(engine, db_url, tmp_path, smtp):  # noqa: F811
    load(engine)
    settings = mail_settings(db_url, tmp_path, smtp)
    with TestClient(create_app(settings), raise_server_exceptions=False) as site:
        refused = site.post("/subscribe", data={"csrf_token": csrf(site, "/subscribe"), "email": "ada@example.org",
                                                "kind": "foryou", "period": "daily"})
        assert refused.status_code == 400 and "Papers picked for you go to your account" in refused.text
        token = sign_up(site)
        verify = link(smtp.messages.pop(0).text(), "/verify/")
        site.post(verify, data={"csrf_token": csrf(site, verify)})
        token = csrf(site)
        for i in range(3):
            post(site, f"/papers/{pid('robots', i)}/save", token, json=True)
        assert 'value="foryou"' in site.get("/subscribe").text
        asked = site.post("/subscribe", data={"csrf_token": csrf(site, "/subscribe"), "email": "ada@example.org",
                                              "kind": "foryou", "period": "daily"})
        assert asked.status_code == 200 and "Check your inbox" in asked.text
        confirm = link(smtp.messages.pop(0).text(), "/subscriptions/confirm/")
        site.post(confirm, data={"csrf_token": csrf(site, confirm)})
        assert "Daily digest of papers picked for you" in site.get("/subscriptions").text

    send_digests(engine, settings, "daily", now=RUN_DAY)
    (mail,) = smtp.messages
    assert mail.message["Subject"] == "Picked for you: 10 papers"
    assert mail.message["List-Id"] == "Papers picked for you <foryou.testserver>"
    text = mail.text()
    assert 'because you saved "robots study' in text and "http://testserver/for-you" in text
    assert text.index("robots study") < text.index("language study")  # what they save comes first
    assert not any(f"/papers/{pid('robots', i)}\n" in text for i in range(3))  # not what they saved
    assert send_digests(engine, settings, "daily", now=RUN_DAY).sent == []  # once per day
    assert [s["kind"] for s in subs.of_address(engine, "ada@example.org")] == ["foryou"]


@pytest.fixture
def live_server(engine, db_url, tmp_path):
    """The real app under uvicorn on 127.0.0.1 over this corpus (text search only)."""
    load(engine)
    settings = get_settings(database_url=db_url, data_dir=tmp_path, base_url=None, mail_schedule="off",
                            embedding_runtime="off")
    with serving(create_app(settings, embedder=None)) as url:
        yield url


def test_a_new_reader_follows_saves_dismisses_and_sees_for_you_with_reasons(page, live_server, engine):
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_server + "/signup")
    page.get_by_label("Email").fill("ada@example.org")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Create account").click()

    page.get_by_role("link", name="For you", exact=True).click()
    page.wait_for_url("**/for-you")
    assert page.get_by_role("heading", name="Follow categories").is_visible()
    follow = page.get_by_role("button", name="Follow cs.RO")
    follow.click()
    expect(page.get_by_role("button", name="Unfollow cs.RO")).to_have_text("Following")

    page.goto(live_server + "/daily")
    for i in range(3):
        card = page.locator(f'[id="paper-{pid("robots", i)}"]')
        card.get_by_role("button", name="Save").click()
        expect(card.locator("button.save")).to_have_text("Saved")
    unwanted = page.locator(f'[id="paper-{pid("robots", 3)}"]')
    unwanted.get_by_role("button", name="Not interested").click()
    expect(unwanted).to_have_class(re.compile("dismissed"))
    expect(unwanted.locator("button.dismiss")).to_have_text("Undo “not interested”")

    page.goto(live_server + "/for-you")
    cards_shown = page.locator("article.card")
    expect(cards_shown.first).to_be_visible()
    ids = [i.removeprefix("paper-") for i in cards_shown.evaluate_all("cards => cards.map(c => c.id)")]
    assert pid("robots", 3) not in ids and not {pid("robots", i) for i in range(3)} & set(ids)
    assert ids[:2] == [pid("robots", 4), pid("robots", 5)] or set(ids[:2]) == {pid("robots", 4), pid("robots", 5)}
    reasons = cards_shown.locator(".because").all_inner_texts()
    assert len(reasons) == len(ids) and all(reasons), reasons  # every card says why
    assert any(r == "from cs.RO, which you follow" for r in reasons), reasons
    reason = page.locator("article.card .because a").first  # "because you saved X" links to X
    assert reason.inner_text().startswith('because you saved "robots study')
    reason.click()
    page.wait_for_url(re.compile(r"/papers/2510\.1000[012]$"))
    page.goto(live_server + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("For you")
    assert errors == []
