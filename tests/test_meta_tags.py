"""Paper pages carry what reference managers and link previews read: Highwire Press `citation_*` tags
(Zotero's "Embedded Metadata" translator and Google Scholar take a page's title, authors in order,
date, arXiv id and PDF from them) and OpenGraph/Twitter tags. Parsed from the HTML as they do."""

from datetime import datetime

import lxml.html
import pytest
from fastapi.testclient import TestClient

from dailypapers.config import get_settings
from dailypapers.domain import Author, Paper
from dailypapers.ingest import ingest
from dailypapers.web.app import create_app

ARXIV = Paper(id="2501.00001", title=r"Attention for Pok\'emon: $\mathcal{O}(n)$ teams",
              summary="We propose the Transformer & more. " * 20, categories=["cs.CL"],
              authors=[Author("Ashish Vaswani"), Author("Noam Shazeer"), Author("Niki \"N\" Parmar")],
              published_at=datetime(2025, 1, 2, 10), doi="10.48550/arXiv.2501.00001", journal_ref="NeurIPS 2025")
LOCAL = Paper(id="dp-0123456789ab", title="A paper from elsewhere", summary="No arXiv id.", num_authors=4)


@pytest.fixture
def site(engine, db_url, tmp_path):
    ingest(engine, [("a", ARXIV), ("b", LOCAL)])
    settings = get_settings(database_url=db_url, data_dir=tmp_path, base_url="http://testserver",
                            embedding_runtime="off")
    with TestClient(create_app(settings, embedder=None), raise_server_exceptions=False) as client:
        yield client


def metas(html: str) -> list[tuple[str, str]]:
    """(name or property, content) of every <meta> in the head, in order."""
    head = lxml.html.fromstring(html).find("head")
    return [(m.get("name") or m.get("property"), m.get("content")) for m in head.iter("meta")
            if m.get("content") is not None]


def test_highwire_and_opengraph_tags_of_an_arxiv_paper(site):
    tags = metas(site.get("/papers/2501.00001").text)
    one = dict(tags)
    assert one["citation_title"] == "Attention for Pokémon: 𝒪(n) teams"
    assert [v for k, v in tags if k == "citation_author"] == ["Ashish Vaswani", "Noam Shazeer", 'Niki "N" Parmar']
    assert one["citation_publication_date"] == "2025/01/02"
    assert one["citation_arxiv_id"] == "2501.00001"
    assert one["citation_pdf_url"] == "https://arxiv.org/pdf/2501.00001"
    assert one["citation_doi"] == "10.48550/arXiv.2501.00001"
    assert one["citation_journal_title"] == "NeurIPS 2025"
    assert one["citation_abstract_html_url"] == "http://testserver/papers/2501.00001"
    assert one["og:title"] == one["twitter:title"] == "Attention for Pokémon: 𝒪(n) teams"
    assert one["og:url"] == "http://testserver/papers/2501.00001" and one["og:type"] == "article"
    assert one["og:description"].startswith("We propose the Transformer & more.")
    assert len(one["og:description"]) <= 301 and one["twitter:card"] == "summary"


def test_a_paper_without_arxiv_id_or_names_claims_neither(site):
    one = dict(metas(site.get("/papers/dp-0123456789ab").text))
    assert one["citation_title"] == "A paper from elsewhere"
    assert not {"citation_author", "citation_arxiv_id", "citation_pdf_url", "citation_doi"} & one.keys()
