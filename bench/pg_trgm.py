"""pg_trgm as PostgreSQL's text side: speed at 100k papers and quality on SciFact, in one run.

    python bench/pg_trgm.py [--papers 100000] [--queries 20] [--claims 100] [--workdir DIR] [--json]

pgserver ships only plpgsql and vector, so pg_trgm is measured on the system's PostgreSQL 15
(Debian's postgresql-contrib; ``/usr/lib/postgresql/15/bin``), started here under ``--workdir`` as
the ``pgserver`` user. The text (title and abstract, one column) of the papers bench/search.py built
in pgserver (``bench_<papers>``) and of SciFact (``scifact``, bench/pg_text.py quality) is copied
there with the same pks, with a trigram GIN index. The query is pg_trgm's own ranking: papers whose
text holds an extent similar to the query (``q <% text``, GIN), best ``word_similarity`` first, top
100; at two thresholds; a query stopped after 10 s. Quality (the first 100 test claims): nDCG@10 alone and as the hybrid search's text side (the dense side
and the rest from pgserver's scifact database, whose pks are the same).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from pg_text import percentiles, scifact_engine  # noqa: E402
from search import postgres_url, queries  # noqa: E402

from dailypapers.search import hybrid  # noqa: E402
from dailypapers.search.text import TextHit  # noqa: E402

PG15 = Path("/usr/lib/postgresql/15/bin")
PORT = 5442
THRESHOLDS = (0.3, 0.5)
TIMEOUT_S = 10  # a query that takes longer is stopped, and counted as this long (or as no hit)


def start_pg15(folder: Path) -> str:
    if not (folder / "PG_VERSION").exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["chown", "pgserver", str(folder)], check=True)
        subprocess.run(["runuser", "-u", "pgserver", "--", str(PG15 / "initdb"), "-D", str(folder),
                        "--auth=trust", "-U", "postgres"], check=True, capture_output=True)
    if subprocess.run(["runuser", "-u", "pgserver", "--", str(PG15 / "pg_ctl"), "-D", str(folder), "status"],
                      capture_output=True).returncode != 0:
        subprocess.run(["runuser", "-u", "pgserver", "--", str(PG15 / "pg_ctl"), "-D", str(folder), "-w",
                        "-l", str(folder / "log"), "-o", f"-p {PORT} -k {folder} -c listen_addresses=''",
                        "start"], check=True, capture_output=True)
    return f"host={folder} port={PORT} user=postgres"


def copy_table(source: str, target: str, database: str) -> float:
    """The papers' text into a table with a trigram GIN index; returns the index's build time."""
    with psycopg.connect(target + " dbname=postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            return 0.0
        conn.execute(f'CREATE DATABASE "{database}"')
    with psycopg.connect(source) as src, psycopg.connect(target + f" dbname={database}") as dst:
        dst.execute("CREATE EXTENSION pg_trgm")
        dst.execute("CREATE TABLE docs (pk integer PRIMARY KEY, body text NOT NULL)")
        with src.cursor().copy("COPY (SELECT pk, title || ' ' || summary FROM papers) TO STDOUT") as out, \
                dst.cursor().copy("COPY docs FROM STDIN") as into:
            for block in out:
                into.write(block)
        dst.commit()
        dst.execute("SET maintenance_work_mem = '1GB'")
        started = time.perf_counter()
        dst.execute("CREATE INDEX ix_docs_body ON docs USING gin (body gin_trgm_ops)")
        dst.execute("ANALYZE docs")
        dst.commit()
        return time.perf_counter() - started


def trgm_top(conn: psycopg.Connection, q: str, limit: int) -> list[tuple[int, float]]:
    try:
        return _trgm_top(conn, q, limit)
    except psycopg.errors.QueryCanceled:
        return []


def _trgm_top(conn: psycopg.Connection, q: str, limit: int) -> list[tuple[int, float]]:
    return conn.execute("SELECT pk, word_similarity(%(q)s, body) AS s FROM docs WHERE %(q)s <%% body "
                        "ORDER BY s DESC, pk LIMIT %(k)s", {"q": q, "k": limit}).fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=20, help="speed: the first N of bench/search.py's")
    parser.add_argument("--claims", type=int, default=100, help="quality: the first N SciFact test claims")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/dailypapers-bench-search"))
    args = parser.parse_args()
    from quality import ndcg_at_10, scifact_id
    from sqlalchemy import make_url

    from dailypapers.search.embedder import load_embedder
    from pg_text import SCIFACT

    target = start_pg15(args.workdir / "pg15")
    url = make_url(postgres_url(args.workdir))
    libpq = lambda db: url.set(drivername="postgresql", database=db).render_as_string(hide_password=False)  # noqa: E731
    figures: dict = {"papers": args.papers, "index_build_s": {}}
    for database, source in ((f"bench_{args.papers}", f"bench_{args.papers}"), ("scifact", "scifact")):
        figures["index_build_s"][database] = round(copy_table(libpq(source), target, database), 1)
    texts, _ = queries(args.queries)
    figures["timeout_s"] = TIMEOUT_S
    with psycopg.connect(target + f" dbname=bench_{args.papers}", autocommit=True) as conn:
        conn.execute(f"SET statement_timeout = '{TIMEOUT_S}s'")
        for threshold in THRESHOLDS if texts else ():
            conn.execute(f"SET pg_trgm.word_similarity_threshold = {threshold}")
            times = []
            for t in texts:
                started = time.perf_counter()
                trgm_top(conn, t, hybrid.CANDIDATES)
                times.append(time.perf_counter() - started)
            figures[f"speed_{threshold}"] = percentiles(times) | {"timeouts": sum(t >= TIMEOUT_S for t in times)}
            print(f"pg_trgm threshold {threshold}: text top-100 p50 {figures[f'speed_{threshold}']['p50_ms']} "
                  f"p95 {figures[f'speed_{threshold}']['p95_ms']} ms at {args.papers:,} papers")
    # Quality on SciFact's test split.
    import csv

    embedder = load_embedder(cache_dir=args.workdir / "models")
    engine = scifact_engine(args, embedder)
    qrels: dict[str, set[str]] = {}
    with open(SCIFACT / "qrels" / "test.tsv") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], set()).add(scifact_id(row["corpus-id"]))
    with open(SCIFACT / "queries.jsonl") as f:
        claims = {q["_id"]: q["text"] for q in map(json.loads, f) if q["_id"] in qrels}
    claims = dict(list(claims.items())[: args.claims])
    figures["claims"] = len(claims)
    with psycopg.connect(target + " dbname=scifact", autocommit=True) as trgm:
        trgm.execute(f"SET statement_timeout = '{TIMEOUT_S}s'")
        def side(conn, query, filters, limit, checked=None):  # noqa: ANN001, ANN202, ARG001
            words = " ".join(query.terms + query.phrases)
            return [TextHit(pk, s) for pk, s in trgm_top(trgm, words, limit)] if words else []

        hybrid.text_search = side
        for threshold in THRESHOLDS:
            trgm.execute(f"SET pg_trgm.word_similarity_threshold = {threshold}")
            for mode in ("text", "hybrid"):
                total = sum(ndcg_at_10([h.paper["id"] for h in hybrid.search(
                    engine, claim, limit=10, embedder=embedder, mode=mode).hits], qrels[qid])
                    for qid, claim in claims.items())
                figures[f"ndcg@10_{mode}_{threshold}"] = round(total / len(claims), 4)
            print(f"pg_trgm threshold {threshold}: SciFact test nDCG@10 text alone "
                  f"{figures[f'ndcg@10_text_{threshold}']:.3f}  hybrid {figures[f'ndcg@10_hybrid_{threshold}']:.3f}")
    engine.dispose()
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
