"""PostgreSQL's text side, and the remedies for it, measured for speed and for quality in one run.

    python bench/pg_text.py speed [--papers 100000] [--sides ts_rank,gin_bounded,tantivy] [--workdir DIR] [--json]
    python bench/pg_text.py quality [--split test] [--workdir DIR] [--json]
    python bench/pg_text.py recall [--papers 100000] [--workdir DIR] [--json]

The text sides compared (each as the hybrid search's text side, through its own path, and alone):
- ``ts_rank``: PostgreSQL's text side before issue 13 (bench/pg_tsrank.py): every word's ts_rank x idf over every
  paper matching any word, sorted.
- ``gin_bounded``: the same score over a LIMIT-bounded candidate set taken from the GIN index with
  the query's rarest words only: words are taken rarest first (their document frequency from the
  planner's statistics) while the papers they match stay within ``budget`` (a share of the table),
  and at most that many candidates are read; they are then ranked by every word.
- ``tantivy``: a Tantivy index on this machine fed from the database's ``papers`` table and
  ``text_seq`` (search/fulltext.py, unchanged, with its folder given instead of derived from a
  SQLite file): BM25 with block-max WAND.
- ``floor`` (speed only): the plain ``ts_rank`` query, OR of the words, as in bench/search.py.

``speed`` runs on the database bench/search.py builds (``bench_<papers>`` in the pgserver under
``--workdir``; run ``bench/search.py --database postgresql --sizes N`` first). It also profiles the
hybrid search: time per SQL statement kind (from SQLAlchemy's cursor events), query embedding, and
the rest (Python). ``quality`` loads SciFact into a database of its own (``scifact``: ingest and
embeddings through the product's path) and reports nDCG@10 of each text side alone and in the
hybrid fusion. SciFact has 5,183 papers: a budget of 1% there reads ~50 candidates, as 1% does at
any size, so the bounded side's loss is measured at the share of the table it reads at scale.
pg_trgm is not among pgserver's extensions (only plpgsql and vector): see bench/pg_trgm.py.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from search import postgres_url, queries  # noqa: E402

from dailypapers.search import fulltext, fulltext_search, hybrid  # noqa: E402
import pg_tsrank as pg_text  # noqa: E402
from dailypapers.search.embedder import load_embedder  # noqa: E402
from dailypapers.search.filters import Filters  # noqa: E402
from dailypapers.search.query import parse_query  # noqa: E402
from dailypapers.search.text import TextHit  # noqa: E402
from dailypapers.store.db import migrate, open_engine  # noqa: E402

SCIFACT = HERE.parents[1] / "shared" / "data" / "retrieval" / "scifact"
BUDGET = 0.01  # gin_bounded: candidates read, as a share of the table


# --- the text sides -------------------------------------------------------------------------------


def _table_size(conn: Connection) -> int:
    return int(conn.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'papers'")).scalar() or 0)


def _frequencies(conn: Connection, terms: tuple[str, ...]) -> dict[str, float]:
    """Each word's share of papers (from pg_stats, as text.py's idf), for the words with a lexeme."""
    idf = pg_text._pg_idf(conn, terms)
    # text.py's idf = log(1 + (1 - f) / f) + floor: invert it for f.
    return {t: 1.0 / math.exp(v - pg_text._IDF_FLOOR) for t, v in idf.items()}


def gin_bounded(conn: Connection, query, filters: Filters, limit: int, checked=None,  # noqa: ANN001
                budget: float | None = None) -> list[TextHit]:
    """Today's score over the candidates the rarest words select (LIMIT-bounded), best first."""
    budget = BUDGET if budget is None else budget
    if query.phrases or query.authors or query.excluded or filters.active:
        return pg_text._search_postgresql(conn, query, filters, limit)  # selective already
    frequency = _frequencies(conn, query.terms)
    if not frequency:
        return []
    size = max(_table_size(conn), 1)
    rows = max(int(budget * size), limit)
    chosen, expected = [], 0.0
    for term in sorted(frequency, key=frequency.get):
        if chosen and expected + frequency[term] * size > rows:
            break
        chosen.append(term)
        expected += frequency[term] * size
    idf = {t: math.log(1 + (1 - f) / f) + pg_text._IDF_FLOOR for t, f in frequency.items()}
    weights = pg_text._PG_WEIGHTS
    # One tsquery per word (bound, never syntax); the score is text.py's, over the candidates only.
    params = {f"w{i}": t for i, t in enumerate(frequency)}
    score = " + ".join(
        f"{idf[t]!r} * ts_rank({weights}, c.v, plainto_tsquery('english', :w{i}), {pg_text._PG_NORMALIZATION})"
        for i, t in enumerate(frequency))
    select_any = " || ".join(f"plainto_tsquery('english', :w{list(frequency).index(t)})" for t in chosen)
    statement = text(
        f"WITH c AS MATERIALIZED (SELECT pk, search_vector || ''::tsvector AS v FROM papers "
        f"WHERE search_vector @@ ({select_any}) AND NOT hidden LIMIT :rows) "
        f"SELECT pk, {score} AS score FROM c ORDER BY score DESC, pk LIMIT :limit")
    return [TextHit(pk, float(s)) for pk, s in conn.execute(statement, params | {"rows": rows, "limit": limit})]


