"""Recommendations on both databases: they follow the reader's signals, give the right reasons, never
show excluded papers, and come from the per-reader cache while it is fresh.

Papers are embedded by a tiny bag-of-words embedder (each word a fixed random direction): papers on
one topic share words, so they are near each other, with no model to load.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import numpy as np
import pytest
from sqlalchemy import insert, select, update

from dailypapers import community, recommend
from dailypapers.domain import Paper
from dailypapers.ingest import ingest
from dailypapers.search.backends import upkeep
from dailypapers.search.vectors import embed_backlog
from dailypapers.store.schema import dismissals, follows, recommendations, users

TOPICS = {
    "robots": "robot grasping manipulation arm gripper",
    "language": "language model tokens transformer text",
    "proteins": "protein folding structure residues biology",
}


class WordsEmbedder:
    """Each word a fixed random unit vector; a text the normalized sum of its words'."""

    name, dim = "test-words", 384

    def embed(self, texts, batch_size: int = 32) -> np.ndarray:  # noqa: ANN001, ARG002
        out = []
        for t in texts:
            v = sum(self._word(w) for w in t.lower().split())
            out.append(v / np.linalg.norm(v))
        return np.stack(out).astype(np.float32)

    @staticmethod
    def _word(word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
        return np.random.default_rng(seed).standard_normal(384)


def paper(topic: str, i: int) -> tuple[str, Paper]:
    words = TOPICS[topic].split()
    title = f"{topic} study {i}: " + " ".join(words[j % len(words)] for j in range(i, i + 3))
    category = {"robots": "cs.RO", "language": "cs.CL", "proteins": "q-bio.BM"}[topic]
    return f"{topic} {i}", Paper(id=f"2501.{ {'robots': 1, 'language': 2, 'proteins': 3}[topic]}{i:04d}",
                                 title=title, summary=TOPICS[topic], categories=[category],
                                 published_at=datetime(2025, 1, 1 + i, 12), authors=[])


def pid(topic: str, i: int) -> str:
    return paper(topic, i)[1].id


@pytest.fixture
def corpus(engine):  # noqa: ANN001
    ingest(engine, [paper(t, i) for t in TOPICS for i in range(8)])
    embed_backlog(engine, WordsEmbedder())
    upkeep(engine)
    return engine


def reader(engine, name: str = "reader") -> int:  # noqa: ANN001
    with engine.begin() as conn:
        return conn.execute(insert(users).values(username=name, created_at=datetime(2025, 1, 1))
                            .returning(users.c.pk)).scalar_one()


def topic_of(paper_id: str) -> str:
    return {"1": "robots", "2": "language", "3": "proteins"}[paper_id[5]]


def test_recommendations_follow_the_signals(corpus):  # noqa: ANN001
    user = reader(corpus)
    assert recommend.for_reader(corpus, user) == []
    assert not recommend.has_signals(corpus, user)
    community.toggle_saved(corpus, user, pid("robots", 0))
    community.toggle_saved(corpus, user, pid("robots", 1))
    assert recommend.has_signals(corpus, user)
    found = recommend.for_reader(corpus, user)
    assert [topic_of(r.paper_id) for r in found[:6]] == ["robots"] * 6
    assert {r.paper_id for r in found}.isdisjoint({pid("robots", 0), pid("robots", 1)})
    assert found[0].because.startswith('because you saved "robots study')
    assert found[0].because_paper_id in {pid("robots", 0), pid("robots", 1)}
