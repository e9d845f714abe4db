"""Semantic search storage on both databases: embedding the backlog, nearest neighbours, the SQLite index.

The text tests embed twenty real abstracts (the seed papers) with the real ONNX embedder; the
scale tests store a few thousand generated vectors directly.
"""

from __future__ import annotations

import json
from datetime import date, datetime

import numpy as np
import pytest
from sqlalchemy import delete, func, select, update

from dailypapers.domain import Deletion, Paper
from dailypapers.ingest import ingest
from dailypapers.search import vector_index, vectors
from dailypapers.search.backends import backend_for, upkeep
from dailypapers.search.backends import sqlite as sqlite_backend
from dailypapers.search.filters import Filters
from dailypapers.search.vector_index import open_index, rebuild_index
from dailypapers.search.vectors import embed_backlog, exact_search, stored_vectors, vector_search
from dailypapers.store.db import migrate, open_engine
from dailypapers.store.schema import paper_embeddings, papers

N = 20

# A paraphrase of an abstract, sharing few of its words, and the seed paper (1-based rank) it describes.
PARAPHRASES = [
    ("an evaluation suite in which game-playing AI must cope with very different squads of monsters in "
     "competitive tournament battles, with logs of human matches and baselines from LLM agents to "
     "self-play", 1),
    ("how much demonstration data, across how many environments and objects, a robot arm needs before its "
     "learned controller works in unseen places; a power law", 8),
    ("preference fine-tuning of chat models: the reward hidden inside DPO transfers worse to shifted prompts "
     "than a separately trained scorer", 20),
]


class Counting:
    """An embedder wrapper that counts the texts it embeds and remembers vectors (the model is slow)."""

    def __init__(self, inner, name: str | None = None):  # noqa: ANN001
        self.inner, self.name, self.dim = inner, name or inner.name, inner.dim
        self.texts: list[str] = []

    def embed(self, texts, batch_size: int = 32) -> np.ndarray:  # noqa: ANN001
        self.texts += list(texts)
        missing = [t for t in texts if t not in _memo]
        if missing:
            for t, v in zip(missing, self.inner.embed(missing, batch_size=batch_size)):
                _memo[t] = v
        return np.stack([_memo[t] for t in texts])


_memo: dict[str, np.ndarray] = {}


@pytest.fixture(scope="module")
def real_embedder(tmp_path_factory):  # noqa: ANN001
    from dailypapers.search.embedder import load_embedder

    return load_embedder(cache_dir=tmp_path_factory.mktemp("models"))


@pytest.fixture
def embedder(real_embedder):  # noqa: ANN001
    return Counting(real_embedder)


@pytest.fixture(scope="module")
def seed(shared_data) -> list[dict]:  # noqa: ANN001
    return json.loads((shared_data / "seed" / "seed_papers.json").read_text())["papers"][:N]


def records(seed: list[dict], only=None) -> list:  # noqa: ANN001
    """Seed paper i (1-based) as 2501.000ii: published 2025-01-i, cs.RO when i is even, else cs.LG."""
    out = []
    for i, p in enumerate(seed, 1):
        if only is not None and i not in only:
            continue
        code = next((u for u in p["urls"] if "github.com" in u), None)
        out.append((f"seed {i}", Paper(
            id=f"2501.{i:05d}", title=p["title"], summary=p["abstract"],
            categories=["cs.RO"] if i % 2 == 0 else ["cs.LG", "cs.AI"],
            published_at=datetime(2025, 1, i, 12), github_repo=code)))
    return out


def pk_of(engine) -> dict[int, int]:  # noqa: ANN001
    """Seed rank -> paper pk."""
    with engine.connect() as conn:
        return {int(pid.split(".")[1]): pk for pid, pk in conn.execute(select(papers.c.id, papers.c.pk))}


def same(found: list, expected: list) -> bool:
    """The same papers in the same order, with the same similarities (to float32 rounding)."""
    return ([pk for pk, _ in found] == [pk for pk, _ in expected]
            and np.allclose([s for _, s in found], [s for _, s in expected], atol=1e-5))


def embedding_rows(engine) -> list:  # noqa: ANN001
    with engine.connect() as conn:
        e = paper_embeddings.c
        return conn.execute(select(e.paper_pk, e.model, e.seq).order_by(e.paper_pk)).all()


