"""TeX in titles and abstracts made readable (dailypapers.tex): on pages, in feeds, in mail and in
search snippets; the API keeps the source text. The sample's own abstracts, and hostile math."""

import json
import re
from datetime import date
import xml.etree.ElementTree as ET
from importlib.resources import files

import pytest
from fastapi.testclient import TestClient

from dailypapers.config import get_settings
from dailypapers.domain import Paper
from dailypapers.ingest import ingest
from dailypapers.mail.compose import DigestPeriod, Links, render_digest
from dailypapers.sources.hf_daily import parse_hf_json
from dailypapers.tex import to_html, to_text
from dailypapers.web.app import create_app

SAMPLE = json.loads(files("dailypapers.sample").joinpath("papers.json").read_bytes())
TEX = re.compile(r"\\['\"%]|\^\{|_\{|\^\d")  # what a reader should never see


def test_every_tex_place_in_the_sample_reads_as_text():
    """14 places in 11 sample abstracts: accents, percent signs, powers, subscripts."""
    abstracts = {p["paper"]["id"]: p["paper"]["summary"] for p in SAMPLE}
    with_tex = {i: s for i, s in abstracts.items() if TEX.search(s)}
    assert len(with_tex) == 11
    for summary in with_tex.values():
        assert not TEX.search(to_text(summary)), to_text(summary)
        assert not TEX.search(str(to_html(summary)))
    vgc = abstracts["2506.10326"]
    assert "Pokémon Video Game Championships" in to_text(vgc) and "10¹³⁹" in to_text(vgc)
    assert "10<sup>139</sup>" in to_html(vgc)
    assert "A Grönwall-type bound" in to_text(abstracts["2510.01068"])
    assert "D³S" in to_text(abstracts["2509.22115"])
    assert "|A<sub>i,t</sub>|" in to_html(abstracts["2509.22115"])
    assert "average success rate of 90% in four" in to_text(abstracts["2502.08449"])


@pytest.mark.parametrize("source, text, html", [
    (r"in $\mathcal{O}(n^{2})$ time", "in 𝒪(n²) time", '<math display="inline"'),
    (r"$$\sum_i x_i$$", "∑ᵢ xᵢ", '<math display="block"'),
    (r"costs $5 and $10", "costs $5 and $10", "costs $5 and $10"),  # money, not math
    (r"snake_case, x_1 and x_12", "snake_case, x₁ and x_12", "x<sub>1</sub> and x_12"),
    (r"Fig.~3 and ~100 tokens", "Fig.\u00a03 and ~100 tokens", "Fig.\u00a03 and ~100 tokens"),
    (r"\titlevariable~wins", "\\titlevariable\u00a0wins", "\\titlevariable\u00a0wins"),  # unknown: as written
    (r"$\frac{a}{$ broken", None, r"$\frac{a}{$ broken"),  # latex2mathml refuses it: shown as written
    ("100% & <b>", "100% & <b>", "100% &amp; &lt;b&gt;"),
])
def test_conversions(source, text, html):
    if text is not None:
        assert to_text(source) == text
    assert html in str(to_html(source)).replace(' xmlns="http://www.w3.org/1998/Math/MathML"', "")


@pytest.mark.parametrize("source", [
    r"$\text{<script>alert(1)</script>}$",
    r"$\href{javascript:alert(1)}{x}$",
    r"$\color{red"" onmouseover=""alert(1)}{x}$",
    r"<img src=x onerror=alert(1)> $x$",
])
def test_math_cannot_smuggle_markup(source):
    html = str(to_html(source))
    tags = re.findall(r"<[^>]*>", html)
    assert {re.match(r"</?(\w+)", t).group(1) for t in tags} <= {"math", "mrow", "mi", "mtext", "mstyle"}
    assert not [t for t in tags if re.search(r"\s(on\w+|href|src|style|mathcolor)=", t)]
    assert "<script" not in html and "alert(1)</" not in html


@pytest.fixture
def site(engine, db_url, tmp_path):
    ingest(engine, parse_hf_json(files("dailypapers.sample").joinpath("papers.json").read_bytes()))
    ingest(engine, [("test", Paper(id="2501.00001", title=r"Sorting in $\mathcal{O}(n \log n)$ by Erd\H{o}s",
                                   summary=r"We sort in $\mathcal{O}(n \log n)$, 30\% faster.",
                                   categories=["cs.DS"]))])
    settings = get_settings(database_url=db_url, data_dir=tmp_path, base_url="http://testserver",
                            embedding_runtime="off")
    with TestClient(create_app(settings, embedder=None), raise_server_exceptions=False) as client:
        yield client


def test_pages_feeds_and_search_show_unicode_and_math_while_the_api_keeps_the_source(site):
    page = site.get("/papers/2506.10326").text
    assert "Pokémon Video Game Championships" in page and "10<sup>139</sup>" in page
    assert "Pok\\'emon" not in page
    page = site.get("/papers/2501.00001").text
    assert "<title>Sorting in 𝒪(n log n) by Erdős" in page
    assert page.count("<math") == 2 and "30% faster" in page

    feed = ET.fromstring(site.get("/feeds/search.rss", params={"q": "Pokemon team building"}).content)
    descriptions = [item.findtext("description") for item in feed.iter("item")]
    assert any("Pokémon Video Game" in d for d in descriptions)
    assert not any(TEX.search(d) for d in descriptions)

    results = site.get("/search", params={"q": "Pokemon team building"}).text
    assert "Pok\\'emon" not in results and "<mark>Pokémon</mark>" in results  # marked as shown

    api = site.get("/api/papers/2506.10326").json()
    assert "Pok\\'emon" in api["summary"]  # as the source wrote it, like Hugging Face's API


def test_mail_excerpts_are_plain_unicode():
    papers = [{"id": "2506.10326", "title": r"Pok\'emon at $10^{139}$", "num_authors": 2, "upvotes": 3,
               "summary": r"Pok\'emon VGC has 10^{139} teams, 30\% more.", "github_repo": None}]
    links = Links(base_url="http://testserver", manage="http://testserver/m", unsubscribe="http://testserver/u")
    subject, text, html = render_digest({"kind": "digest", "period": "daily", "email": "ada@example.org"},
                                        DigestPeriod.of("daily", date(2025, 10, 9)), papers, 1, links)
    for body in (text, html):
        assert "Pokémon at 10¹³⁹" in body and "Pokémon VGC has 10¹³⁹ teams, 30% more." in body
        assert "\\" not in body
