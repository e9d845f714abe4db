"""Semantic search on SQLite at scale: the int8 vector index against a numpy float32 exact scan.

    python bench/vectors.py [--sizes 100000,1000000] [--queries 100] [--json]

For each size: generates N unit vectors in 384 dimensions (clustered, like sentence embeddings:
N/500 clusters; generated vectors are fine for speed, and recall is measured against the exact
answer on the same vectors), stores them as papers + ``paper_embeddings`` rows in a fresh SQLite
database (1% of the papers hidden, one of ten categories each, plus a rare one on ~0.5%), then in
fresh child processes (so each peak RSS is its own):

* build: ``rebuild_index`` (time, peak RSS, file size);
* search: ``vector_search`` through the index for the top 10, unfiltered, with a category filter
  (~10% of the papers) and with a rare category (~0.5%), and for the top 100 (what the hybrid
  search asks each side for) unfiltered and with the category filter; each timed end to end (int8
  scan + the SQL filters and exact re-rank) with its recall against the exact float32 answer under
  the same filters; then the floor: a plain numpy float32 matrix-vector product + top 10 over the
  whole matrix in RAM.

Queries: half are stored vectors plus noise (a paraphrase of a paper), half fresh draws from the
clusters (a topic query, whose top ten are near-ties). With --json the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 384
CATEGORIES = ["cs.LG", "cs.CL", "cs.CV", "cs.AI", "cs.RO", "stat.ML", "math.OC", "hep-th", "quant-ph",
              "eess.IV"]
RARE = "q-bio.NC"
MODEL = "bench-generated"


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def rss_mb() -> float:
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """This process's own peak (VmHWM: ru_maxrss would carry the parent's over fork + exec)."""
    return _status_mb("VmHWM")


def generate(n: int, seed: int, centers: np.ndarray, start: int = 0) -> np.ndarray:
    """n clustered unit vectors (deterministic by seed and start)."""
    rng = np.random.default_rng([seed, start])
    labels = rng.integers(0, len(centers), n)
    x = centers[labels] * 0.35 + rng.standard_normal((n, DIM), dtype=np.float32) * 0.2
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_database(n: int, workdir: Path, seed: int = 11) -> None:
    """papers + paper_embeddings (raw sqlite3 after the real migrations), vectors.npy, queries.npy."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from dailypapers.store.db import migrate, open_engine

    db = workdir / "bench.db"
    engine = open_engine(f"sqlite:///{db}")
    migrate(engine)
    engine.dispose()
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(50, n // 500), DIM), dtype=np.float32)
    vectors = np.lib.format.open_memmap(workdir / "vectors.npy", mode="w+", dtype=np.float32, shape=(n, DIM))
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    now = "2025-01-01 00:00:00.000000"
    # Every required column of papers gets a plain value (so a new column does not break the bench).
    from sqlalchemy import JSON, Boolean, DateTime, Integer

    from dailypapers.store.schema import papers

    required = {}
    for column in papers.columns:
        if column.nullable or column.primary_key:
            continue
        kind = column.type
        required[column.name] = ("[]" if isinstance(kind, JSON) else 0 if isinstance(kind, (Integer, Boolean))
                                 else now if isinstance(kind, DateTime) else "")
    required |= {"source": "bench", "published_at": now}
    given = ["pk", "id", "title", "categories", "hidden"]
    names = given + sorted(set(required) - set(given))
    insert_paper = f"INSERT INTO papers ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    fixed = tuple(required[name] for name in names[5:])
    step = 50_000
    for begin in range(0, n, step):
        end = min(n, begin + step)
        block = generate(end - begin, seed, centers, begin)
        vectors[begin:end] = block
        meta = np.random.default_rng([seed, begin, 1])
        hidden = meta.random(end - begin) < 0.01
        cats = meta.integers(0, len(CATEGORIES), end - begin)
        rare = meta.random(end - begin) < 0.005
        conn.executemany(insert_paper, ((begin + i + 1, f"b{begin + i + 1}", f"paper {begin + i + 1}",
                                         CATEGORIES[cats[i]] + (f" {RARE}" if rare[i] else ""),
                                         int(hidden[i]), *fixed)
                                        for i in range(end - begin)))
        conn.executemany(
            "INSERT INTO paper_embeddings (paper_pk, model, vector, seq) VALUES (?, ?, ?, ?)",
            ((begin + i + 1, MODEL, block[i].tobytes(), begin + i + 1) for i in range(end - begin)))
        conn.commit()
    conn.close()
    vectors.flush()
    del vectors
    qrng = np.random.default_rng([seed, 99])
    stored = np.load(workdir / "vectors.npy", mmap_mode="r")
    half = 50
    near = stored[qrng.integers(0, n, half)] + qrng.standard_normal((half, DIM), dtype=np.float32) * 0.03
    fresh = generate(half, seed + 1, centers)
    queries = np.concatenate([near, fresh]).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    np.save(workdir / "queries.npy", queries)


def child_build(workdir: Path) -> dict:
    from dailypapers.search.vector_index import rebuild_index
    from dailypapers.store.db import open_engine

    engine = open_engine(f"sqlite:///{workdir / 'bench.db'}")
    started = time.perf_counter()
    index = rebuild_index(engine, workdir / "vectors", MODEL)
    seconds = time.perf_counter() - started
    return {"build_s": round(seconds, 2), "build_peak_rss_mb": round(peak_rss_mb()),
            "index_file_mb": round(index.path.stat().st_size / 2**20, 1), "vectors": len(index)}


def _percentiles(times: list[float]) -> dict:
    ms = np.array(times) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1)}