def tantivy_side(conn: Connection, query, filters: Filters, limit: int, checked=None) -> list[TextHit]:  # noqa: ANN001
    return [TextHit(pk, s) for pk, s in fulltext_search.search(conn, query, filters, limit, checked)]


def ts_rank_side(conn: Connection, query, filters: Filters, limit: int, checked=None) -> list[TextHit]:  # noqa: ANN001
    return pg_text._search_postgresql(conn, query, filters, limit) if not query.empty else []


SIDES = {"ts_rank": ts_rank_side, "gin_bounded": gin_bounded, "tantivy": tantivy_side}


def use_tantivy_dir(folder: Path) -> None:
    """search/fulltext.py's index in ``folder`` (the product puts it under the data dir)."""
    fulltext.index_dir = lambda engine: folder  # noqa: ARG005


def feed_tantivy(engine: Engine, folder: Path) -> tuple[float, int]:
    use_tantivy_dir(folder)
    started = time.perf_counter()
    with engine.connect() as conn:
        index = fulltext.open_fulltext(conn)
        written = index.catch_up(conn, wait=True, threads=fulltext.ALONE_THREADS)
    return time.perf_counter() - started, written


class StatementTimer:
    """Time per kind of SQL statement, from SQLAlchemy's cursor events."""

    def __init__(self, engine: Engine):
        self.totals: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    @staticmethod
    def kind(statement: str) -> str:
        s = " ".join(statement.split())
        if "hnsw.ef_search" in s:
            return "set ef_search"
        if "<=>" in s and "nearest" in s:
            return "hnsw nearest"
        if "<=>" in s:
            return "cosine of text-only candidates"
        if "pg_stats" in s:
            return "idf: pg_stats"
        if "tsvector_to_array" in s:
            return "idf: lexemes"
        if "max(papers.text_seq)" in s or "coalesce(max" in s:
            return "tantivy: latest text_seq"
        if "ts_rank" in s:
            return "text: ts_rank"
        if "has_vector" in s or "paper_embeddings.paper_pk IS NOT NULL" in s:
            return "candidates: filters + sort keys"
        if "organization_name" in s:
            return "page rows"
        if s.startswith("SELECT papers.title, papers.summary"):
            return "coverage: best hit's text"
        return s[:60]

    def _before(self, conn, cursor, statement, params, context, many) -> None:  # noqa: ANN001
        context._bench_started = time.perf_counter()

    def _after(self, conn, cursor, statement, params, context, many) -> None:  # noqa: ANN001
        k = self.kind(statement)
        self.totals[k] += time.perf_counter() - context._bench_started
        self.counts[k] += 1


