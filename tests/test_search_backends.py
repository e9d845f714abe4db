"""The search backends on both databases: one per engine, upkeep after writes, searches that only read."""

from __future__ import annotations

import hashlib
import re
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tantivy
from sqlalchemy import func, select, update

from dailypapers.domain import Paper
from dailypapers.ingest import ingest
from dailypapers.search import fulltext, vector_index
from dailypapers.search.backends import backend_for, postgres, sqlite, upkeep, vectors_version
from dailypapers.search.filters import Filters
from dailypapers.search.hybrid import search
from dailypapers.search.query import parse_query
from dailypapers.search.text import text_search
from dailypapers.search.vectors import embed_backlog, similarities, vector_search
from dailypapers.store.db import migrate, open_engine
from dailypapers.store.schema import paper_embeddings, papers

OPERATIONS = ("text_top", "nearest", "nearest_each", "exact", "similarities", "vector_value", "following", "index_vectors",
              "upkeep", "rebuild")


class Words:
    """A small deterministic embedder: each word adds a fixed random direction (shared words: near)."""

    name, dim = "test-words", 384

    def embed(self, texts, batch_size: int = 32) -> np.ndarray:  # noqa: ANN001, ARG002
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in zip(out, texts):
            for word in re.findall(r"\w+", text.lower()):
                seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                row += np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            row /= max(float(np.linalg.norm(row)), 1e-6)
        return out


TOPICS = ["protein folding with diffusion", "robot grasping from demonstrations",
          "sparse attention for long text", "weather forecasting with graph networks",
          "speech recognition for low resource languages"]


def paper(i: int, topic: str) -> tuple[str, Paper]:
    return (f"t{i}", Paper(id=f"2503.{i:05d}", title=f"{topic.capitalize()} {i}",
                           summary=f"We study {topic}. Our method improves {topic} benchmarks.",
                           categories=["cs.LG"], published_at=datetime(2025, 3, 1 + i)))


@pytest.fixture
def stored(engine):  # noqa: ANN001
    ingest(engine, [paper(i, t) for i, t in enumerate(TOPICS, 1)])
    embed_backlog(engine, Words())
    upkeep(engine)
    return engine


def pk_of(engine, arxiv_id: str) -> int:  # noqa: ANN001
    with engine.connect() as conn:
        return conn.execute(select(papers.c.pk).where(papers.c.id == arxiv_id)).scalar_one()


def text_pks(engine, q: str) -> list[int]:  # noqa: ANN001
    with engine.connect() as conn:
        return [h.pk for h in text_search(conn, parse_query(q), Filters(), 10)]


def meaning_pks(engine, q: str) -> list[int]:  # noqa: ANN001
    return [pk for pk, _ in vector_search(engine, Words().embed([q])[0], Filters(), 3)]


def retitle(engine, pk: int, title: str) -> None:  # noqa: ANN001
    """A writer that commits new text without indexing it (as another process would)."""
    with engine.begin() as conn:
        conn.execute(update(papers).where(papers.c.pk == pk).values(
            title=title, text_seq=select(func.max(papers.c.text_seq) + 1).scalar_subquery()))


# --- one backend per engine ---------------------------------------------------------------------------------


def test_the_backend_is_chosen_by_the_engines_database(engine):
    backend = backend_for(engine)
    assert backend is (sqlite if engine.dialect.name == "sqlite" else postgres)
    assert backend_for(engine) is backend  # chosen once
    for module in (sqlite, postgres):
        assert all(callable(getattr(module, name)) for name in OPERATIONS)
    with pytest.raises(ValueError, match="no search backend for oracle"):
        backend_for(SimpleNamespace(dialect=SimpleNamespace(name="oracle")))


def test_each_backend_stores_vectors_in_its_own_form(engine):
    vector = np.arange(384, dtype=np.float64) / 384
    value = backend_for(engine).vector_value(vector)
    if engine.dialect.name == "sqlite":
        assert value == vector.astype("<f4").tobytes()
    else:
        assert value.dtype == np.float32 and np.allclose(value, vector)


def test_nearest_each_answers_many_probes_as_nearest_answers_each(stored):
    backend = backend_for(stored)
    probes = Words().embed(["protein folding", "robot grasping demonstrations", "weather graph"])
    with stored.begin() as conn:  # a hidden paper is never a neighbour
        conn.execute(update(papers).where(papers.c.id == "2503.00002").values(hidden=True))
    upkeep(stored)
    with stored.connect() as conn:
        each = backend.nearest_each(conn, probes, [3, 2, 4], "test-words")
        alone = [backend.nearest(conn, q, Filters(), k, "test-words", exact=False) for q, k in zip(probes, [3, 2, 4])]
    assert [[pk for pk, _ in found] for found in each] == [[pk for pk, _ in found] for found in alone]
    assert each[0][0][0] == pk_of(stored, "2503.00001") and [len(found) for found in each] == [3, 2, 4]
    assert pk_of(stored, "2503.00002") not in {pk for found in each for pk, _ in found}
    for found, expected in zip(each, alone):
        assert [c for _, c in found] == pytest.approx([c for _, c in expected], abs=0.01)


