"""Everything that differs between SQLite and PostgreSQL lives here, and nowhere else.

Full text: PostgreSQL keeps a stored, weighted ``tsvector`` column with a GIN index. SQLite keeps
none in the database: its full-text index is a Tantivy index beside the file (search/fulltext.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from select import POLLIN, poll

from sqlalchemy import (ColumnElement, Integer, String, bindparam, column, event, exists, func, literal_column,
                        select, table, text, type_coerce)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import NullType, TypeDecorator

def is_sqlite(bind: Engine | Connection | URL) -> bool:
    """An engine, connection or URL of SQLite (for the few places outside this module that must know,
    such as migrations and where a database file lies)."""
    return (bind.get_backend_name() if isinstance(bind, URL) else bind.dialect.name) == "sqlite"


def is_postgresql(bind: Engine | Connection | URL) -> bool:
    return (bind.get_backend_name() if isinstance(bind, URL) else bind.dialect.name) == "postgresql"


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


def author_names(conn: Connection) -> ColumnElement:
    """The papers' author names as one string, computed by the database (no JSON decoding in Python)."""
    if conn.dialect.name == "sqlite":
        return literal_column(
            "(SELECT group_concat(json_extract(value, '$.name'), ', ') FROM json_each(papers.authors))")
    return literal_column("(SELECT string_agg(a->>'name', ', ') FROM jsonb_array_elements(papers.authors) a)")


# Who wrote what, for an author's papers. PostgreSQL: a GIN index on the JSON (containment). SQLite
# has no index into JSON: a table of (name, paper) that triggers keep equal to every paper's authors,
# whatever writes the papers (ingest, bulk upserts, edits).
_NAME = "json_extract(value, '$.name')"
_AUTHOR_INDEX = {
    "postgresql": ["CREATE INDEX IF NOT EXISTS ix_papers_authors ON papers USING gin (authors jsonb_path_ops)"],
    "sqlite": [
        "CREATE TABLE IF NOT EXISTS paper_authors (name TEXT NOT NULL, paper_pk INTEGER NOT NULL, "
        "PRIMARY KEY (name, paper_pk)) WITHOUT ROWID",
        "CREATE INDEX IF NOT EXISTS ix_paper_authors_paper_pk ON paper_authors (paper_pk)",
        f"INSERT OR IGNORE INTO paper_authors SELECT {_NAME}, papers.pk FROM papers, json_each(papers.authors) "
        f"WHERE {_NAME} IS NOT NULL",
        f"CREATE TRIGGER IF NOT EXISTS paper_authors_insert AFTER INSERT ON papers BEGIN "
        f"INSERT OR IGNORE INTO paper_authors SELECT {_NAME}, NEW.pk FROM json_each(NEW.authors) "
        f"WHERE {_NAME} IS NOT NULL; END",
        f"CREATE TRIGGER IF NOT EXISTS paper_authors_update AFTER UPDATE OF authors ON papers BEGIN "
        f"DELETE FROM paper_authors WHERE paper_pk = OLD.pk; "
        f"INSERT OR IGNORE INTO paper_authors SELECT {_NAME}, NEW.pk FROM json_each(NEW.authors) "
        f"WHERE {_NAME} IS NOT NULL; END",
        "CREATE TRIGGER IF NOT EXISTS paper_authors_delete AFTER DELETE ON papers BEGIN "
        "DELETE FROM paper_authors WHERE paper_pk = OLD.pk; END",
    ],
}
_DROP_AUTHOR_INDEX = {
    "postgresql": ["DROP INDEX IF EXISTS ix_papers_authors"],
    "sqlite": ["DROP TRIGGER IF EXISTS paper_authors_insert", "DROP TRIGGER IF EXISTS paper_authors_update",
               "DROP TRIGGER IF EXISTS paper_authors_delete", "DROP TABLE IF EXISTS paper_authors"],
}
_paper_authors = table("paper_authors", column("name"), column("paper_pk"))


def create_author_index(conn: Connection) -> None:
    """Make an author's papers an index lookup (migration 0009)."""
    for statement in _AUTHOR_INDEX.get(conn.dialect.name, []):
        conn.execute(text(statement))


def drop_author_index(conn: Connection) -> None:
    for statement in _DROP_AUTHOR_INDEX.get(conn.dialect.name, []):
        conn.execute(text(statement))


def _author_name_rows(conn: Connection, authors: ColumnElement) -> tuple:
    """The rows of a paper's ``authors`` JSON list, and each one's name, as a correlated table."""
    if conn.dialect.name == "sqlite":
        rows = func.json_each(authors).table_valued("value")
        return rows, func.json_extract(rows.c.value, "$.name")
    rows = func.jsonb_array_elements(authors).table_valued("value")
    return rows, rows.c.value.op("->>")("name")


