"""Recommendations on both databases: they follow the reader's signals, give the right reasons, never
show excluded papers, and come from the per-reader cache while it is fresh.

Papers are embedded by a tiny bag-of-words embedder (each word a fixed random direction): papers on
one topic share words, so they are near each other, with no model to load.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest
from sqlalchemy import insert, select, update

from dailypapers import community, recommend
from dailypapers.recommend import sources
from dailypapers.collections import saved as saved_list
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
    saved_list.toggle_saved(corpus, user, pid("robots", 0))
    saved_list.toggle_saved(corpus, user, pid("robots", 1))
    assert recommend.has_signals(corpus, user)
    found = recommend.for_reader(corpus, user)
    assert [topic_of(r.paper_id) for r in found[:6]] == ["robots"] * 6
    assert {r.paper_id for r in found}.isdisjoint({pid("robots", 0), pid("robots", 1)})
    assert found[0].because.startswith('because you saved "robots study')
    assert found[0].because_paper_id in {pid("robots", 0), pid("robots", 1)}


def saved(engine, user: int, *ids: str) -> None:  # noqa: ANN001
    for paper_id in ids:
        saved_list.toggle_saved(engine, user, paper_id)


def dismiss(engine, user: int, paper_id: str) -> None:  # noqa: ANN001
    """A "not interested" mark, written as the product does (a row and a new signals version)."""
    from dailypapers.store.schema import papers

    with engine.begin() as conn:
        pk = conn.execute(select(papers.c.pk).where(papers.c.id == paper_id)).scalar_one()
        conn.execute(insert(dismissals).values(user_pk=user, paper_pk=pk, created_at=datetime(2025, 2, 1)))
        community.signals_changed(conn, user)


def cached_at(engine, user: int):  # noqa: ANN001, ANN201
    with engine.connect() as conn:
        return conn.execute(select(recommendations.c.computed_at).where(recommendations.c.user_pk == user)).scalar()


def test_a_second_topic_appears_and_dismissed_or_unsaved_papers_change_the_list(corpus):  # noqa: ANN001
    user = reader(corpus)
    saved(corpus, user, pid("robots", 0), pid("robots", 1))
    before = [r.paper_id for r in recommend.for_reader(corpus, user, limit=6)]
    assert {topic_of(p) for p in before} == {"robots"}
    saved(corpus, user, pid("proteins", 0), pid("proteins", 1))
    after = recommend.for_reader(corpus, user, limit=8)
    assert {topic_of(r.paper_id) for r in after} >= {"robots", "proteins"}
    assert any(r.because_paper_id in {pid("proteins", 0), pid("proteins", 1)} for r in after
               if topic_of(r.paper_id) == "proteins")
    dismissed = after[0].paper_id
    dismiss(corpus, user, dismissed)
    assert dismissed not in {r.paper_id for r in recommend.for_reader(corpus, user, limit=300)}
    # Unsaving invalidates the cache: the paper may come back as a recommendation.
    saved_list.toggle_saved(corpus, user, pid("proteins", 0))
    assert pid("proteins", 0) in {r.paper_id for r in recommend.for_reader(corpus, user, limit=300)}


def test_votes_and_collections_give_their_reasons_and_follows_theirs(corpus):  # noqa: ANN001
    user = reader(corpus)
    community.toggle_upvote(corpus, user, pid("language", 2))
    found = recommend.for_reader(corpus, user)
    assert found[0].because == f'because you upvoted "{paper("language", 2)[1].title}"'
    assert found[0].because_paper_id == pid("language", 2)
    follower = reader(corpus, "follower")
    with corpus.begin() as conn:
        conn.execute(insert(follows).values(user_pk=follower, kind="category", target="q-bio.BM",
                                            created_at=datetime(2025, 2, 1)))
        community.signals_changed(conn, follower)
    assert recommend.has_signals(corpus, follower)
    found = recommend.for_reader(corpus, follower)
    assert {topic_of(r.paper_id) for r in found} == {"proteins"} and len(found) == 8
    assert {r.because for r in found} == {"from q-bio.BM, which you follow"}
    assert {r.because_paper_id for r in found} == {None}


def test_a_follow_far_from_the_library_still_holds_one_card_in_every_five(corpus):  # noqa: ANN001
    user = reader(corpus)
    saved(corpus, user, *(pid(topic, i) for topic in ("robots", "language") for i in range(4)))
    with corpus.begin() as conn:
        conn.execute(insert(follows).values(user_pk=user, kind="category", target="q-bio.BM",
                                            created_at=datetime(2025, 2, 1)))
        community.signals_changed(conn, user)
    found = recommend.for_reader(corpus, user, limit=16)
    topics = [topic_of(r.paper_id) for r in found]
    every = recommend.FOLLOWED_EVERY
    assert every == 5 and len(topics) == 16 and topics.count("proteins") == 8, topics
    # By score the eight library-like papers come first; four of them, then a followed paper, ...
    assert [t == "proteins" for t in topics[:10]] == [False] * 4 + [True] + [False] * 4 + [True], topics
    assert set(topics[10:]) == {"proteins"}  # ... and with none of those left, the rest
    assert {r.because for r in found if topic_of(r.paper_id) == "proteins"} == {"from q-bio.BM, which you follow"}


def test_excluded_papers_never_appear(corpus):  # noqa: ANN001
    user = reader(corpus)
    saved(corpus, user, pid("robots", 0))
    community.toggle_upvote(corpus, user, pid("robots", 1))
    dismiss(corpus, user, pid("robots", 2))
    found = {r.paper_id for r in recommend.for_reader(corpus, user, limit=300)}
    assert found.isdisjoint({pid("robots", i) for i in range(3)})
    assert len(found) == 24 - 3
    community.hide_paper(corpus, pid("robots", 3))  # hidden after the list was cached
    assert pid("robots", 3) not in {r.paper_id for r in recommend.for_reader(corpus, user, limit=300)}


def test_readers_with_overlapping_libraries_lift_what_they_saved(corpus):  # noqa: ANN001
    user, other = reader(corpus), reader(corpus, "other")
    saved(corpus, other, pid("robots", 0), pid("language", 5))
    saved(corpus, user, pid("robots", 0))
    ranked = [r.paper_id for r in recommend.for_reader(corpus, user, limit=300)]
    languages = [p for p in ranked if topic_of(p) == "language"]
    assert languages[0] == pid("language", 5)


def test_keywords_lift_the_papers_that_share_the_librarys(corpus, monkeypatch):  # noqa: ANN001
    def keyworded(i: int, keywords: list[str]) -> tuple[str, Paper]:
        where, record = paper("robots", i)
        return where, replace(record, keywords=keywords)

    user = reader(corpus)
    saved(corpus, user, *(pid("robots", i) for i in range(4)))
    without = [p for p in (r.paper_id for r in recommend.for_reader(corpus, user, limit=300)) if topic_of(p) == "robots"]
    second = without[1]
    # The second robots paper shares the library's keywords; the others have keywords of their own.
    ingest(corpus, [keyworded(i, ["tactile sensing"] if i < 4 or pid("robots", i) == second else ["motion planning"])
                    for i in range(8)])
    with corpus.begin() as conn:  # the same signals and embeddings: ranked anew only once the row is gone
        conn.execute(recommendations.delete())
    monkeypatch.setattr(sources, "_corpora", {})  # and the corpus sample read again (kept per process)
    with_keywords = [p for p in (r.paper_id for r in recommend.for_reader(corpus, user, limit=300))
                     if topic_of(p) == "robots"]
    assert with_keywords[0] == second and sorted(with_keywords) == sorted(without)


def test_a_thin_library_leans_on_what_many_readers_saved_and_a_full_one_does_not(corpus, monkeypatch):  # noqa: ANN001
    def proteins(user: int) -> list[str]:
        with corpus.begin() as conn:  # the reader's signals are unchanged: ranked anew once the row is gone
            conn.execute(recommendations.delete())
        return [p for p in (r.paper_id for r in recommend.for_reader(corpus, user, limit=300)) if topic_of(p) == "proteins"]

    thin, full = reader(corpus, "thin"), reader(corpus, "full")
    saved(corpus, thin, pid("robots", 0))
    saved(corpus, full, *(pid("robots", i) for i in range(5)), *(pid("language", i) for i in range(5)))
    thin_before, full_before = proteins(thin), proteins(full)
    popular = thin_before[-1]
    for name in ("a", "b", "c"):  # three readers who saved only that paper: no walk leads to it
        saved(corpus, reader(corpus, name), popular)
    assert proteins(thin)[0] == popular
    assert proteins(full) == full_before
    # Far from the library's nearest papers, it is found for being popular, and says so.
    ranking = sys.modules["dailypapers.recommend.rank"]  # the module, not the package's function
    monkeypatch.setattr(ranking, "LIBRARY_CANDIDATES", 4)
    monkeypatch.setattr(ranking, "SEED_NEIGHBOURS", 4)
    assert proteins(thin) == [popular]
    found = {r.paper_id: r.because for r in recommend.for_reader(corpus, thin, limit=300)}
    assert found[popular] == "saved by many readers"


def test_the_cache_serves_while_fresh_and_is_recomputed_when_signals_or_embeddings_change(corpus):  # noqa: ANN001
    user = reader(corpus)
    saved(corpus, user, pid("robots", 0))
    first = recommend.for_reader(corpus, user)
    made = cached_at(corpus, user)
    assert recommend.for_reader(corpus, user) == first and cached_at(corpus, user) == made  # no recompute
    saved(corpus, user, pid("robots", 1))
    recommend.for_reader(corpus, user)
    assert cached_at(corpus, user) > made
    made = cached_at(corpus, user)
    # A new paper, once embedded, makes the list stale; it is recomputed and may include it.
    ingest(corpus, [paper("robots", 9)])
    assert recommend.for_reader(corpus, user) and cached_at(corpus, user) == made  # not embedded yet
    embed_backlog(corpus, WordsEmbedder())
    found = {r.paper_id for r in recommend.for_reader(corpus, user, limit=300)}
    assert cached_at(corpus, user) > made and pid("robots", 9) in found


def test_new_papers_are_merged_into_a_cached_list_as_a_full_ranking_would_place_them(corpus, monkeypatch):  # noqa: ANN001
    user, other = reader(corpus), reader(corpus, "other")
    saved(corpus, user, pid("robots", 0), pid("robots", 1))
    saved(corpus, other, pid("robots", 0), pid("language", 3))
    recommend.for_reader(corpus, user, limit=300)
    ingest(corpus, [paper("robots", 9), paper("language", 9)])
    embed_backlog(corpus, WordsEmbedder())
    with monkeypatch.context() as patched:  # only the new papers are scored: no ranking of the whole list
        patched.setattr(recommend, "rank", lambda *a: pytest.fail("ranked anew"))
        assert recommend.refresh(corpus) == 1
        merged = recommend.for_reader(corpus, user, limit=300)
    assert [r.paper_id for r in merged].index(pid("robots", 9)) < [r.paper_id for r in merged].index(pid("language", 9))
    with corpus.begin() as conn:  # the same list ranked from nothing
        conn.execute(recommendations.delete())
    ranked = recommend.for_reader(corpus, user, limit=300)
    assert [(r.paper_id, r.because) for r in merged] == [(r.paper_id, r.because) for r in ranked]
    assert [r.score for r in merged] == pytest.approx([r.score for r in ranked], abs=1e-5)


def test_refresh_recomputes_only_stale_rows(corpus):  # noqa: ANN001
    a, b, c = reader(corpus, "a"), reader(corpus, "b"), reader(corpus, "c")
    for user in (a, b):
        saved(corpus, user, pid("language", 0))
        recommend.for_reader(corpus, user)
    saved(corpus, c, pid("language", 1))  # no cached row yet: refresh() leaves it to its first visit
    made = {user: cached_at(corpus, user) for user in (a, b)}
    assert recommend.refresh(corpus) == 0
    saved(corpus, b, pid("language", 1))
    assert recommend.refresh(corpus) == 1
    assert cached_at(corpus, a) == made[a] and cached_at(corpus, b) > made[b]
    assert cached_at(corpus, c) is None
    assert recommend.refresh(corpus, [c]) == 1 and cached_at(corpus, c) is not None
    with corpus.begin() as conn:  # every row stale at once: new embeddings
        conn.execute(update(recommendations).values(embeddings_seq=0))
    assert recommend.refresh(corpus) == 3


def test_the_api_gives_a_readers_recommendations_with_their_api_token(corpus, db_url, tmp_path):  # noqa: ANN001
    from fastapi.testclient import TestClient

    from dailypapers import accounts
    from dailypapers.config import get_settings
    from dailypapers.web.app import create_app

    user = reader(corpus)
    saved(corpus, user, pid("proteins", 3))
    token = accounts.create_api_token(corpus, user)
    settings = get_settings(database_url=db_url, data_dir=tmp_path, base_url="http://testserver",
                            embedding_runtime="off")
    with TestClient(create_app(settings, embedder=None), raise_server_exceptions=False) as client:
        assert client.get("/api/recommendations").status_code == 401
        assert client.get("/api/recommendations", headers={"Authorization": "Bearer nope"}).status_code == 401
        answer = client.get("/api/recommendations?limit=3", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        items = answer.json()
        assert len(items) == 3 and all(topic_of(i["paper"]["id"]) == "proteins" for i in items)
        assert items[0]["becausePaperId"] == pid("proteins", 3)
        assert items[0]["because"].startswith('because you saved "proteins study 3')
        assert client.get("/api/recommendations?limit=0",
                          headers={"Authorization": f"Bearer {token}"}).status_code in (400, 422)


def paper_pk(engine, paper_id: str) -> int:  # noqa: ANN001
    from dailypapers.store.schema import papers

    with engine.connect() as conn:
        return conn.execute(select(papers.c.pk).where(papers.c.id == paper_id)).scalar_one()


def ids_of(engine, pks: list[int]) -> list[str]:  # noqa: ANN001
    from dailypapers.store.schema import papers

    with engine.connect() as conn:
        ids = dict(conn.execute(select(papers.c.pk, papers.c.id).where(papers.c.pk.in_(pks))).all())
    return [ids[pk] for pk in pks]


def test_similar_papers_are_the_nearest_then_what_the_papers_readers_also_saved(corpus):  # noqa: ANN001
    viewed = paper_pk(corpus, pid("robots", 0))
    alone = ids_of(corpus, recommend.similar_to(corpus, viewed, 5))
    assert len(alone) == 5 and {topic_of(p) for p in alone} == {"robots"} and pid("robots", 0) not in alone
    assert recommend.similar_to(corpus, viewed, 5) == recommend.similar_to(corpus, viewed, 5)  # the cache
    before = ids_of(corpus, recommend.similar_to(corpus, viewed, 8))  # the 7 other robots papers, then one
    assert pid("language", 5) not in before

    # A reader saves the viewed paper beside a language paper: it comes right after the paper's own
    # topic at once (the cache is keyed by the versions of the paper's readers).
    saved(corpus, reader(corpus), pid("robots", 0), pid("language", 5))
    lifted = ids_of(corpus, recommend.similar_to(corpus, viewed, 8))
    assert lifted[:7] == before[:7] and lifted[7] == pid("language", 5)
    # Another reader of the paper saves more: their library is read by the walk, recomputed at once.
    other = reader(corpus, "other")
    saved(corpus, other, pid("robots", 0))
    assert pid("proteins", 2) not in ids_of(corpus, recommend.similar_to(corpus, viewed, 9))
    saved(corpus, other, pid("proteins", 2))
    assert set(ids_of(corpus, recommend.similar_to(corpus, viewed, 9))[7:]) == {pid("language", 5), pid("proteins", 2)}
    assert recommend.similar_to(corpus, viewed + 10_000, 5) == []  # no such paper


def test_the_paper_page_shows_the_recommenders_similar_papers(corpus, db_url, tmp_path):  # noqa: ANN001
    import re

    from fastapi.testclient import TestClient

    from dailypapers.config import get_settings
    from dailypapers.web.app import create_app

    saved(corpus, reader(corpus), pid("robots", 0), pid("proteins", 6))
    viewed = paper_pk(corpus, pid("robots", 0))
    settings = get_settings(database_url=db_url, data_dir=tmp_path, base_url="http://testserver",
                            embedding_runtime="off", mail_schedule="off")
    with TestClient(create_app(settings, embedder=None)) as client:
        page = client.get(f"/papers/{pid('robots', 0)}")
    section = page.text.partition('<ul class="similar">')[2].partition("</ul>")[0]
    shown = re.findall(r'href="/papers/([^"]+)"', section)
    assert shown == ids_of(corpus, recommend.similar_to(corpus, viewed, 5)) and len(shown) == 5
