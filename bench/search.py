"""Search latency at scale, beside the database's plain full-text query, in one run.

    python bench/search.py [--database sqlite|postgresql] [--sizes 100000,1000000] [--queries 100]
                           [--json] [--workdir DIR]

For each size: generated papers (words drawn with the frequencies of real abstracts, so common and
rare words behave as in a real corpus) go in through the ingest pipeline; their vectors are generated
(clustered unit vectors, as real embeddings are) and stored as embeddings; the vector index is built
(timed). Then the same real queries (the sample query set and SciFact claims) run through
dailypapers' hybrid search — query embedding with the real model included — and through plain FTS5
(OR of the query's words, ranked by bm25, top 10, in a file of its own) as the floor. Reports p50/p95 of both, index build
time and peak RSS. --workdir keeps the generated databases for the next run.

--database postgresql: the same corpus, vectors and queries in PostgreSQL (pgserver, its data under
the work dir): hybrid search over this machine's Tantivy index (fed from the database) + pgvector's HNSW index, beside the plain tsvector query
(OR of the words, ``ts_rank``, top 10) as the floor, and the HNSW top 10's recall against exact search
(for the real queries' vectors, and for queries drawn from the generated corpus's own distribution).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import resource
import sqlite3
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from dailypapers.domain import Paper
from dailypapers.ingest import ingest
from dailypapers.search import fulltext
from dailypapers.search.backends import upkeep
from dailypapers.search.embedder import load_embedder
from dailypapers.search.hybrid import search
from dailypapers.search.vector_index import rebuild_index
from dailypapers.search.vectors import to_blob
from dailypapers.store.db import migrate, open_engine
from dailypapers.store.schema import paper_embeddings

HERE = Path(__file__).resolve().parent
SCIFACT = HERE.parents[1] / "shared" / "data" / "retrieval" / "scifact"
DIM = 384


def vocabulary() -> tuple[np.ndarray, np.ndarray]:
    counts: Counter = Counter()
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt") as f:
        for line in f:
            doc = json.loads(line)
            counts.update(re.findall(r"[a-z][a-z\-]+", (doc["title"] + " " + doc["text"]).lower()))
    words, freq = zip(*counts.most_common())
    p = np.array(freq, dtype=np.float64)
    return np.array(words), p / p.sum()


def papers(n: int, seed: int = 11):  # noqa: ANN201
    rng = np.random.default_rng(seed)
    words, p = vocabulary()
    cdf = np.cumsum(p)
    draw = lambda k: " ".join(words[np.minimum(np.searchsorted(cdf, rng.random(k)), len(words) - 1)])  # noqa: E731
    for i in range(n):
        title = draw(rng.integers(6, 14)).capitalize()
        summary = draw(rng.integers(120, 200)).capitalize() + "."
        yield f"paper {i}", Paper(id=f"dp-{i:012x}", title=title, summary=summary, source="bench")


TOPICS = np.random.default_rng(3).standard_normal((1000, DIM)).astype(np.float32)
SPREAD = 0.85  # a paper's distance from its cluster's centre


def clustered_vectors(n: int, rng: np.random.Generator, clusters: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors shaped like real embeddings: clusters of ~10 papers (cosine ~0.73 within) inside
    1,000 shared topics (~0.37 between a topic's clusters), unrelated topics ~0. Returns the vectors
    and the clusters' centres. With flat clusters alone, a query whose cluster has fewer than 10
    members fills its top 10 with unrelated vectors at cosine ~0.23, near-ties among a million that
    decide 13% of recall@10 at 1M and that no real corpus has (docs/benchmarks.md)."""
    centres = TOPICS[rng.integers(0, len(TOPICS), clusters)] + rng.standard_normal((clusters, DIM)).astype(np.float32)
    v = centres[rng.integers(0, clusters, n)] + SPREAD * rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True), centres


def generated_queries(count: int = 100) -> np.ndarray:
    """Queries drawn like the corpus: new members of the first chunk's clusters (seed 5, as the builds)."""
    _, centres = clustered_vectors(1, np.random.default_rng(5))
    rng = np.random.default_rng(17)
    q = centres[rng.integers(0, len(centres), count)] + SPREAD * rng.standard_normal((count, DIM)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def postgres_url(workdir: Path) -> str:
    import pgserver

    server = pgserver.get_server(str(workdir / "pg"), cleanup_mode="stop")  # kept for the next run
    return server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)