def has_author(conn: Connection, authors: ColumnElement, name: str) -> ColumnElement:
    """``authors`` (a papers' JSON list) has an author named exactly ``name``.

    PostgreSQL: JSON containment, which the GIN index (jsonb_path_ops, migration 0009) answers.
    SQLite: the paper_authors table the triggers keep (migration 0009). ``authors`` must be
    ``papers.authors``.
    """
    if conn.dialect.name != "sqlite":
        return type_coerce(authors, JSONB).op("@>")(bindparam("author_doc", [{"name": name}], type_=JSONB))
    return authors.table.c.pk.in_(select(_paper_authors.c.paper_pk).where(_paper_authors.c.name == name))


def any_author_in(conn: Connection, authors: ColumnElement, names) -> ColumnElement:  # noqa: ANN001
    """``authors`` has an author whose name is in ``names`` (a one-column select)."""
    rows, row_name = _author_name_rows(conn, authors)
    return exists(select(1).select_from(rows).where(row_name.in_(names)))


class _ListValue(TypeDecorator):
    """A list bound as one parameter: JSON text on SQLite, an array on PostgreSQL."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect):  # noqa: ANN001, ANN201
        return dialect.type_descriptor(ARRAY(String) if dialect.name == "postgresql" else String())

    def process_bind_param(self, value, dialect):  # noqa: ANN001, ANN201
        values = list(value)
        return values if dialect.name == "postgresql" else json.dumps(values)


class _InList(ColumnElement):
    inherit_cache = True
    type = NullType()  # a condition, not a boolean value (which SQLite would compare to 1)
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement),
                           ("values", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: ColumnElement, values: ColumnElement) -> None:
        self.column, self.values = column, values


@compiles(_InList, "sqlite")
def _in_json_list(element: _InList, compiler, **kw) -> str:  # noqa: ANN001
    column, values = compiler.process(element.column, **kw), compiler.process(element.values, **kw)
    return f"{column} IN (SELECT value FROM json_each({values}))"


@compiles(_InList)
def _in_array(element: _InList, compiler, **kw) -> str:  # noqa: ANN001
    column, values = compiler.process(element.column, **kw), compiler.process(element.values, **kw)
    item = "BIGINT" if isinstance(element.column.type, Integer) else "TEXT"
    return f"{column} = ANY(CAST({values} AS {item}[]))"


def in_list(column: ColumnElement, name: str) -> ColumnElement:
    """``column`` is one of the list passed as parameter ``name`` when the statement runs.

    Unlike ``column.in_([...])``, one statement serves lists of any length: built once, compiled
    once, and the list bound as one value (an IN of 200 values re-renders and binds 200 parameters,
    ~1 ms of a search).
    """
    return _InList(column, bindparam(name, type_=_ListValue()))


def refresh_statistics(engine: Engine) -> None:
    """After a bulk write: let the planner (and PostgreSQL's word statistics for ranking) see the data."""
    with engine.begin() as conn:
        conn.execute(text("PRAGMA optimize" if conn.dialect.name == "sqlite" else "ANALYZE papers"))


SQLITE_POOL = 24  # connections kept per process: more than its threads ever use at once
POSTGRES_POOL = 12  # connections a process keeps (as many more may open for a burst, closed after it)


def engine_options(url: URL) -> dict:
    """A pool that keeps the connections a busy process uses at once. With the default (5 kept, the
    rest closed on return) a web worker serving 8 requests at once opened and closed connections all
    the time: on SQLite each started with a cold page cache; on PostgreSQL each was a new server
    process (85 in 5 s of 16 clients on `/` at 100k papers), whose statements were planned afresh,
    where a kept connection runs them prepared. PostgreSQL counts them: a web process keeps up to
    ``POSTGRES_POOL`` (docs/operating.md). A pooled PostgreSQL connection is checked before use by
    ``configure_engine``, without a round trip. psycopg decodes JSONB (authors, versions) with
    orjson: reading a feed page of 50 papers took 2.8 ms of CPU with the standard library's, 2.3 ms."""
    if url.get_backend_name() != "sqlite":
        import orjson

        return {"pool_size": POSTGRES_POOL, "max_overflow": POSTGRES_POOL, "json_deserializer": orjson.loads}
    if url.database in (None, "", ":memory:"):
        return {}
    return {"pool_size": SQLITE_POOL, "max_overflow": SQLITE_POOL}


SERVING_MMAP_BYTES = 4 << 30  # at most this much of a SQLite file is mapped by a web worker


def configure_engine(engine: Engine, *, serving: bool = False) -> None:
    """SQLite: WAL (readers never block the writer), enforced foreign keys, a busy timeout.
    PostgreSQL: reads in autocommit, and pooled connections checked without a round trip (see
    ``_PostgresEngine``).

    ``serving`` (a web worker, reading all day): the file is memory-mapped, so a page read is a
    memory access rather than a copy into each pooled connection's own small cache (measured:
    ~1.2 ms less CPU per search page at 100k papers). Mapped pages are the OS's file cache, shared
    between the workers; ingest, whose resident memory is measured, does not map.
    """
    if engine.dialect.name == "postgresql":
        engine.__class__ = _PostgresEngine  # same engine, two methods changed
        event.listen(engine.pool, "checkout", _check_alive)
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA busy_timeout = 30000")
        cur.execute("PRAGMA synchronous = NORMAL")
        if serving:
            cur.execute(f"PRAGMA mmap_size = {SERVING_MMAP_BYTES}")
        cur.close()


class _PostgresEngine(Engine):
    """A PostgreSQL engine whose reads cost their statements' round trips alone.

    Every read in dailypapers is ``engine.connect()`` and every write ``engine.begin()``. Here
    ``connect()`` gives an autocommit connection, so a read sends no BEGIN before its first
    statement and no ROLLBACK when it is returned; under READ COMMITTED each statement saw its own
    snapshot anyway. A one-statement read went from 3 round trips (4 with a ping) to 1; on a busy
    machine each round trip waits for the server process to be scheduled (docs/benchmarks.md,
    "PostgreSQL beside SQLite"). ``begin()`` is a transaction as always.
    """

    def connect(self) -> Connection:
        return super().connect().execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with super().connect() as conn, conn.begin():
            yield conn


def _check_alive(dbapi_conn, _record, _proxy) -> None:  # noqa: ANN001
    """A pooled connection the server has closed (a restart, an idle timeout, a terminated backend)
    is replaced before use. An idle connection never has anything to read, so a readable socket
    (the server's goodbye, or end of file) means it is gone: one poll, where ``pool_pre_ping``
    sent a statement and waited for the answer on every checkout."""
    try:
        poller = poll()
        poller.register(dbapi_conn.fileno(), POLLIN)
        gone = dbapi_conn.closed or bool(poller.poll(0))
    except Exception as exc:  # noqa: BLE001 - the driver's own error for a lost connection
        raise DisconnectionError(str(exc)) from exc
    if gone:
        raise DisconnectionError("the server closed this pooled connection")


def lock_key(conn: Connection, key: str) -> None:
    """Serialize the transactions that name ``key`` until the end of this one.

    PostgreSQL: a transaction-scoped advisory lock. SQLite has one writer at a time: the caller's
    next statement must write (it then holds the database's write lock until commit).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})


# What an anonymous reader's page shows changes with these tables (papers and their votes, comments,
# organizations, the names and avatars of users): each write raises the counter "pages" in the
# writer's own transaction, whatever code writes (web, CLI, jobs on any machine), so a page cached at
# a value is current as long as the value is (web/pagecache.py). SQLite: once per row. PostgreSQL:
# once per transaction (the row stays locked to its end anyway), before the statement's first row, so
# every writer takes the counter's lock before any row lock (a vote that locked its paper first could
# otherwise wait for an ingest that holds the counter and then wants that paper: a deadlock).
PAGE_TABLES = {"papers": "INSERT OR UPDATE OR DELETE", "comments": "INSERT OR UPDATE OR DELETE",
               "organizations": "INSERT OR UPDATE OR DELETE",
               "users": "UPDATE OF username, fullname, avatar_url OR DELETE"}
_BUMP = "UPDATE counters SET value = value + 1 WHERE name = 'pages'"
_PAGES_CHANGED = f"""CREATE OR REPLACE FUNCTION dailypapers_pages_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('dailypapers.pages_changed', true) IS DISTINCT FROM txid_current()::text THEN
        {_BUMP};
        PERFORM set_config('dailypapers.pages_changed', txid_current()::text, true);
    END IF;
    RETURN NULL;
END $$"""


def _sqlite_page_triggers() -> list[tuple[str, str]]:
    """(name, event) for SQLite, which has one event per trigger."""
    out = []
    for name, events in PAGE_TABLES.items():
        for event_ in events.split(" OR "):
            out.append((f"pages_{name}_{event_.split()[0].lower()}", f"{event_} ON {name}"))
    return out


def create_page_triggers(conn: Connection) -> None:
    """The counter "pages" and the triggers that raise it (migration 0011)."""
    conn.execute(text("INSERT INTO counters (name, value) VALUES ('pages', 0)"))
    if conn.dialect.name == "postgresql":
        conn.execute(text(_PAGES_CHANGED))
        for watched, events in PAGE_TABLES.items():
            conn.execute(text(f"CREATE TRIGGER pages_changed BEFORE {events} ON {watched} "
                              "FOR EACH STATEMENT EXECUTE FUNCTION dailypapers_pages_changed()"))
        return
    for name, on in _sqlite_page_triggers():
        conn.execute(text(f"CREATE TRIGGER {name} AFTER {on} BEGIN {_BUMP}; END"))


def drop_page_triggers(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        for watched in PAGE_TABLES:
            conn.execute(text(f"DROP TRIGGER IF EXISTS pages_changed ON {watched}"))
        conn.execute(text("DROP FUNCTION IF EXISTS dailypapers_pages_changed()"))
    else:
        for name, _ in _sqlite_page_triggers():
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
    conn.execute(text("DELETE FROM counters WHERE name = 'pages'"))
