"""For bench/web.py --pg-text tantivy: every Python process started with this folder on PYTHONPATH
(the server and its spawned workers) searches text with search/fulltext.py's Tantivy index in
DAILYPAPERS_BENCH_TANTIVY_DIR, fed from the database, instead of PostgreSQL's tsvector (an experiment:
what search/backends/postgres.py would do with a Tantivy index per machine)."""

import os

if folder := os.environ.get("DAILYPAPERS_BENCH_TANTIVY_DIR"):
    from pathlib import Path

    from dailypapers.search import fulltext, hybrid
    from dailypapers.search.text import TextHit

    fulltext.index_dir = lambda engine: Path(folder)  # noqa: ARG005

    def _text_search(conn, query, filters, limit, checked=None):  # noqa: ANN001, ANN202
        if query.empty or limit <= 0:
            return []
        return [TextHit(pk, s) for pk, s in fulltext.search(conn, query, filters, limit, checked)]

    hybrid.text_search = _text_search
