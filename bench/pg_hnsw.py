"""pgvector's HNSW alone at 1,000,000 vectors: build time, recall@10 against exact search, latency.

    python bench/pg_hnsw.py [--vectors 1000000] [--queries 100] [--ef-search 100,200,400] [--workdir DIR] [--json]

The vectors of bench/search.py (generated clustered unit vectors, 384-d, same seed and chunks) in a
table of their own in pgserver (database ``hnsw_<vectors>``; no papers: the ingest of 1M papers
into PostgreSQL takes ~45 min on this machine), the index as dailypapers creates it (``USING hnsw
(vector vector_cosine_ops) WITH (m = 16, ef_construction = 128)``, migration 0012), searched as search/vectors.py does for a
top 10 (``hnsw.ef_search`` 200, the 200 nearest, the best 10 of them) against the exact top 10 (a
scan). Queries are drawn like the corpus (bench/search.py ``generated_queries``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from search import DIM, clustered_vectors, generated_queries, postgres_url  # noqa: E402

EF_SEARCH = 200  # search/backends/postgres.py: PG_MIN_EF_SEARCH, the candidates of a top 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--ef-search", default=str(EF_SEARCH), help="values of hnsw.ef_search to try, comma-separated")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/dailypapers-bench-search"))
    args = parser.parse_args()
    from sqlalchemy import make_url

    url = make_url(postgres_url(args.workdir))
    libpq = lambda db: url.set(drivername="postgresql", database=db).render_as_string(hide_password=False)  # noqa: E731
    name = f"hnsw_{args.vectors}"
    figures: dict = {"vectors": args.vectors}
    with psycopg.connect(libpq("postgres"), autocommit=True) as admin:
        fresh = not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if fresh:
            admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(libpq(name)) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.commit()
        register_vector(conn)
        if fresh:
            conn.execute(f"CREATE TABLE v (pk integer PRIMARY KEY, vector vector({DIM}) NOT NULL)")
            rng = np.random.default_rng(5)
            started = time.perf_counter()
            with conn.cursor().copy("COPY v (pk, vector) FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "vector"])
                for start in range(0, args.vectors, 20_000):
                    n = min(20_000, args.vectors - start)
                    for i, vector in enumerate(clustered_vectors(n, rng)[0]):
                        copy.write_row((start + i + 1, vector))
            conn.commit()
            print(f"{args.vectors:,} vectors written in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            conn.execute("SET maintenance_work_mem = '4GB'")
            started = time.perf_counter()
            conn.execute("CREATE INDEX ix_v_vector ON v USING hnsw (vector vector_cosine_ops) WITH (m = 16, ef_construction = 128)")
            conn.commit()
            figures["index_build_s"] = round(time.perf_counter() - started, 1)
            print(f"HNSW built in {figures['index_build_s']} s", file=sys.stderr)
            conn.execute("ANALYZE v")
            conn.commit()
        q = generated_queries(args.queries)
        exact, exact_times = [], []
        for vector in q:
            started = time.perf_counter()
            exact.append({r[0] for r in conn.execute("SELECT pk FROM v ORDER BY (vector <=> %s) + 0 LIMIT 10",
                                                     (vector,))})
            exact_times.append(time.perf_counter() - started)
        ms = lambda xs: sorted(x * 1000 for x in xs)  # noqa: E731
        figures["exact_p50_ms"] = round(statistics.median(ms(exact_times)), 1)
        for ef in (int(e) for e in args.ef_search.split(",")):
            conn.execute(f"SET hnsw.ef_search = {ef}")
            found, times = 0, []
            for vector, best in zip(q, exact):
                started = time.perf_counter()
                approx = conn.execute("SELECT pk FROM (SELECT pk, vector <=> %s AS d FROM v ORDER BY d LIMIT %s) c "
                                      "ORDER BY d LIMIT 10", (vector, ef)).fetchall()
                times.append(time.perf_counter() - started)
                found += len({r[0] for r in approx} & best)
            figures[f"ef_search_{ef}"] = {"recall_at_10": round(found / (10 * len(q)), 3),
                                          "p50_ms": round(statistics.median(ms(times)), 1),
                                          "p95_ms": round(ms(times)[int(0.95 * (len(q) - 1))], 1)}
            r = figures[f"ef_search_{ef}"]
            print(f"{args.vectors:,} vectors, ef_search {ef}: recall@10 {r['recall_at_10']}, p50 {r['p50_ms']} "
                  f"p95 {r['p95_ms']} ms")
    print(f"exact scan p50 {figures['exact_p50_ms']} ms")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
