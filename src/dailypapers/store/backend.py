"""Everything that differs between SQLite and PostgreSQL lives here, and nowhere else.

Full text: PostgreSQL keeps a stored, weighted ``tsvector`` column with a GIN index. SQLite keeps
none in the database: its full-text index is a Tantivy index beside the file (search/fulltext.py).
"""

from __future__ import annotations

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine

_POSTGRES_FULLTEXT = [
    "ALTER TABLE papers ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('english', coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english', coalesce(summary, '')), 'B') || "
    "setweight(to_tsvector('english', jsonb_path_query_array(authors, '$[*].name')::text), 'C')"
    ") STORED",
    "CREATE INDEX ix_papers_search_vector ON papers USING gin (search_vector)",
]


def create_fulltext(conn: Connection) -> None:
    """PostgreSQL: add the full-text column and index (called by the first migration)."""
    if conn.dialect.name == "postgresql":
        for statement in _POSTGRES_FULLTEXT:
            conn.execute(text(statement))


def drop_fulltext(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("DROP INDEX IF EXISTS ix_papers_search_vector"))
        conn.execute(text("ALTER TABLE papers DROP COLUMN IF EXISTS search_vector"))


def refresh_statistics(engine: Engine) -> None:
    """After a bulk write: let the planner (and PostgreSQL's word statistics for ranking) see the data."""
    with engine.begin() as conn:
        conn.execute(text("PRAGMA optimize" if conn.dialect.name == "sqlite" else "ANALYZE papers"))


def configure_engine(engine: Engine) -> None:
    """SQLite: WAL (readers never block the writer), enforced foreign keys, a busy timeout."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA busy_timeout = 30000")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()