# --- upkeep ----------------------------------------------------------------------------------------------


def test_upkeep_makes_a_new_paper_findable_by_text_and_by_meaning(stored):
    ingest(stored, [paper(9, "glacier melt measured from satellites")])
    new = pk_of(stored, "2503.00009")
    assert embed_backlog(stored, Words()) == 1
    upkeep(stored)
    assert text_pks(stored, "glacier")[0] == new
    assert meaning_pks(stored, "satellites measure glacier melt")[0] == new
    page = search(stored, "glacier melt satellites", embedder=Words())
    assert page.hits[0].paper["pk"] == new and page.hits[0].text_score > 0 and page.hits[0].dense_score > 0


def test_upkeep_indexes_text_written_elsewhere(stored):
    pk = pk_of(stored, "2503.00002")
    retitle(stored, pk, "Volcanic ash dispersion")
    indexed = upkeep(stored)
    assert text_pks(stored, "volcanic") == [pk]
    assert indexed > 0  # both keep a Tantivy index (PostgreSQL's on each machine)
    assert upkeep(stored) == 0  # nothing more to do


def test_upkeep_builds_a_missing_vector_file_and_keeps_it_near_the_table(sqlite_engine, tmp_path,
                                                                        monkeypatch):
    ingest(sqlite_engine, [paper(i, t) for i, t in enumerate(TOPICS, 1)])
    embed_backlog(sqlite_engine, Words())
    assert not list((tmp_path / "vectors").glob("*.dpvec"))
    upkeep(sqlite_engine)
    index = vector_index.open_index(sqlite_engine, model=Words.name)
    assert len(index) == len(TOPICS)
    monkeypatch.setattr(vector_index, "REBUILD_AFTER", 1)
    ingest(sqlite_engine, [paper(9, "glacier melt"), paper(10, "coral reef bleaching")])
    embed_backlog(sqlite_engine, Words())
    upkeep(sqlite_engine)  # two rows newer than the file: more than REBUILD_AFTER
    assert len(index) == len(TOPICS) + 2 and len(index._tail.pks) == 0


def test_vectors_version_grows_with_every_embedding(engine):
    with engine.connect() as conn:
        assert vectors_version(conn) == 0
    ingest(engine, [paper(i, t) for i, t in enumerate(TOPICS, 1)])
    embed_backlog(engine, Words())
    with engine.connect() as conn:
        first = vectors_version(conn)
    ingest(engine, [paper(9, "glacier melt")])
    embed_backlog(engine, Words())
    with engine.connect() as conn:
        assert first > 0 and vectors_version(conn) > first


def newest_embedding(engine) -> tuple[int, int]:  # noqa: ANN001
    with engine.connect() as conn:
        return tuple(conn.execute(select(paper_embeddings.c.paper_pk, paper_embeddings.c.seq)
                                  .order_by(paper_embeddings.c.seq.desc()).limit(1)).one())


def test_an_embedding_seq_is_never_given_twice(engine):
    """The newest embedding deleted and its paper embedded again: a new, larger seq (max + 1 gave
    the deleted one's again, which a cache keyed by the largest seq could not tell apart)."""
    ingest(engine, [paper(i, t) for i, t in enumerate(TOPICS, 1)])
    embed_backlog(engine, Words())
    pk, seq = newest_embedding(engine)
    with engine.begin() as conn:
        conn.execute(paper_embeddings.delete().where(paper_embeddings.c.paper_pk == pk))
    with engine.connect() as conn:
        assert vectors_version(conn) < seq
    assert embed_backlog(engine, Words()) == 1
    assert newest_embedding(engine) == (pk, seq + 1)


def test_embedding_seqs_step_over_rows_written_around_the_counter(engine):
    """A bulk load (bench/search.py) writes its seqs itself: the next embedding still lands above."""
    ingest(engine, [paper(i, t) for i, t in enumerate(TOPICS, 1)])
    first, *rest = [pk_of(engine, f"2503.{i:05d}") for i in range(1, len(TOPICS) + 1)]
    store_as = backend_for(engine).vector_value
    with engine.begin() as conn:
        conn.execute(paper_embeddings.insert(), [
            {"paper_pk": pk, "model": Words.name, "vector": store_as(v), "seq": 1000 + pk}
            for pk, v in zip(rest, Words().embed(["bulk"] * len(rest)))])
    assert embed_backlog(engine, Words()) == 1
    assert newest_embedding(engine) == (first, 1000 + max(rest) + 1)


# --- searches only read ----------------------------------------------------------------------------------


