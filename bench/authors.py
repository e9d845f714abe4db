"""An author's papers (/authors/{name}) at scale: the query's latency on SQLite and PostgreSQL.

    python bench/authors.py [--papers 100000] [--queries 200] [--database sqlite|postgresql|both] [--json]

Generated papers (1 to 8 authors each, drawn from 30,000 names, some accented or with quotes) are
inserted as rows (the ingest pipeline would add nothing the query reads, and takes minutes); then
the first page of papers of names drawn at random (most with a few papers, some with none) is asked
for, as the page does, and p50/p95 are reported. PostgreSQL runs in
pgserver under a temporary folder, with migration 0009's GIN index on ``authors``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from sqlalchemy import insert

from dailypapers.store import queries
from dailypapers.store.db import migrate, open_engine
from dailypapers.store.schema import papers

FIRST = ["Ada", "Alan", "Grace", "José", "Zoë", "Chen", "Priya", "Olúwasèun", "Jean-Luc", "Mary", "Ivan", "Aiko"]
LAST = ["Lovelace", "Turing", "Hopper", "Ñúñez", "O'Brien", "Wang", "Patel", "Adébáyọ̀", "Müller", "Smith"]


def names(count: int, rng: np.random.Generator) -> list[str]:
    return [f"{rng.choice(FIRST)} {chr(65 + i % 26)}. {rng.choice(LAST)}-{i}" for i in range(count)]


def rows(n: int, pool: list[str], rng: np.random.Generator):  # noqa: ANN201
    start, now = datetime(2020, 1, 1), datetime(2026, 1, 1)
    for i in range(n):
        authors = [{"name": pool[k], "affiliations": []}
                   for k in rng.choice(len(pool), size=int(rng.integers(1, 9)), replace=False)]
        yield dict(id=f"dp-{i:012x}", title=f"Paper {i}", summary="Words of a summary.", authors=authors,
                   num_authors=len(authors), categories="cs.LG", versions=[], upvotes=0, source_upvotes=0,
                   source="bench", hidden=False, ingested_at=now, changed_at=now,
                   published_at=start + timedelta(minutes=17 * i))


def measure(url: str, n: int, count: int) -> dict:
    rng = np.random.default_rng(7)
    pool = names(30_000, rng)
    engine = open_engine(url)
    migrate(engine)
    began = time.perf_counter()
    generated = list(rows(n, pool, rng))
    with engine.begin() as conn:
        for at in range(0, n, 10_000):
            conn.execute(insert(papers), generated[at:at + 10_000])
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE papers")
    loaded = time.perf_counter() - began
    asked = [pool[k] for k in rng.choice(len(pool), size=count)] + ["Nobody at all"] * (count // 10)
    queries.author_papers(engine, asked[0], limit=31)  # warm
    samples, found = [], 0
    for name in asked:
        t = time.perf_counter()
        found += len(queries.author_papers(engine, name, limit=31))
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    engine.dispose()
    return {"papers": n, "queries": len(asked), "load_s": round(loaded, 1), "rows_found": found,
            "p50_ms": round(statistics.median(samples), 2), "p95_ms": round(samples[int(len(samples) * .95)], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-authors-") as tmp:
        if args.database in ("sqlite", "both"):
            results["sqlite"] = measure(f"sqlite:///{Path(tmp) / 'authors.db'}", args.papers, args.queries)
        if args.database in ("postgresql", "both"):
            import pgserver

            server = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="stop")
            try:
                url = server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
                results["postgresql"] = measure(url, args.papers, args.queries)
            finally:
                server.cleanup()
    for name, r in results.items():
        print(f"{name}: {r['papers']:,} papers, {r['queries']} authors asked: p50 {r['p50_ms']} ms, "
              f"p95 {r['p95_ms']} ms ({r['rows_found']:,} rows; load {r['load_s']} s)")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
