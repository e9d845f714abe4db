"""Stateless web workers: the similar-papers cache follows the database it reads and its embeddings,
and `dailypapers serve --workers N` starts N processes or says why not."""

from __future__ import annotations

import hashlib
import json
import re
from importlib.resources import files

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from dailypapers.config import get_settings
from dailypapers.ingest import ingest
from dailypapers.search.vectors import embed_backlog, exact_search
from dailypapers.sources.hf_daily import parse_hf_json
from dailypapers.store.db import migrate, open_engine
from dailypapers.store.schema import paper_embeddings, papers
from dailypapers.web.app import create_app


class SeededEmbedder:
    """A stand-in model: each text's vector is random but fixed by the text and the seed (so two
    databases embedded with two seeds have different neighbours); ``near`` maps a text to a copy of
    another one's vector."""

    name, dim = "seeded", 384

    def __init__(self, seed: int = 0) -> None:
        self.seed, self.near = seed, {}

    def vector(self, text: str) -> np.ndarray:
        digest = hashlib.sha256(f"{self.seed}:{self.near.get(text, text)}".encode()).digest()
        v = np.random.default_rng(int.from_bytes(digest[:8], "little")).standard_normal(self.dim)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def embed(self, texts, batch_size: int = 64) -> np.ndarray:  # noqa: ANN001, ARG002
        return np.stack([self.vector(t) for t in texts])


def fill(engine, seed: int = 0) -> SeededEmbedder:  # noqa: ANN001
    ingest(engine, parse_hf_json(files("dailypapers.sample").joinpath("papers.json").read_bytes()))
    embedder = SeededEmbedder(seed)
    assert embed_backlog(engine, embedder) == 98
    return embedder


def app_on(url: str, data_dir) -> TestClient:  # noqa: ANN001
    settings = get_settings(database_url=url, data_dir=data_dir, base_url="http://testserver",
                            embedding_runtime="off", mail_schedule="off")
    return TestClient(create_app(settings, embedder=None), raise_server_exceptions=False)


def similar_on_page(client: TestClient, paper_id: str) -> list[str]:
    page = client.get(f"/papers/{paper_id}")
    assert page.status_code == 200
    section = page.text.partition('<ul class="similar">')[2].partition("</ul>")[0]
    return re.findall(r'href="/papers/([^"]+)"', section)


def expected_similar(engine, paper_id: str) -> list[str]:  # noqa: ANN001
    """The five nearest papers by the stored vectors, read exactly (not through the page's cache)."""
    from dailypapers.search.vectors import stored_vectors

    with engine.connect() as conn:
        pk = conn.execute(select(papers.c.pk).where(papers.c.id == paper_id)).scalar_one()
        vector = stored_vectors(conn, [pk])[pk]
        hits = [p for p, _ in exact_search(engine, vector, limit=6) if p != pk][:5]
        ids = dict(conn.execute(select(papers.c.pk, papers.c.id).where(papers.c.pk.in_(hits))).all())
    return [ids[p] for p in hits]


def paper_ids(engine) -> list[tuple[int, str, str]]:  # noqa: ANN001
    from dailypapers.search.embedder import paper_text

    with engine.connect() as conn:
        rows = conn.execute(select(papers.c.pk, papers.c.id, papers.c.title, papers.c.summary)
                            .order_by(papers.c.pk)).all()
    return [(r.pk, r.id, paper_text(r.title, r.summary)) for r in rows]


def test_similar_papers_change_as_soon_as_an_embedding_is_replaced_or_added(engine, db_url, tmp_path):
    embedder = fill(engine)
    (_, viewed, viewed_text), (far_pk, far_id, far_text), *_ = paper_ids(engine)
    with app_on(db_url, tmp_path) as client:
        before = similar_on_page(client, viewed)
        assert before == expected_similar(engine, viewed) and far_id not in before
        assert similar_on_page(client, viewed) == before  # served again (from the cache)

        # The far paper is embedded anew, now right beside the viewed one: the next view shows it.
        with engine.begin() as conn:
            conn.execute(delete(paper_embeddings).where(paper_embeddings.c.paper_pk == far_pk))
        embedder.near[far_text] = viewed_text
        assert embed_backlog(engine, embedder, only=[far_pk]) == 1
        after = similar_on_page(client, viewed)
        assert after[0] == far_id and after == expected_similar(engine, viewed)

        # A new paper, embedded beside the viewed one, shows at once too.
        new = {"paper": {"id": "2510.99999", "title": "A paper just submitted", "summary": "Its abstract.",
                         "authors": [], "publishedAt": "2025-10-09T00:00:00.000Z"}}
        ingest(engine, parse_hf_json(json.dumps([new]).encode()))
        new_pk, _, new_text = next(p for p in paper_ids(engine) if p[1] == "2510.99999")
        embedder.near[new_text] = viewed_text
        assert embed_backlog(engine, embedder, only=[new_pk]) == 1
        latest = similar_on_page(client, viewed)
        assert set(latest[:2]) == {far_id, "2510.99999"} and latest == expected_similar(engine, viewed)


def test_two_apps_on_two_databases_in_one_process_keep_their_own_similar_papers(engine, db_url, tmp_path):
    fill(engine, seed=1)
    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    other = open_engine(other_url)
    migrate(other)
    fill(other, seed=2)  # the same papers, under the same pks and seqs, with other vectors
    try:
        (_, viewed, _), *_ = paper_ids(engine)
        (_, same_id, _), *_ = paper_ids(other)
        assert viewed == same_id
        with app_on(db_url, tmp_path / "one") as one, app_on(other_url, tmp_path / "two") as two:
            first, second = similar_on_page(one, viewed), similar_on_page(two, viewed)
            assert first == expected_similar(engine, viewed) and second == expected_similar(other, viewed)
            assert first != second
            assert similar_on_page(one, viewed) == first and similar_on_page(two, viewed) == second
    finally:
        other.dispose()