def child_search(workdir: Path, queries_n: int) -> dict:
    from sqlalchemy import select

    from dailypapers.search.filters import Filters
    from dailypapers.search.vector_index import open_index
    from dailypapers.search.vectors import vector_search
    from dailypapers.store.db import open_engine
    from dailypapers.store.schema import papers

    engine = open_engine(f"sqlite:///{workdir / 'bench.db'}")
    queries = np.load(workdir / "queries.npy")[:queries_n]
    cases = {"unfiltered": Filters(), "category_10pct": Filters(categories=(CATEGORIES[0],)),
             "rare_category": Filters(categories=(RARE,)), "unfiltered_top100": Filters(),
             "category_10pct_top100": Filters(categories=(CATEGORIES[0],))}
    limits = {name: 100 if name.endswith("_top100") else 10 for name in cases}
    base_rss = rss_mb()
    index = open_index(engine, workdir / "vectors", MODEL)
    results: dict = {}
    answers: dict = {}
    for name, filters in cases.items():
        vector_search(engine, queries[0], filters, limits[name], index=index)  # warm the page cache
        times, answers[name] = [], []
        for q in queries:
            started = time.perf_counter()
            found = vector_search(engine, q, filters, limits[name], index=index)
            times.append(time.perf_counter() - started)
            answers[name].append({pk for pk, _ in found})
        results[name] = _percentiles(times)
    # What searching costs a process: mostly the mapped int8 codes (shared between processes).
    results["search_rss_mb"] = round(rss_mb() - base_rss)

    # Recall against the exact float32 answer under the same filters.
    vectors = np.load(workdir / "vectors.npy", mmap_mode="r")
    with engine.connect() as conn:
        rows = conn.execute(select(papers.c.pk, papers.c.hidden, papers.c.categories)).all()
    visible = np.zeros(len(vectors), bool)
    allowed = {name: np.zeros(len(vectors), bool) for name in cases}
    for r in rows:
        if not r.hidden:
            cats = r.categories.split()
            allowed["unfiltered"][r.pk - 1] = allowed["unfiltered_top100"][r.pk - 1] = True
            allowed["category_10pct"][r.pk - 1] = CATEGORIES[0] in cats
            allowed["category_10pct_top100"][r.pk - 1] = CATEGORIES[0] in cats
            allowed["rare_category"][r.pk - 1] = RARE in cats
    del rows, visible
    for name in cases:
        k = limits[name]
        recalls = []
        for q, found in zip(queries, answers[name]):
            scores = np.empty(len(vectors), np.float32)
            for s in range(0, len(vectors), 200_000):
                scores[s:s + 200_000] = vectors[s:s + 200_000] @ q
            scores[~allowed[name]] = -np.inf
            truth = {int(i) + 1 for i in np.argpartition(-scores, k)[:k]}
            recalls.append(len(found & truth) / k)
        results[name][f"recall_at_{k}"] = round(float(np.mean(recalls)), 4)

    matrix = np.array(vectors)  # the floor: every vector in RAM as float32
    times = []
    for q in queries:
        started = time.perf_counter()
        scores = matrix @ q
        best = np.argpartition(-scores, 10)[:10]
        best[np.argsort(-scores[best])]
        times.append(time.perf_counter() - started)
    results["numpy_f32_floor"] = _percentiles(times) | {"ram_mb": round(matrix.nbytes / 2**20)}
    return results


def run_child(kind: str, workdir: Path, queries: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--workdir", str(workdir),
                          "--queries", str(queries)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    parser.add_argument("--child", choices=["build", "search"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
        if args.child == "build":
            figures = child_build(args.workdir)
        else:
            figures = child_search(args.workdir, args.queries)
        print(json.dumps(figures))
        return
    report: dict = {}
    for n in (int(s.replace("_", "")) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="dailypapers-bench-vectors-") as tmp:
            workdir = Path(tmp)
            started = time.perf_counter()
            make_database(n, workdir)
            figures = {"generate_and_store_s": round(time.perf_counter() - started, 1)}
            figures |= run_child("build", workdir, args.queries)
            figures |= run_child("search", workdir, args.queries)
        report[str(n)] = figures
        print(f"--- {n:,} vectors ({DIM}-d, {args.queries} queries)", file=sys.stderr)
        print(f"  stored in {figures['generate_and_store_s']} s; index built in {figures['build_s']} s "
              f"({figures['index_file_mb']} MB file, build peak RSS {figures['build_peak_rss_mb']} MB)",
              file=sys.stderr)
        for case in ("unfiltered", "category_10pct", "rare_category", "unfiltered_top100",
                     "category_10pct_top100"):
            f = figures[case]
            k = 100 if case.endswith("_top100") else 10
            print(f"  vector_search {case:<22} p50 {f['p50_ms']:7.1f} ms  p95 {f['p95_ms']:7.1f} ms  "
                  f"recall@{k} {f[f'recall_at_{k}']:.3f}", file=sys.stderr)
        f = figures["numpy_f32_floor"]
        print(f"  numpy float32 exact floor            p50 {f['p50_ms']:7.1f} ms  p95 {f['p95_ms']:7.1f} ms  "
              f"(matrix in RAM: {f['ram_mb']} MB; index search RSS +{figures['search_rss_mb']} MB)",
              file=sys.stderr)
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