@pytest.fixture
def sqlite_engine(tmp_path):  # noqa: ANN001
    eng = open_engine(f"sqlite:///{tmp_path / 'dailypapers.db'}")
    migrate(eng)
    yield eng
    eng.dispose()


# --- embedding the backlog -----------------------------------------------------------------------------


def test_embed_backlog_embeds_every_paper_once_with_the_real_model(engine, real_embedder, seed):
    ingest(engine, records(seed))
    assert embed_backlog(engine, real_embedder, batch_size=8) == N
    rows = embedding_rows(engine)
    assert len(rows) == N and {model for _, model, _ in rows} == {real_embedder.name}
    assert len({seq for *_, seq in rows}) == N  # every write has its own place in the order
    with engine.connect() as conn:
        stored = stored_vectors(conn, [pk for pk, *_ in rows])
    matrix = np.stack(list(stored.values()))
    assert matrix.shape == (N, 384) and matrix.dtype == np.float32
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-4)
    assert embed_backlog(engine, real_embedder) == 0  # nothing is missing any more


def test_an_interrupted_run_resumes_and_embeds_each_paper_exactly_once(engine, embedder, seed):
    ingest(engine, records(seed))

    class Stop(Exception):
        pass

    def stop_after_first_batch(n: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        embed_backlog(engine, embedder, batch_size=8, on_progress=stop_after_first_batch)
    assert len(embedding_rows(engine)) == 8  # the first batch was committed
    assert embed_backlog(engine, embedder, batch_size=8) == N - 8
    assert len(embedder.texts) == N and len(set(embedder.texts)) == N  # nothing embedded twice
    assert len(embedding_rows(engine)) == N


def test_hidden_papers_are_not_embedded_and_other_models_are_replaced(engine, embedder, real_embedder, seed):
    ingest(engine, records(seed))
    ingest(engine, [("gone", Deletion("2501.00003"))])
    other = Counting(real_embedder, name="some-older-model")
    assert embed_backlog(engine, other) == N - 1
    assert embed_backlog(engine, embedder) == N - 1  # every row was of another model
    rows = embedding_rows(engine)
    assert {model for _, model, _ in rows} == {embedder.name}
    assert pk_of(engine)[3] not in {pk for pk, *_ in rows}


def test_a_paper_that_changes_while_its_batch_is_embedded_waits_for_the_next_run(engine, embedder, seed):
    ingest(engine, records(seed, only={1, 2}))
    pks = pk_of(engine)

    class Meddling(Counting):
        def embed(self, texts, batch_size=32):  # noqa: ANN001
            with engine.begin() as conn:  # an ingest rewrites paper 2 meanwhile
                conn.execute(update(papers).where(papers.c.pk == pks[2])
                             .values(changed_at=datetime(2030, 1, 1)))
            return super().embed(texts, batch_size)

    assert embed_backlog(engine, Meddling(embedder.inner, embedder.name)) == 1
    assert embed_backlog(engine, embedder) == 1  # the next run picks it up


# --- search ------------------------------------------------------------------------------------------------


@pytest.fixture
def embedded(engine, embedder, seed):  # noqa: ANN001
    ingest(engine, records(seed))
    embed_backlog(engine, embedder)
    return engine


def _query(embedder, text: str) -> np.ndarray:  # noqa: ANN001
    return embedder.embed([text])[0]


@pytest.mark.parametrize("paraphrase, rank", PARAPHRASES)
def test_a_paraphrase_finds_its_paper_first(embedded, embedder, paraphrase, rank):
    found = vector_search(embedded, _query(embedder, paraphrase), Filters(), 5)
    assert found[0][0] == pk_of(embedded)[rank]
    assert 0.3 < found[0][1] <= 1.0 and found[0][1] > found[1][1]
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    assert same(found, exact_search(embedded, _query(embedder, paraphrase), Filters(), 5))


@pytest.mark.parametrize("filters, ranks", [
    (Filters(categories=("cs.RO",)), set(range(2, N + 1, 2))),
    (Filters(categories=("cs",)), set(range(1, N + 1))),
    (Filters(since=date(2025, 1, 15)), set(range(15, N + 1))),
    (Filters(since=date(2025, 1, 3), until=date(2025, 1, 3)), {3}),
    (Filters(since=date(2026, 1, 1)), set()),
])
def test_filters_decide_which_papers_are_found(embedded, embedder, filters, ranks):
    pks = pk_of(embedded)
    q = _query(embedder, PARAPHRASES[0][0])
    found = vector_search(embedded, q, filters, 50)
    assert {pk for pk, _ in found} == {pks[r] for r in ranks}  # every allowed paper, none other
    assert same(found, exact_search(embedded, q, filters, 50))
    assert same(vector_search(embedded, q, filters, 3), found[:3])


def test_has_code_filter(embedded, embedder, seed):
    pks = pk_of(embedded)
    with_code = {pks[i] for i, p in enumerate(seed, 1) if any("github.com" in u for u in p["urls"])}
    found = vector_search(embedded, _query(embedder, "robot learning"), Filters(has_code=True), 50)
    assert with_code and {pk for pk, _ in found} == with_code


def test_hidden_papers_are_never_found(embedded, embedder):
    paraphrase, rank = PARAPHRASES[0]
    ingest(embedded, [("gone", Deletion(f"2501.{rank:05d}"))])
    q = _query(embedder, paraphrase)
    for filters in (Filters(), Filters(categories=("cs.LG",))):
        found = vector_search(embedded, q, filters, 50)
        assert pk_of(embedded)[rank] not in {pk for pk, _ in found}
        assert len(found) == (N - 1 if not filters.active else N // 2 - 1)


def test_deleted_and_not_yet_re_embedded_papers_are_not_found(embedded, embedder):
    """Ingest drops a paper's embedding when its text changes: it is unfindable until embedded again."""
    paraphrase, rank = PARAPHRASES[1]
    pk = pk_of(embedded)[rank]
    q = _query(embedder, paraphrase)
    if embedded.dialect.name == "sqlite":
        vector_search(embedded, q, Filters(), 5)  # builds the index file with this paper in it
    with embedded.begin() as conn:
        conn.execute(delete(paper_embeddings).where(paper_embeddings.c.paper_pk == pk))
    assert pk not in {p for p, _ in vector_search(embedded, q, Filters(), 50)}
    assert embed_backlog(embedded, embedder) == 1
    assert vector_search(embedded, q, Filters(), 1)[0][0] == pk


def test_no_embeddings_no_results(engine, embedder, seed):
    ingest(engine, records(seed))
    assert vector_search(engine, np.ones(384, np.float32), Filters(), 10) == []


# --- the SQLite index file ---------------------------------------------------------------------------------


def test_the_sqlite_index_sees_papers_embedded_after_it_was_built(sqlite_engine, embedder, seed, tmp_path):
    ingest(sqlite_engine, records(seed, only=set(range(1, N))))  # all but the last
    embed_backlog(sqlite_engine, embedder)
    index = rebuild_index(sqlite_engine, tmp_path / "vectors", embedder.name)
    assert len(index) == N - 1
    ingest(sqlite_engine, records(seed, only={N}))
    assert embed_backlog(sqlite_engine, embedder) == 1
    paraphrase, rank = PARAPHRASES[2]
    assert rank == N
    q = _query(embedder, paraphrase)
    before = vector_search(sqlite_engine, q, Filters(), 10, index=index)
    assert before[0][0] == pk_of(sqlite_engine)[N]  # from the rows newer than the file
    assert len(index) == N - 1 and len(index._tail.pks) == 1

    rebuilt = rebuild_index(sqlite_engine, tmp_path / "vectors", embedder.name)
    assert len(rebuilt) == N and len(rebuilt._tail.pks) == 0
    assert same(vector_search(sqlite_engine, q, Filters(), 10, index=rebuilt), before)
    # The first index object notices the new file (as another worker process would) and reloads it.
    assert same(vector_search(sqlite_engine, q, Filters(), 10, index=index), before)
    assert len(index) == N and index.seq == rebuilt.seq


def test_the_default_index_lives_beside_the_database_and_is_built_by_upkeep(sqlite_engine, embedder, seed,
                                                                            tmp_path):
    ingest(sqlite_engine, records(seed))
    embed_backlog(sqlite_engine, embedder)
    q = _query(embedder, PARAPHRASES[0][0])
    found = vector_search(sqlite_engine, q, Filters(), 10)  # no file yet: the table's rows are scored
    assert not list((tmp_path / "vectors").glob("*.dpvec")) and len(found) == 10
    upkeep(sqlite_engine)
    files = list((tmp_path / "vectors").glob("*.dpvec"))
    assert len(files) == 1 and files[0].name.startswith("dailypapers.")
    assert open_index(sqlite_engine).path == files[0]
    assert same(vector_search(sqlite_engine, q, Filters(), 10), found)


def test_exact_and_index_agree_on_the_top_ten_for_every_title(sqlite_engine, embedder, seed, tmp_path):
    ingest(sqlite_engine, records(seed))
    embed_backlog(sqlite_engine, embedder)
    index = rebuild_index(sqlite_engine, tmp_path / "vectors", embedder.name)
    for p in seed:
        q = _query(embedder, p["title"])
        assert same(vector_search(sqlite_engine, q, Filters(), 10, index=index),
                    exact_search(sqlite_engine, q, Filters(), 10))


def test_a_broken_index_file_is_rebuilt_by_upkeep(sqlite_engine, embedder, seed, tmp_path):
    ingest(sqlite_engine, records(seed))
    embed_backlog(sqlite_engine, embedder)
    index = rebuild_index(sqlite_engine, tmp_path / "vectors", embedder.name)
    index.path.write_bytes(b"not an index")
    vector_index._open.clear()  # a fresh process
    q = _query(embedder, PARAPHRASES[0][0])
    # A search answers from the table's rows and leaves the file alone; upkeep rewrites it.
    assert same(vector_search(sqlite_engine, q, Filters(), 3), exact_search(sqlite_engine, q, Filters(), 3))
    assert index.path.read_bytes() == b"not an index"
    upkeep(sqlite_engine)
    assert len(open_index(sqlite_engine)) == N
    assert same(vector_search(sqlite_engine, q, Filters(), 3), exact_search(sqlite_engine, q, Filters(), 3))


# --- many vectors: the int8 candidates and the filter strategies --------------------------------------------


def _store_generated(engine, n: int, seed: int = 5) -> np.ndarray:  # noqa: ANN001
    """n papers (1 in 50 in q-bio.NC, 1 in 10 hidden) with clustered unit vectors stored directly."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(4, n // 100), 384)).astype(np.float32)
    x = (centers[rng.integers(0, len(centers), n)] * 0.35
         + rng.standard_normal((n, 384)).astype(np.float32) * 0.2)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ingest(engine, [(f"g{i}", Paper(id=f"2402.{i:05d}", title=f"generated {i}", summary="generated",
                                    categories=["q-bio.NC"] if i % 50 == 0 else ["cs.LG"],
                                    published_at=datetime(2024, 2, 1 + i % 28)))
                    for i in range(1, n + 1)], batch_size=5000)
    ingest(engine, [(f"h{i}", Deletion(f"2402.{i:05d}")) for i in range(7, n + 1, 10)])
    pks = pk_of(engine)
    with engine.begin() as conn:
        value = (lambda v: v.tobytes()) if engine.dialect.name == "sqlite" else (lambda v: v)
        conn.execute(paper_embeddings.insert(), [
            {"paper_pk": pks[i], "model": "generated", "vector": value(x[i - 1]), "seq": i}
            for i in range(1, n + 1) if i % 10 != 7])
    return x


def test_many_vectors_index_matches_exact_search(engine, monkeypatch):
    x = _store_generated(engine, 3000)
    backend = backend_for(engine)
    monkeypatch.setattr(backend, "MIN_CANDIDATES", 20)  # make the int8 stage choose
    rng = np.random.default_rng(9)
    queries = [x[i] + rng.standard_normal(384).astype(np.float32) * 0.05 for i in rng.integers(0, len(x), 25)]
    filterings = (Filters(), Filters(categories=("q-bio.NC",)), Filters(since=date(2024, 2, 27)))
    expected = [[exact_search(engine, q, f, 10, model="generated") for f in filterings] for q in queries]
    # SQLite: 3 rounds post-filter the candidates; 1 round sends selective filters to the pre-filter.
    for rounds in (3, 1) if engine.dialect.name == "sqlite" else (3,):
        monkeypatch.setattr(backend, "POST_FILTER_ROUNDS", rounds, raising=False)
        recalls = []
        for q, answers in zip(queries, expected):
            for filters, exact in zip(filterings, answers):
                found = vector_search(engine, q, filters, 10, model="generated")
                assert len(found) == len(exact) == 10
                recalls.append(len({pk for pk, _ in found} & {pk for pk, _ in exact}) / 10)
        # SQLite's int8 scan + exact re-rank is exact in practice; pgvector's HNSW is approximate.
        assert np.mean(recalls) >= (0.99 if engine.dialect.name == "sqlite" else 0.9)


def test_int8_scores_without_the_re_rank_stay_close_to_exact(sqlite_engine, monkeypatch):
    """``exact=False`` (the hybrid search's dense side): same papers nearly always, cosines within 0.01,
    the filters still applied (hidden papers, a 2% category, a date)."""
    x = _store_generated(sqlite_engine, 3000)
    rng = np.random.default_rng(4)
    queries = [x[i] + rng.standard_normal(384).astype(np.float32) * 0.05 for i in rng.integers(0, len(x), 25)]
    recalls = []
    for rounds in (3, 1):  # post-filtering, and the pre-filter for selective filters
        monkeypatch.setattr(sqlite_backend, "POST_FILTER_ROUNDS", rounds)
        for q in queries:
            for filters in (Filters(), Filters(categories=("q-bio.NC",)), Filters(since=date(2024, 2, 27))):
                exact = dict(exact_search(sqlite_engine, q, filters, 10, model="generated"))
                found = vector_search(sqlite_engine, q, filters, 10, model="generated", exact=False)
                assert len(found) == 10 and [s for _, s in found] == sorted((s for _, s in found), reverse=True)
                truth = dict(exact_search(sqlite_engine, q, filters, 3000, model="generated"))
                assert all(pk in truth and abs(score - truth[pk]) < 0.01 for pk, score in found)
                recalls.append(len(set(dict(found)) & set(exact)) / 10)
    assert np.mean(recalls) >= 0.95


def test_a_reembedded_paper_is_scored_by_its_new_vector(sqlite_engine, tmp_path):
    x = _store_generated(sqlite_engine, 500)
    index = rebuild_index(sqlite_engine, tmp_path / "vectors", "generated")
    pk = pk_of(sqlite_engine)[1]
    with sqlite_engine.begin() as conn:  # as after a title change and `dailypapers embed`
        conn.execute(delete(paper_embeddings).where(paper_embeddings.c.paper_pk == pk))
        next_seq = select(func.max(paper_embeddings.c.seq) + 1).scalar_subquery()
        conn.execute(paper_embeddings.insert().values(paper_pk=pk, model="generated",
                                                      vector=(-x[0]).tobytes(), seq=next_seq))
    assert vector_search(sqlite_engine, x[0], Filters(), 10, index=index)[0][0] != pk
    assert vector_search(sqlite_engine, -x[0], Filters(), 1, index=index) == [(pk, pytest.approx(1.0, 1e-5))]


def test_upkeep_rebuilds_a_file_that_fell_far_behind(sqlite_engine, tmp_path, monkeypatch):
    x = _store_generated(sqlite_engine, 300)
    index = rebuild_index(sqlite_engine, tmp_path / "vectors", "generated")
    built = index.header["built_at"]
    pks = pk_of(sqlite_engine)
    with sqlite_engine.begin() as conn:  # embeddings for the ten hidden-then-shown papers, after the build
        shown = [pks[i] for i in range(7, 107, 10)]
        conn.execute(update(papers).where(papers.c.pk.in_(shown)).values(hidden=False))
        conn.execute(paper_embeddings.insert(), [{"paper_pk": pks[i], "model": "generated",
                                                  "vector": x[i - 1].tobytes(), "seq": 1000 + i}
                                                 for i in range(7, 107, 10)])
    monkeypatch.setattr(vector_index, "REBUILD_AFTER", 5)
    found = vector_search(sqlite_engine, x[16], Filters(), 3, index=index)
    assert found[0][0] == pks[17]
    assert index.header["built_at"] == built and len(index._tail.pks) == 10  # a search only reads
    index.keep_up()  # what upkeep does for the default file
    assert same(vector_search(sqlite_engine, x[16], Filters(), 3, index=index), found)
    assert index.header["built_at"] > built and len(index) == 280 and len(index._tail.pks) == 0


def test_upkeep_rebuilds_a_file_that_fell_behind_a_few_rows_at_a_time(sqlite_engine, tmp_path, monkeypatch):
    """The rows newer than the file count together, however many searches and upkeeps came in between."""
    x = _store_generated(sqlite_engine, 300)
    index = rebuild_index(sqlite_engine, tmp_path / "vectors", "generated")
    built = index.header["built_at"]
    pks = pk_of(sqlite_engine)
    monkeypatch.setattr(vector_index, "REBUILD_AFTER", 5)
    for batch, rewritten in ((range(7, 37, 10), False), (range(37, 67, 10), True)):  # 3 rows, then 3 more
        with sqlite_engine.begin() as conn:
            conn.execute(update(papers).where(papers.c.pk.in_([pks[i] for i in batch])).values(hidden=False))
            conn.execute(paper_embeddings.insert(), [{"paper_pk": pks[i], "model": "generated",
                                                      "vector": x[i - 1].tobytes(), "seq": 1000 + i}
                                                     for i in batch])
        last = batch[-1]
        assert vector_search(sqlite_engine, x[last - 1], Filters(), 1, index=index)[0][0] == pks[last]
        assert index.header["built_at"] == built  # a search only reads
        index.keep_up()
        assert (index.header["built_at"] > built) is rewritten
    assert len(index) == 276 and len(index._tail.pks) == 0


def test_reindex_on_either_database_keeps_the_results(embedded, embedder):
    q = _query(embedder, PARAPHRASES[0][0])
    before = vector_search(embedded, q, Filters(), 10)
    backend_for(embedded).rebuild(embedded)
    assert same(vector_search(embedded, q, Filters(), 10), before)


# --- the commands ------------------------------------------------------------------------------------------


def test_embed_and_reindex_commands(tmp_path, monkeypatch, real_embedder, seed):
    import typer
    from typer.testing import CliRunner

    from dailypapers.cli.embed import embed, reindex

    app = typer.Typer()
    app.command()(embed)
    app.command()(reindex)
    runner = CliRunner()
    for name in ("DAILYPAPERS_DATABASE_URL", "DAILYPAPERS_EMBEDDING_MODEL", "DAILYPAPERS_EMBEDDING_RUNTIME",
                 "DAILYPAPERS_EMBEDDING_DEVICE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAILYPAPERS_DATA_DIR", str(tmp_path))
    loads = []

    def load_embedder(model=None, runtime="onnx", device="cpu", cache_dir=None):  # noqa: ANN001, ANN202
        loads.append((model, runtime, device, cache_dir))
        return Counting(real_embedder)  # the model loaded once for the module

    monkeypatch.setattr("dailypapers.search.embedder.load_embedder", load_embedder)
    engine = open_engine(f"sqlite:///{tmp_path / 'dailypapers.db'}")
    migrate(engine)

    result = runner.invoke(app, ["reindex"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("full-text index rebuilt: 0 papers in ")
    assert "no vector index: there are no embeddings yet" in result.output

    ingest(engine, records(seed))
    result = runner.invoke(app, ["embed", "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{N} papers embedded with {real_embedder.name} in ")
    assert result.output.rstrip().endswith(f"vector index: {N} vectors")
    assert loads == [(None, "onnx", "cpu", tmp_path / "models")]
    assert len(list((tmp_path / "vectors").glob("dailypapers.*.dpvec"))) == 1

    result = runner.invoke(app, ["embed", "--runtime", "torch", "--device", "cuda"])
    assert result.exit_code == 0 and result.output.startswith("0 papers embedded")
    assert loads[-1][1:3] == ("torch", "cuda")

    result = runner.invoke(app, ["reindex"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"full-text index rebuilt: {N} papers in ")
    assert f"\nvector index rebuilt: {N} vectors of {real_embedder.name} in " in result.output
    engine.dispose()


def test_similarities_match_the_stored_vectors(embedded, embedder):
    q = _query(embedder, "a robot that learns to fold clothes")
    with embedded.connect() as conn:
        stored = vectors.stored_vectors(conn, list(pk_of(embedded).values()), model=embedder.name)
        found = vectors.similarities(conn, q, list(stored)[:40] + [10**9], embedder.name)
    assert set(found) == set(list(stored)[:40])  # a paper without a vector has no similarity
    for pk, score in found.items():
        assert abs(score - float(np.dot(stored[pk], q / np.linalg.norm(q)))) < 0.01


def test_similarities_of_no_papers_or_of_papers_without_vectors_are_empty(embedded, embedder):
    """A search whose text-only candidates have no vector asks for none (it once failed on SQLite)."""
    q = _query(embedder, "a robot that learns to fold clothes")
    with embedded.connect() as conn:
        assert vectors.similarities(conn, q, [], embedder.name) == {}
        assert vectors.similarities(conn, q, [10**9], embedder.name) == {}
        assert vectors.similarities(conn, q, [], embedder.name, present=True) == {}
