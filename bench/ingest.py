"""Metadata ingest throughput and peak memory, beside the raw-sqlite3 floor, in one run.

    python bench/ingest.py [--papers 100000] [--json] [--skip-postgres] [--skip-sqlite]

Generates N realistic arXiv snapshot lines, then ingests them, each in a fresh child process (so peak
RSS is that run's own): the floor (parse the same lines, executemany into a plain table with an FTS5
index, one transaction), dailypapers on SQLite, and dailypapers on PostgreSQL (pgserver) beside its
own floor (the same rows written with COPY in one transaction into a table with the same generated
tsvector and GIN index). Embeddings
are not part of this: they are computed in batches afterwards. Memory flatness: the SQLite run is
repeated on a quarter of the lines; peak RSS should not grow with the input.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

WORDS = ("model learning neural network data training language transformer attention graph policy "
         "reinforcement agent robot vision image diffusion generation benchmark evaluation task method "
         "results performance large small efficient robust adaptive sparse dense retrieval search query "
         "optimization gradient loss representation embedding token sequence generalization quantum field "
         "theory energy spectrum galaxy black hole metric space manifold algebra proof theorem").split()
CATEGORIES = ["cs.LG", "cs.CL", "cs.CV", "cs.AI", "cs.RO", "stat.ML", "math.OC", "hep-th", "quant-ph",
              "astro-ph.GA", "cond-mat.str-el", "physics.optics"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri"]


def make_lines(n: int, path: Path, seed: int = 7) -> None:
    """Lines shaped like arxiv-metadata-oai-snapshot.json (FORMATS.md §3), with ~1,100-char abstracts."""
    rng = random.Random(seed)
    with path.open("w") as out:
        for i in range(n):
            words = lambda k: " ".join(rng.choice(WORDS) for _ in range(k))  # noqa: E731
            names = [[rng.choice(["Smith", "Chen", "Garc\u00eda", "M\u00fcller", "Kumar", "Ivanova"]),
                      rng.choice(["A.", "Wei", "Maria", "Jan", "Priya", "O."]), ""] for _ in range(rng.randint(1, 9))]
            versions = [{"version": f"v{v}", "created": f"{rng.choice(DAYS)}, {rng.randint(1, 28)} Mar 2024 "
                                                         f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00 GMT"}
                        for v in range(1, rng.randint(1, 3) + 1)]
            cats = rng.sample(CATEGORIES, rng.randint(1, 3))
            record = {
                "id": f"24{(i // 99999) % 100:02d}.{i % 99999 + 1:05d}",
                "submitter": " ".join(names[0][1::-1]),
                "authors": ", ".join(f"{f} {k}" for k, f, _ in names),
                "title": words(rng.randint(6, 14)).capitalize(),
                "comments": f"{rng.randint(5, 40)} pages, {rng.randint(1, 12)} figures" if rng.random() < .8 else None,
                "journal-ref": None,
                "doi": f"10.1000/{i}" if rng.random() < .3 else None,
                "report-no": None,
                "categories": " ".join(cats),
                "license": "http://creativecommons.org/licenses/by/4.0/",
                "abstract": "  " + "\n".join(words(12) for _ in range(14)) + "\n",
                "versions": versions,
                "update_date": "2024-03-30",
                "authors_parsed": names,
            }
            out.write(json.dumps(record) + "\n")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_floor(lines: Path, db: Path) -> dict:
    """The floor: the same parse, one executemany into a plain table + FTS5, one transaction."""
    import sqlite3

    start = time.perf_counter()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE papers (id TEXT PRIMARY KEY, title TEXT, summary TEXT, authors TEXT, "
                 "categories TEXT, versions TEXT)")
    conn.execute("CREATE VIRTUAL TABLE papers_fts USING fts5(title, summary, authors, "
                 "tokenize='porter unicode61 remove_diacritics 2')")  # as ours: its own copy of the text

    def rows():
        with lines.open("rb") as f:
            for line in f:
                r = json.loads(line)
                yield (r["id"], r["title"], r["abstract"], r["authors"], r["categories"], json.dumps(r["versions"]))

    with conn:
        conn.executemany("INSERT INTO papers VALUES (?, ?, ?, ?, ?, ?)", rows())
        conn.execute("INSERT INTO papers_fts (rowid, title, summary, authors) "
                     "SELECT rowid, title, summary, authors FROM papers")
    n = conn.execute("SELECT count(*) FROM papers").fetchone()[0]
    conn.close()
    return {"papers": n, "seconds": time.perf_counter() - start}


def child_pg_floor(lines: Path, url: str) -> dict:
    """PostgreSQL's floor: the same parse, the rows written with COPY in one transaction, into a table
    with the same weighted, generated tsvector and its GIN index as ours (its own copy of the text)."""
    import psycopg

    start = time.perf_counter()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        conn.execute("CREATE TABLE floor_papers (id text PRIMARY KEY, title text, summary text, authors jsonb, "
                     "categories text, versions jsonb, search_vector tsvector GENERATED ALWAYS AS ("
                     "setweight(to_tsvector('english', coalesce(title, '')), 'A') || "
                     "setweight(to_tsvector('english', coalesce(summary, '')), 'B') || "
                     "setweight(to_tsvector('english', jsonb_path_query_array(authors, '$[*].name')::text), 'C')"
                     ") STORED)")
        conn.execute("CREATE INDEX ix_floor_papers_search_vector ON floor_papers USING gin (search_vector)")
        with conn.cursor().copy("COPY floor_papers (id, title, summary, authors, categories, versions) "
                                "FROM STDIN") as copy, lines.open("rb") as f:
            for line in f:
                r = json.loads(line)
                authors = json.dumps([{"name": " ".join(p[1::-1]).strip()} for p in r["authors_parsed"]])
                copy.write_row((r["id"], r["title"], r["abstract"], authors, r["categories"],
                                json.dumps(r["versions"])))
        n = conn.execute("SELECT count(*) FROM floor_papers").fetchone()[0]
    seconds = time.perf_counter() - start
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        conn.execute("DROP TABLE floor_papers")  # its dirty pages are not written during our run
    return {"papers": n, "seconds": seconds}


def child_ours(lines: Path, url: str) -> dict:
    import multiprocessing
    import threading

    from dailypapers.ingest import ingest
    from dailypapers.sources.snapshot import read_snapshot
    from dailypapers.store.db import migrate, open_engine

    engine = open_engine(url)
    migrate(engine)
    reader_peak = {}  # pid -> VmHWM in MB: the reading process's own peak, read while it lives

    def watch_reader() -> None:
        while not done.wait(0.1):
            for child in multiprocessing.active_children():
                try:
                    status = Path(f"/proc/{child.pid}/status").read_text()
                except OSError:
                    continue
                kb = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM:")), 0)
                reader_peak[child.pid] = max(reader_peak.get(child.pid, 0), kb / 1024)

    done = threading.Event()
    threading.Thread(target=watch_reader, daemon=True).start()
    report = ingest(engine, partial(read_snapshot, lines), read_ahead=True)  # reads in a child process
    done.set()
    assert report.rejected == 0, report.rejections[:3]
    return {"papers": report.inserted, "seconds": report.seconds,
            "reader_peak_rss_mb": max(reader_peak.values(), default=0.0)}


def in_child(kind: str, lines: Path, target: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(lines), target],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{out.stderr[-3000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["papers_per_s"] = figures["papers"] / figures["seconds"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="End with one JSON line of the figures.")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, lines, target = args.child
        child = {"floor": child_floor, "pg_floor": child_pg_floor, "ours": child_ours}[kind]
        result = child(Path(lines), Path(target) if kind == "floor" else target)
        # Peak RSS of the run: its own, plus its reading process's (both peaks added: an upper bound).
        result["peak_rss_mb"] = peak_rss_mb() + result.get("reader_peak_rss_mb", 0)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="dp-bench-") as tmp:
        tmp = Path(tmp)
        lines, quarter = tmp / "snapshot.jsonl", tmp / "quarter.jsonl"
        make_lines(args.papers, lines)
        make_lines(max(1, args.papers // 4), quarter)
        size_mb = lines.stat().st_size / 1e6
        print(f"{args.papers:,} generated snapshot lines ({size_mb:.0f} MB)")
        figures = {"papers": args.papers}
        if not args.skip_sqlite:
            floor = in_child("floor", lines, str(tmp / "floor.db"))
            ours = in_child("ours", lines, f"sqlite:///{tmp / 'ours.db'}")
            small = in_child("ours", quarter, f"sqlite:///{tmp / 'quarter.db'}")
            figures |= {
                "raw_sqlite_papers_per_s": round(floor["papers_per_s"]),
                "sqlite_papers_per_s": round(ours["papers_per_s"]),
                "sqlite_vs_floor": round(ours["papers_per_s"] / floor["papers_per_s"], 3),
                "peak_rss_mb": round(ours["peak_rss_mb"], 1),
                "reader_peak_rss_mb": round(ours["reader_peak_rss_mb"], 1),
                "peak_rss_mb_quarter_input": round(small["peak_rss_mb"], 1),
                "floor_peak_rss_mb": round(floor["peak_rss_mb"], 1),
            }
        if not args.skip_postgres:
            import pgserver

            server = pgserver.get_server(str(tmp / "pg"), cleanup_mode="stop")
            try:
                url = server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
                pg_floor = in_child("pg_floor", lines, url)
                pg = in_child("ours", lines, url)
            finally:
                server.cleanup()
            figures["postgres_copy_floor_papers_per_s"] = round(pg_floor["papers_per_s"])
            figures["postgres_papers_per_s"] = round(pg["papers_per_s"])
            figures["postgres_vs_floor"] = round(pg["papers_per_s"] / pg_floor["papers_per_s"], 3)
            figures["postgres_peak_rss_mb"] = round(pg["peak_rss_mb"], 1)

    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:>{width}}  {value:,}" if isinstance(value, int) else f"{key:>{width}}  {value}")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