@pytest.fixture
def sqlite_engine(tmp_path):  # noqa: ANN001
    from dailypapers.store.db import migrate, open_engine

    eng = open_engine(f"sqlite:///{tmp_path / 'dailypapers.db'}")
    migrate(eng)
    yield eng
    eng.dispose()


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under the folder: (size, mtime)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_search_writes_neither_index(sqlite_engine, tmp_path, monkeypatch):
    engine = sqlite_engine
    ingest(engine, [paper(i, t) for i, t in enumerate(TOPICS, 1)])
    embed_backlog(engine, Words())
    upkeep(engine)
    # Behind the indexes: new text (ingested and retitled elsewhere) and new vectors, more than
    # enough of them for a rebuild.
    monkeypatch.setattr(vector_index, "REBUILD_AFTER", 0)
    ingest(engine, [paper(9, "glacier melt measured from satellites")])
    embed_backlog(engine, Words())
    pk = pk_of(engine, "2503.00003")
    retitle(engine, pk, "Volcanic ash dispersion")
    before = {"fulltext": listing(tmp_path / "fulltext"), "vectors": listing(tmp_path / "vectors")}
    assert before["fulltext"] and before["vectors"]

    new = pk_of(engine, "2503.00009")
    assert pk not in text_pks(engine, "volcanic")  # not indexed yet: the search did not index it
    assert meaning_pks(engine, "glacier melt from satellites")[0] == new  # newer rows are read, not written
    q = Words().embed(["glacier"])[0]
    with engine.connect() as conn:
        assert new in similarities(conn, q, [new], Words.name)
    search(engine, "volcanic glacier", embedder=Words())
    assert {"fulltext": listing(tmp_path / "fulltext"), "vectors": listing(tmp_path / "vectors")} == before

    upkeep(engine)
    assert text_pks(engine, "volcanic") == [pk]
    assert listing(tmp_path / "vectors") != before["vectors"]  # the file was rewritten
    assert len(vector_index.open_index(engine, model=Words.name)) == len(TOPICS) + 1


def test_searchers_see_what_another_process_indexed(sqlite_engine):
    """A reader's handle reloads when the index commits, without writing itself."""
    ingest(sqlite_engine, [paper(i, t) for i, t in enumerate(TOPICS, 1)])
    assert text_pks(sqlite_engine, "volcanic") == []
    pk = pk_of(sqlite_engine, "2503.00001")
    retitle(sqlite_engine, pk, "Volcanic ash dispersion")
    other = fulltext.FullTextIndex(fulltext.index_dir(sqlite_engine))  # another process's handle
    with sqlite_engine.connect() as conn:
        assert other.catch_up(conn, wait=True) > 0
    assert text_pks(sqlite_engine, "volcanic") == [pk]


def test_following_indexes_what_a_long_write_commits(engine):
    with fulltext.following(engine) as indexing:
        ingest(engine, [paper(1, "Volcanic ash dispersion")])
        indexing.poke()
    assert text_pks(engine, "volcanic") == [pk_of(engine, "2503.00001")]


def test_postgresql_keeps_its_full_text_index_under_the_data_dir(postgres_url, tmp_path):
    engine = open_engine(postgres_url, data_dir=tmp_path)
    migrate(engine)
    ingest(engine, [paper(1, "Volcanic ash dispersion")])
    folder = fulltext.index_dir(engine)
    assert folder.parent == tmp_path / "fulltext" and engine.url.database in folder.name
    assert (folder / "meta.json").exists()
    assert fulltext.index_dir(open_engine(postgres_url)) is None  # no data dir: kept in memory
    engine.dispose()


def test_an_index_ahead_of_its_database_is_rebuilt(postgres_url, tmp_path):
    """A database dropped and created again under the same name starts its text_seq afresh: the
    index of the old one (ahead of it) is rebuilt, not trusted."""
    old = fulltext.FullTextIndex(fulltext.index_dir(open_engine(postgres_url, data_dir=tmp_path)))
    writer = old.index.writer(15_000_000, 1)
    for pk in (1, 2, 3):
        writer.add_document(tantivy.Document(pk=pk, seq=1000 + pk, text=["stale volcanic paper"], authors=""))
    writer.commit()
    writer.wait_merging_threads()
    engine = open_engine(postgres_url, data_dir=tmp_path)
    migrate(engine)
    ingest(engine, [paper(1, "Glacier melt")])
    upkeep(engine)
    assert text_pks(engine, "volcanic") == [] and text_pks(engine, "glacier") == [pk_of(engine, "2503.00001")]
    engine.dispose()


def test_a_web_process_follows_papers_written_by_other_machines(postgres_url, tmp_path):
    from fastapi.testclient import TestClient

    from dailypapers import jobs
    from dailypapers.config import get_settings
    from dailypapers.web.app import create_app

    writer = open_engine(postgres_url)
    migrate(writer)
    settings = get_settings(database_url=postgres_url, data_dir=tmp_path, base_url="http://testserver",
                            embedding_runtime="off", mail_schedule=False)
    with TestClient(create_app(settings)) as client:
        follower = client.app.state.index_follower
        assert isinstance(follower, jobs.IndexFollower)
        ingest(writer, [paper(1, "Volcanic ash dispersion")])
        deadline = time.monotonic() + 30
        while "Volcanic ash" not in client.get("/search", params={"q": "volcanic"}).text:
            assert time.monotonic() < deadline, "the follower never indexed the new paper"
            time.sleep(0.2)
    writer.dispose()
