"""SQLite's full-text index: a Tantivy index beside the database, derived from the papers table.

Why not FTS5: FTS5 scores every paper that matches any of the query's words before it can sort, so
a query of common words costs ~1.2 µs per matching paper: 1.6 s p50 at 1,000,000 papers for a
sentence-long query. Tantivy (Lucene's design, in Rust) skips whole blocks of postings that cannot
reach the top k (block-max WAND): 5 ms p50 / 11 ms p95 on the same papers and queries, from an index
of 328 MB built in 38 s (FTS5's share of the database was ~2.5 GB).

The index lives in ``<db folder>/fulltext/<db name>.v1/`` and is rebuildable at any time
(``dailypapers reindex``). Each paper's ``text_seq`` is raised whenever its title, abstract or
authors change; the index holds each paper's latest seq, so everything above its largest one is
the tail still to index. Ingest indexes its papers as it commits them (``following``), and every
other writer calls ``search.backends.upkeep`` after it commits, which indexes the tail (one writer
at a time, Tantivy's lock). A search (fulltext_search.py) only reads: its searcher reloads when any process commits.
Hidden papers stay in the index: the SQL filters of every search drop them, as they drop papers
that no longer exist.

Both backends use it: SQLite's index lies beside the database file; PostgreSQL's under each
machine's data dir (``open_engine(url, data_dir=...)``), fed from the shared papers table.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from pathlib import Path

import tantivy
from filelock import FileLock, Timeout
from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection, Engine

from dailypapers.store import backend
from dailypapers.store.db import database_file
from dailypapers.store.schema import papers

INDEX_ROOT = "dailypapers_index_root"  # the engine's execution option naming where PostgreSQL's index lives
ANALYZER = "dailypapers_en"
FIELDS = ("text", "authors")  # text: the title (TITLE_REPEAT times) then the abstract
# BM25F in one field: the title's words count three times before the whole paper saturates, as
# FTS5's column weights did. On SciFact's train split (text alone, nDCG@10): title repeated 3x 0.710,
# 2x 0.707, 4x 0.707; separate title and abstract fields with summed boosted scores at best 0.693.
TITLE_REPEAT = 3
FORMAT = 1  # part of the index's folder name: a new schema or analyzer gets a fresh index
CHUNK = 5_000  # papers read from the table and added per step while indexing
WRITER_HEAP = 32_000_000  # bytes, split between the writer's threads (Tantivy wants 15 MB each)
WRITER_THREADS = 1  # beside an ingest, which needs the other core
ALONE_THREADS = 2  # when nothing else runs: the end of an ingest, a rebuild


def _analyzer() -> tantivy.TextAnalyzer:
    # Words as FTS5's unicode61 + porter saw them: letters and digits, lowercased, accents folded,
    # English stems; absurdly long tokens dropped.
    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.remove_long(60))
            .filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.ascii_fold())
            .filter(tantivy.Filter.stemmer("english"))
            .build())


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("pk", indexed=True, fast=True)
    builder.add_integer_field("seq", fast=True)
    for name in FIELDS:
        builder.add_text_field(name, tokenizer_name=ANALYZER, index_option="position")
    return builder.build()


def index_dir(engine: Engine) -> Path | None:
    """``fulltext/<db name>.v<FORMAT>/`` beside a SQLite database file; for PostgreSQL under the
    engine's index root (the data dir: each machine keeps its own, fed from the database); None:
    the index lives in memory."""
    if path := database_file(engine):
        return path.parent / "fulltext" / f"{path.stem}.v{FORMAT}"
    root = engine.get_execution_options().get(INDEX_ROOT)
    if root is None or backend.is_sqlite(engine):
        return None
    url = engine.url
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{url.host or 'local'}-{url.port or 5432}-{url.database}")
    return Path(root) / "fulltext" / f"{name}.v{FORMAT}"


class FullTextIndex:
    """One Tantivy index of every paper's title, abstract and author names."""

    def __init__(self, path: Path | None):
        self.path = path
        self.schema = _schema()
        self.analyzer = _analyzer()
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
        self.index = tantivy.Index(self.schema, path=str(path) if path else None, reuse=True)
        self.index.register_tokenizer(ANALYZER, self.analyzer)
        self._lock = threading.Lock()  # one writer per process; Tantivy's lock file covers processes
        self._state: tuple | None = None  # (commit stamp, searcher, seq)
        self._commits = 0  # an in-memory index's own commits

    def tokens(self, text: str) -> list[str]:
        return self.analyzer.analyze(text)

    def _stamp(self) -> object:
        """Changes whenever a commit lands (Tantivy replaces meta.json at each one)."""
        if self.path is None:
            return self._commits
        try:
            stat = (self.path / "meta.json").stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def _current(self) -> tuple[tantivy.Searcher, int]:
        """A searcher on the latest commit of any process, and the largest text_seq it holds."""
        stamp = self._stamp()
        state = self._state
        if state is None or state[0] != stamp:
            self.index.reload()
            searcher = self.index.searcher()
            seq = 0
            if searcher.num_docs:
                hits = searcher.search(tantivy.Query.all_query(), 1, count=False, order_by_field="seq").hits
                seq = int(hits[0][0]) if hits else 0
            state = self._state = (stamp, searcher, seq)
        return state[1], state[2]

    def seq(self) -> int:
        """The largest text_seq indexed (0 for an empty index)."""
        return self._current()[1]

    # writing

    def catch_up(self, conn: Connection, *, wait: bool = False, rebuild: bool = False,
                 threads: int = WRITER_THREADS) -> int:
        """Index every paper whose text changed since the index's seq; returns how many.

        Without ``wait``, gives up at once (returning 0) when another thread or process is writing
        the index: it is catching up already.
        """
        if not self._lock.acquire(blocking=wait):
            return 0
        try:
            return self._catch_up(conn, wait, rebuild, threads)
        finally:
            self._lock.release()

    def _catch_up(self, conn: Connection, wait: bool, rebuild: bool, threads: int) -> int:
        if self.path is None:  # in memory: this process's lock is enough
            return self._write(conn, rebuild, threads)
        try:
            with FileLock(self.path.parent / f".{self.path.name}.lock", timeout=-1 if wait else 0):
                return self._write(conn, rebuild, threads)
        except Timeout:  # another process is writing it
            return 0

    def _write(self, conn: Connection, rebuild: bool, threads: int) -> int:
        try:
            writer = self.index.writer(WRITER_HEAP, threads)
        except ValueError as exc:
            if "LockBusy" in str(exc):  # Tantivy's own lock: a writer outside our lock file (rare)
                return 0
            raise
        try:
            if rebuild:
                writer.delete_all_documents()
            after = (0, 0) if rebuild else (self.seq(), 0)
            written = 0
            while rows := _changed(conn, after, CHUNK):
                for pk, seq, title, summary, authors in rows:
                    writer.delete_documents_by_term("pk", pk)
                    writer.add_document(tantivy.Document(
                        pk=pk, seq=seq, text=[title] * TITLE_REPEAT + [summary], authors=authors or ""))
                writer.commit()  # per chunk: the writer's memory stays bounded
                written += len(rows)
                after = (rows[-1][1], rows[-1][0])
            if rebuild and not written:
                writer.commit()
            writer.wait_merging_threads()
            self._commits += 1
        except BaseException:
            writer.rollback()
            raise
        return written

    # searching

    def top(self, query: tantivy.Query, limit: int) -> list[tuple[int, float]]:
        """(paper pk, score) of the best ``limit`` matches, best first."""
        searcher = self._current()[0]
        limit = min(limit, searcher.num_docs)  # Tantivy allocates room for ``limit`` hits up front
        if limit <= 0:
            return []
        hits = searcher.search(query, limit, count=False).hits
        if not hits:
            return []
        pks = searcher.fast_field_values("pk", [address for _, address in hits])
        return [(int(pk), float(score)) for (score, _), pk in zip(hits, pks)]


