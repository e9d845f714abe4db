"""Web throughput and latency with 16 concurrent clients on 127.0.0.1, against 100,000 papers.

    python bench/web.py [--database sqlite|postgresql|both] [--papers 100000] [--seconds 10] [--clients 16]
                        [--workers 2] [--json]

Uses the generated corpus of bench/search.py (built there if missing, with feed days added here),
serves it with `dailypapers serve` in its own process, and loads /, a paper page and /search?q=...
in turn for a fixed time each (and / and the searches made afresh for each request: /?r=<n>,
/search?q=...&r=<n>, never kept: readers who are not signed in share kept pages), from wrk (`apt-get install wrk`; C, one thread, so the server gets most of
the two cores) or, without it or with --client python, an asyncio client in another process. The
floor beside them is /static/app.css: the same server and client, with no database and no template.
--database postgresql serves the same corpus from PostgreSQL (pgserver under the work dir, the
database bench/search.py --database postgresql builds); ``both`` runs SQLite then PostgreSQL in one
run, and the JSON then holds ``{"sqlite": {...}, "postgresql": {...}}``. Before PostgreSQL serves,
its full-text index (a Tantivy index per machine, fed from the database) is brought up to date
under the work dir, as `dailypapers reindex` does on a new web machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

HERE = Path(__file__).resolve().parent
# What people type: the sample query set's 34 queries (paraphrases, titles, names), in turn.
SEARCHES = [line.split("\t")[1] for line in (HERE / "sample_queries.tsv").read_text().splitlines()
            if line and not line.startswith("#")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(workdir: Path, papers: int, database: str) -> tuple[str, list[str]]:
    """The database's URL, and the ids of the papers to open."""
    sys.path.insert(0, str(HERE))
    import search as search_bench  # bench/search.py: the generated corpus

    from sqlalchemy import text

    from dailypapers.search.embedder import load_embedder

    embedder = load_embedder(cache_dir=workdir / "models")
    if database == "postgresql":
        url = search_bench.postgres_url(workdir)
        engine, *_ = search_bench.build_postgresql(url, papers, embedder.name, workdir)
        day = "timestamp '2025-10-10' - (pk / 20 % 100) * interval '1 day'"
    else:
        engine, *_ = search_bench.build(workdir, papers, embedder.name)
        # As SQLAlchemy stores a DateTime on SQLite (with microseconds): its comparisons are of text.
        day = "datetime('2025-10-10', '-' || (pk / 20 % 100) || ' days') || '.000000'"
    with engine.begin() as conn:  # put 20 papers a day on the feed, for 100 days
        if database == "sqlite":  # days written by an earlier version without them matched no feed query
            conn.execute(text("UPDATE papers SET submitted_on_daily_at = submitted_on_daily_at || '.000000' "
                              "WHERE length(submitted_on_daily_at) = 19"))
        conn.execute(text(  # text(): its % reach psycopg escaped
            f"UPDATE papers SET submitted_on_daily_at = {day}, "
            "upvotes = pk % 37 WHERE pk % 50 = 0 AND submitted_on_daily_at IS NULL"))
        # The papers people open: those on the feed, 200 of them in turn.
        paper_ids = [r[0] for r in conn.execute(text("SELECT id FROM papers WHERE pk % 50 = 0 "
                                                     "ORDER BY pk LIMIT 200"))]
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()
    return url, paper_ids


async def load(url_of, seconds: float, clients: int) -> dict:  # noqa: ANN001
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=clients)) as client:
        async def worker(n: int) -> None:
            nonlocal errors
            i = n
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.get(url_of(i))
                    errors += response.status_code != 200
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - started)
                i += clients

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    ms = sorted(x * 1000 for x in latencies)
    return {"requests_per_s": round(len(ms) / elapsed, 1), "p50_ms": round(statistics.median(ms), 1),
            "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1), "requests": len(ms), "errors": errors}


def load_with_wrk(base: str, paths: list[str], seconds: float, clients: int) -> dict:
    """The same load from wrk (C, one thread): it leaves the server more of the two cores."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as listing:
        listing.write("\n".join(paths) + "\n")
        listing.flush()
        out = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
                              "-s", str(HERE / "wrk_paths.lua"), base],
                             env=os.environ | {"WRK_PATHS": listing.name}, capture_output=True, text=True,
                             check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"requests_per_s": round(r["requests"] / r["seconds"], 1), "p50_ms": r["p50_ms"],
            "p95_ms": r["p95_ms"], "requests": r["requests"], "errors": r["errors"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python",
                        help="The load generator (default: wrk when installed, else an asyncio client).")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/dailypapers-bench-search"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    runs = [db for db in ("sqlite", "postgresql") if args.database in (db, "both")]
    figures = {}
    for name in runs:
        print(name)
        figures[name] = run(args, name)
    if len(figures) == 1:
        figures = figures[name]
    if args.json:
        print(json.dumps(figures))


def run(args, database: str) -> dict:  # noqa: ANN001
    url, paper_ids = prepare(args.workdir, args.papers, database)
    port = free_port()
    env = os.environ | {"DAILYPAPERS_DATABASE_URL": url, "DAILYPAPERS_DATA_DIR": str(args.workdir),
                        "DAILYPAPERS_MAIL_SCHEDULE": "off"}
    server = subprocess.Popen([str(Path(sys.executable).with_name("dailypapers")), "serve", "--port", str(port),
                               "--workers", str(args.workers)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(base + "/static/app.css", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        paths = {
            "static_floor": ["/static/app.css"],
            "home": ["/"],
            # The same page rendered each time: no two URLs alike, so no kept page serves (web/pagecache.py).
            "home_rendered": [f"/?r={i}" for i in range(50_000)],
            "paper": [f"/papers/{paper_id}" for paper_id in paper_ids],
            "search": [f"/search?{urlencode({'q': q})}" for q in SEARCHES],
            # The same searches made afresh each time (a kept search page serves only the same URL).
            "search_rendered": [f"/search?{urlencode({'q': SEARCHES[i % len(SEARCHES)], 'r': i})}"
                                for i in range(50_000)],
        }
        figures = {"database": database, "papers": args.papers, "clients": args.clients, "workers": args.workers,
                   "client": args.client}
        for name, listed in paths.items():
            # Steady state: every worker has loaded the model and the indexes and, for the pages asked
            # for again and again, has kept each (they are kept for a minute: a run may see one
            # renewal). A new connection each time: the workers take turns accepting them.
            if len(listed) < 1000:
                for path in listed:
                    for _ in range(args.workers * 2):
                        httpx.get(base + path, timeout=120)
            if args.client == "wrk":
                figures[name] = load_with_wrk(base, listed, args.seconds, args.clients)
            else:
                figures[name] = asyncio.run(load(lambda i, listed=listed: base + listed[i % len(listed)],
                                                 args.seconds, args.clients))
            r = figures[name]
            print(f"{name:>13}: {r['requests_per_s']:>7} req/s  p50 {r['p50_ms']:>6} ms  p95 {r['p95_ms']:>6} ms"
                  f"  ({r['requests']} requests, {r['errors']} errors)")
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:  # workers still busy with queued searches
            server.kill()
            server.wait()
    return figures


if __name__ == "__main__":
    main()