def percentiles(samples: list[float]) -> dict:
    ms = sorted(s * 1000 for s in samples)
    return {"p50_ms": round(statistics.median(ms), 1), "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1)}


def timed_hybrid(engine: Engine, embedder, texts: list[str], side) -> tuple[list[float], float]:  # noqa: ANN001
    hybrid.text_search = side
    times, embed_s = [], 0.0
    for t in texts:
        hybrid.query_vector.cache_clear()  # every query new to the process, as in bench/search.py
        started = time.perf_counter()
        hybrid.query_vector(embedder, parse_query(t).raw)
        embed_s += time.perf_counter() - started
        hybrid.query_vector.cache_clear()
        started = time.perf_counter()
        hybrid.search(engine, t, embedder=embedder, limit=10)
        times.append(time.perf_counter() - started)
    return times, embed_s


def timed_text(engine: Engine, texts: list[str], side) -> list[float]:  # noqa: ANN001
    times = []
    with engine.connect() as conn:
        for t in texts:
            q = parse_query(t)
            started = time.perf_counter()
            side(conn, q, Filters(), hybrid.CANDIDATES)
            conn.rollback()
            times.append(time.perf_counter() - started)
    return times


def speed(args) -> dict:  # noqa: ANN001
    from search import ts_rank_floor
    from sqlalchemy import make_url

    url = make_url(postgres_url(args.workdir)).set(database=f"bench_{args.papers}")
    engine = open_engine(url.render_as_string(hide_password=False))
    embedder = load_embedder(cache_dir=args.workdir / "models")
    texts, typed = queries(args.queries)
    embedder.embed(texts[:2])
    build_s, written = feed_tantivy(engine, args.workdir / f"tantivy-{args.papers}")
    figures: dict = {"papers": args.papers, "queries": len(texts), "gin_bounded_budget": args.budget,
                     "tantivy_feed_s": round(build_s, 1),
                     "tantivy_fed": written}
    print(f"Tantivy fed from PostgreSQL: {written:,} papers in {build_s:.1f} s", file=sys.stderr)
    floor = ts_rank_floor(engine, texts)
    figures["ts_rank_floor"] = percentiles(floor)
    for name in args.sides.split(","):
        side = SIDES[name]
        hybrid.search(engine, texts[0], embedder=embedder, limit=10)  # warm
        text_times = timed_text(engine, texts, side)
        timer = StatementTimer(engine)
        times, embed_s = timed_hybrid(engine, embedder, texts, side)
        event.remove(engine, "before_cursor_execute", timer._before)
        event.remove(engine, "after_cursor_execute", timer._after)
        total = sum(times)
        profile = {k: {"ms_per_query": round(1000 * v / len(texts), 2), "statements_per_query":
                       round(timer.counts[k] / len(texts), 2)} for k, v in sorted(timer.totals.items(), key=lambda kv: -kv[1])}
        profile["query embedding"] = {"ms_per_query": round(1000 * embed_s / len(texts), 2)}
        rest = total - sum(timer.totals.values()) - embed_s  # the search embeds the query again
        profile["python and the rest"] = {"ms_per_query": round(1000 * rest / len(texts), 2)}
        figures[name] = {"text_top100": percentiles(text_times), "hybrid": percentiles(times),
                         "hybrid_typed": percentiles(times[:typed]), "hybrid_claims": percentiles(times[typed:]),
                         "profile": profile}
        r = figures[name]
        print(f"{name:>12}: text top-100 p50 {r['text_top100']['p50_ms']:>7} p95 {r['text_top100']['p95_ms']:>7} ms"
              f" | hybrid p50 {r['hybrid']['p50_ms']:>7} p95 {r['hybrid']['p95_ms']:>7} ms"
              f" (typed p95 {r['hybrid_typed']['p95_ms']}, claims p95 {r['hybrid_claims']['p95_ms']})")
        for k, v in profile.items():
            print(f"{'':>16}{k:<36} {v['ms_per_query']:>8} ms" +
                  (f"  ({v['statements_per_query']} statements)" if "statements_per_query" in v else ""))
    f = figures["ts_rank_floor"]
    print(f"{'floor':>12}: plain ts_rank OR query p50 {f['p50_ms']} p95 {f['p95_ms']} ms")
    engine.dispose()
    return figures


# --- quality ---------------------------------------------------------------------------------------


def scifact_engine(args, embedder) -> Engine:  # noqa: ANN001
    from quality import load_scifact
    from sqlalchemy import create_engine, make_url

    from dailypapers.search.vectors import embed_backlog

    url = postgres_url(args.workdir)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = 'scifact'")).first():
            conn.execute(text('CREATE DATABASE "scifact"'))
    admin.dispose()
    engine = open_engine(make_url(url).set(database="scifact").render_as_string(hide_password=False))
    migrate(engine)
    with engine.connect() as conn:
        empty = conn.exec_driver_sql("SELECT count(*) FROM papers").scalar() == 0
    if empty:
        load_scifact(engine, SCIFACT)
    started = time.perf_counter()
    if n := embed_backlog(engine, embedder):
        print(f"scifact: embedded {n:,} papers in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return engine


def quality(args) -> dict:  # noqa: ANN001
    from quality import ndcg_at_10, scifact_id

    embedder = load_embedder(cache_dir=args.workdir / "models")
    engine = scifact_engine(args, embedder)
    feed_tantivy(engine, args.workdir / "tantivy-scifact")
    qrels: dict[str, set[str]] = {}
    with open(SCIFACT / "qrels" / f"{args.split}.tsv") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], set()).add(scifact_id(row["corpus-id"]))
    with open(SCIFACT / "queries.jsonl") as f:
        claims = {q["_id"]: q["text"] for q in map(json.loads, f) if q["_id"] in qrels}
    figures: dict = {"split": args.split, "queries": len(claims)}
    wanted = args.sides.split(",")
    sides = {name: SIDES[name] for name in wanted if name != "gin_bounded"}
    for share in (0.01, 0.05) if "gin_bounded" in wanted else ():
        sides[f"gin_bounded_{share:g}"] = lambda *a, share=share, **k: gin_bounded(*a, **k, budget=share)
    for name, side in sides.items():
        hybrid.text_search = side
        figures[name] = {}
        for mode in ("text", "hybrid"):
            total = 0.0
            for qid, claim in claims.items():
                page = hybrid.search(engine, claim, limit=10, embedder=embedder, mode=mode)
                total += ndcg_at_10([h.paper["id"] for h in page.hits], qrels[qid])
            figures[name][mode] = round(total / len(claims), 4)
        print(f"{name:>18}: nDCG@10 text alone {figures[name]['text']:.3f}  hybrid {figures[name]['hybrid']:.3f}")
    engine.dispose()
    return figures