def _changed(conn: Connection, after: tuple[int, int], limit: int) -> list[tuple]:
    """The next papers in (text_seq, pk) order after ``after``: text_seq may repeat."""
    seq, pk = after
    return conn.execute(
        select(papers.c.pk, papers.c.text_seq, papers.c.title, papers.c.summary, backend.author_names(conn))
        .where(or_(papers.c.text_seq > seq, and_(papers.c.text_seq == seq, papers.c.pk > pk)))
        .order_by(papers.c.text_seq, papers.c.pk).limit(limit)).all()


_OPEN_AT_MOST = 16  # indexes a process keeps open (a process serves one database; tests make many)
_open: OrderedDict[str, FullTextIndex] = OrderedDict()
_open_lock = threading.Lock()


def open_fulltext(conn: Connection) -> FullTextIndex:
    """This process's handle on the database's index (created empty when missing)."""
    engine = conn.engine
    # One index per database in a process, whichever engine opened it first; the root of that one
    # decides where it lives (a test's engine and its app's share it).
    key = f"memory:{id(engine)}" if backend.is_sqlite(engine) and not database_file(engine) else str(engine.url)
    with _open_lock:
        index = _open.get(key)
        if index is None:
            index = _open[key] = FullTextIndex(index_dir(engine))
            while len(_open) > _OPEN_AT_MOST:
                _open.popitem(last=False)
        _open.move_to_end(key)
    return index


def sync(engine: Engine, *, wait: bool = True, rebuild: bool = False, threads: int = WRITER_THREADS) -> int:
    """Bring the index up to date with the table; returns how many papers it indexed.

    ``rebuild`` indexes every paper afresh.
    """
    with engine.connect() as conn:
        index = open_fulltext(conn)
        latest, indexed = latest_seq(conn), index.seq()
        if not rebuild and latest == indexed:
            return 0  # up to date: no writer opened, nothing committed
        rebuild = rebuild or indexed > latest  # the index is of an older database of that name
        return index.catch_up(conn, wait=wait, rebuild=rebuild, threads=threads)


def following(engine: Engine):  # noqa: ANN201 - a context manager with poke()
    """While a long write runs, keep the engine's text index up to date (the backend's ``following``:
    this class on both databases). ``poke()`` after each commit."""
    from dailypapers.search.backends import backend_for

    return backend_for(engine).following(engine)


class Following:
    """While a long write runs, index what it commits from a thread.

    Tantivy indexes in native threads without the GIL, so this work takes the other core instead
    of adding to the writer's time. ``poke()`` after each commit; leaving the block indexes the rest.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self._wake = threading.Event()
        self._done = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="fulltext-sync")

    def __enter__(self) -> Following:
        self._thread.start()
        return self

    def poke(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._done:
                    return
                sync(self.engine)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the writing thread on exit
            self._error = exc

    def __exit__(self, *exc: object) -> None:
        self._done = True
        self._wake.set()
        self._thread.join()
        if self._error is not None and exc[0] is None:
            raise self._error
        sync(self.engine, threads=ALONE_THREADS)  # the writer is done: its core is free


_LATEST_SEQ = select(func.coalesce(func.max(papers.c.text_seq), 0))


def latest_seq(conn: Connection) -> int:
    return conn.execute(_LATEST_SEQ).scalar_one()