def build_postgresql(url: str, n: int, model: str, workdir: Path) -> tuple:
    """The corpus in its own PostgreSQL database; the HNSW index built after the rows (timed); the
    full-text index of this machine (under the work dir, as under a web machine's data dir) fed
    from the database (timed)."""
    from sqlalchemy import create_engine, make_url, text

    name = f"bench_{n}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    engine = open_engine(make_url(url).set(database=name).render_as_string(hide_password=False), data_dir=workdir)
    migrate(engine)
    build_s = 0.0
    with engine.connect() as conn:
        have = conn.exec_driver_sql("SELECT count(*) FROM paper_embeddings").scalar()
    if have < n:
        with engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE papers, paper_embeddings CASCADE")
            conn.exec_driver_sql("DROP INDEX IF EXISTS ix_paper_embeddings_vector")
        started = time.perf_counter()
        ingest(engine, papers(n), batch_size=5000, read_ahead=True)
        print(f"  {n:,}: ingested in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        rng = np.random.default_rng(5)
        with engine.begin() as conn:
            pks = [r[0] for r in conn.exec_driver_sql("SELECT pk FROM papers ORDER BY pk")]
            for start in range(0, len(pks), 20_000):
                chunk = pks[start:start + 20_000]
                conn.execute(paper_embeddings.insert(), [
                    {"paper_pk": pk, "model": model, "vector": v, "seq": pk}
                    for pk, v in zip(chunk, clustered_vectors(len(chunk), rng)[0])])
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.exec_driver_sql("SET maintenance_work_mem = '2GB'")
            conn.exec_driver_sql("CREATE INDEX ix_paper_embeddings_vector ON paper_embeddings "
                                 "USING hnsw (vector vector_cosine_ops) WITH (m = 16, ef_construction = 128)")
        build_s = time.perf_counter() - started
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    label_vectors(engine, model)
    started = time.perf_counter()
    upkeep(engine)  # a no-op when the ingest above indexed them already
    return engine, time.perf_counter() - started, build_s


def label_vectors(engine, model: str) -> None:  # noqa: ANN001
    """Name the generated vectors after the model the run searches with. The benchmarks share one
    corpus per work dir: vectors left under another name would turn every search into a miss (and a
    served site would spend the run embedding its backlog)."""
    with engine.begin() as conn:
        conn.execute(paper_embeddings.update().where(paper_embeddings.c.model != model).values(model=model))


def ts_rank_floor(engine, texts: list[str]) -> list[float]:  # noqa: ANN001
    """PostgreSQL's own full text as a user would write it: OR of the words, ranked by ts_rank."""
    times = []
    with engine.connect() as conn:
        for text in texts:
            words = " or ".join(re.findall(r"\w+", text.lower()))
            started = time.perf_counter()
            conn.exec_driver_sql(
                "SELECT pk FROM papers, websearch_to_tsquery('english', %(q)s) q WHERE search_vector @@ q "
                "ORDER BY ts_rank(search_vector, q) DESC LIMIT 10", {"q": words}).fetchall()
            times.append(time.perf_counter() - started)
    return times


def hnsw_recall(engine, embedder, texts: list[str]) -> float:  # noqa: ANN001
    """The HNSW top 10 against exact search, over the queries' own vectors."""
    from dailypapers.search.vectors import exact_search, vector_search

    found = total = 0
    for vector in embedder.embed(texts):
        exact = {pk for pk, _ in exact_search(engine, vector, limit=10, model=embedder.name)}
        found += len(exact & {pk for pk, _ in vector_search(engine, vector, limit=10, model=embedder.name)})
        total += len(exact)
    return round(found / max(total, 1), 3)


def hnsw_recall_generated(engine, model: str, count: int = 100) -> float:  # noqa: ANN001
    """The same over queries drawn like the corpus: new members of the first chunk's clusters.

    The real queries' vectors come from the model, the corpus's from the generator: every paper is
    about as far from them as every other, which no real corpus is, and which no graph index
    handles (recall ~0.4). Queries from the corpus's own distribution are what HNSW is built for.
    """
    from dailypapers.search.vectors import exact_search, vector_search

    found = total = 0
    for vector in generated_queries(count):
        exact = {pk for pk, _ in exact_search(engine, vector, limit=10, model=model)}
        found += len(exact & {pk for pk, _ in vector_search(engine, vector, limit=10, model=model)})
        total += len(exact)
    return round(found / max(total, 1), 3)


def build(workdir: Path, n: int, model: str) -> tuple:  # noqa: ANN001
    engine = open_engine(f"sqlite:///{workdir / f'bench-{n}.db'}")
    migrate(engine)
    with engine.connect() as conn:
        have = conn.exec_driver_sql("SELECT count(*) FROM papers").scalar()
    if have < n:
        started = time.perf_counter()
        report = ingest(engine, papers(n), batch_size=5000, read_ahead=True)
        print(f"  {n:,}: ingested {report.inserted:,} papers in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)
        rng = np.random.default_rng(5)
        with engine.begin() as conn:
            pks = [r[0] for r in conn.exec_driver_sql("SELECT pk FROM papers ORDER BY pk")]
            for start in range(0, len(pks), 20_000):
                chunk = pks[start:start + 20_000]
                vectors, _ = clustered_vectors(len(chunk), rng)
                conn.execute(paper_embeddings.insert(), [
                    {"paper_pk": pk, "model": model, "vector": to_blob(v), "seq": pk}
                    for pk, v in zip(chunk, vectors)])
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    label_vectors(engine, model)
    started = time.perf_counter()
    fulltext.sync(engine)  # a no-op when the ingest above indexed them already
    fulltext_s = time.perf_counter() - started
    started = time.perf_counter()
    rebuild_index(engine, workdir / "vectors", model)
    return engine, fulltext_s, time.perf_counter() - started


def floor_database(workdir: Path, n: int) -> Path:
    """The floor's own SQLite file: the same papers in a plain FTS5 table (porter, as SQLite users would)."""
    path = workdir / f"floor-{n}.db"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    conn.execute("CREATE VIRTUAL TABLE papers_fts USING fts5(title, summary, authors, "
                 "tokenize = 'porter unicode61 remove_diacritics 2')")
    conn.execute("ATTACH DATABASE ? AS source", (str(workdir / f"bench-{n}.db"),))
    conn.execute("INSERT INTO papers_fts (rowid, title, summary, authors) SELECT pk, title, summary, "
                 "(SELECT group_concat(json_extract(value, '$.name'), ', ') FROM json_each(papers.authors)) "
                 "FROM source.papers")
    conn.commit()
    conn.close()
    tmp.rename(path)
    return path


def queries(count: int) -> tuple[list[str], int]:
    """Typed queries (the sample set: 1-10 words), then SciFact claims (sentences); and how many typed."""
    sample = [line.split("\t")[1] for line in (HERE / "sample_queries.tsv").read_text().splitlines()
              if line and not line.startswith("#")]
    with open(SCIFACT / "queries.jsonl") as f:
        claims = [json.loads(line)["text"] for line in f]
    return (sample + claims)[:count], len(sample)


def percentiles(samples: list[float]) -> dict:
    ms = sorted(s * 1000 for s in samples)
    return {"p50_ms": round(statistics.median(ms), 1), "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1)}


def fts_floor(path: Path, texts: list[str]) -> list[float]:
    times = []
    raw = sqlite3.connect(path)
    for text in texts:
        words = re.findall(r"\w+", text.lower())
        expression = " OR ".join(f'"{w}"' for w in words)
        started = time.perf_counter()
        raw.execute("SELECT rowid FROM papers_fts WHERE papers_fts MATCH ? ORDER BY rank LIMIT 10",
                    (expression,)).fetchall()
        times.append(time.perf_counter() - started)
    raw.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/dailypapers-bench-search"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    embedder = load_embedder(cache_dir=args.workdir / "models")
    texts, typed = queries(args.queries)
    embedder.embed(texts[:2])  # warm the model up
    figures: dict = {"database": args.database, "queries": len(texts), "typed_queries": typed}
    postgres = args.database == "postgresql"
    pg_url = postgres_url(args.workdir) if postgres else None
    floor_name = "ts_rank_floor" if postgres else "fts5_floor"
    for n in (int(s) for s in args.sizes.split(",")):
        if postgres:
            engine, fulltext_s, build_s = build_postgresql(pg_url, n, embedder.name, args.workdir)
        else:
            engine, fulltext_s, build_s = build(args.workdir, n, embedder.name)
            floor_path = floor_database(args.workdir, n)
        search(engine, texts[0], embedder=embedder, limit=10)  # load the index
        ours = []
        for text in texts:
            started = time.perf_counter()
            search(engine, text, embedder=embedder, limit=10)
            ours.append(time.perf_counter() - started)
        floor = ts_rank_floor(engine, texts) if postgres else fts_floor(floor_path, texts)
        figures[str(n)] = {"hybrid": percentiles(ours), floor_name: percentiles(floor),
                           "hybrid_typed": percentiles(ours[:typed]), f"{floor_name}_typed": percentiles(floor[:typed]),
                           "hybrid_claims": percentiles(ours[typed:]),
                           f"{floor_name}_claims": percentiles(floor[typed:]),
                           "index_build_s": round(build_s, 1), "fulltext_sync_s": round(fulltext_s, 1),
                           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
        if postgres:
            figures[str(n)]["hnsw_recall_at_10"] = hnsw_recall(engine, embedder, texts)
            figures[str(n)]["hnsw_recall_at_10_generated_queries"] = hnsw_recall_generated(engine, embedder.name)
        engine.dispose()
        r = figures[str(n)]
        label = "ts_rank floor" if postgres else "FTS5 floor"
        print(f"{n:>9,} papers  hybrid p50 {r['hybrid']['p50_ms']:>6} ms  p95 {r['hybrid']['p95_ms']:>6} ms  |  "
              f"{label} p50 {r[floor_name]['p50_ms']:>6} ms  p95 {r[floor_name]['p95_ms']:>6} ms  |  "
              f"index build {r['index_build_s']} s  peak RSS {r['peak_rss_mb']} MB"
              + (f"  HNSW recall@10 {r['hnsw_recall_at_10']} (queries drawn like the corpus: "
                 f"{r['hnsw_recall_at_10_generated_queries']})" if postgres else ""))
        for kind in ("typed", "claims"):
            print(f"{'':>9}  {kind:>6}: hybrid p50 {r['hybrid_' + kind]['p50_ms']:>6} ms  p95 "
                  f"{r['hybrid_' + kind]['p95_ms']:>6} ms  |  {label} p50 {r[f'{floor_name}_{kind}']['p50_ms']:>6} ms"
                  f"  p95 {r[f'{floor_name}_{kind}']['p95_ms']:>6} ms")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