def recall(args) -> dict:  # noqa: ANN001
    """pgvector HNSW's recall@10 against exact search on bench_<papers>, both kinds of query."""
    from search import hnsw_recall, hnsw_recall_generated
    from sqlalchemy import make_url

    url = make_url(postgres_url(args.workdir)).set(database=f"bench_{args.papers}")
    engine = open_engine(url.render_as_string(hide_password=False))
    embedder = load_embedder(cache_dir=args.workdir / "models")
    texts, _ = queries(args.queries)
    figures = {"papers": args.papers, "hnsw_recall_at_10": hnsw_recall(engine, embedder, texts),
               "hnsw_recall_at_10_generated_queries": hnsw_recall_generated(engine, embedder.name)}
    print(f"HNSW recall@10 at {args.papers:,}: real queries {figures['hnsw_recall_at_10']}, "
          f"queries drawn like the corpus {figures['hnsw_recall_at_10_generated_queries']}")
    engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("speed", "quality", "recall"))
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--split", default="test", choices=("test", "train"))
    parser.add_argument("--sides", default=",".join(SIDES), help="the text sides to measure")
    parser.add_argument("--budget", type=float, default=BUDGET, help="gin_bounded: candidates, share of the table")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/dailypapers-bench-search"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    globals()["BUDGET"] = args.budget
    figures = {"speed": speed, "quality": quality, "recall": recall}[args.what](args)
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
