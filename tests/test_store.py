"""The schema on both databases: migrations, constraints, the full-text index kept in step."""

from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from dailypapers.ingest import ingest
from dailypapers.domain import Paper
from dailypapers.search.filters import Filters
from dailypapers.search.query import parse_query
from dailypapers.search.backends import upkeep
from dailypapers.search.text import text_search
from dailypapers.store.db import is_current, migrate
from dailypapers.store.schema import papers


def test_migrations_reach_head_and_rerun_safely(engine):
    assert is_current(engine)
    migrate(engine)  # a second run changes nothing and does not fail
    assert is_current(engine)
    assert {"papers", "organizations", "users"} <= set(inspect(engine).get_table_names())


def test_paper_id_is_unique(engine):
    row = dict(id="2101.00001", title="t", summary="s", authors=[], num_authors=0, categories="",
               versions=[], upvotes=0, source_upvotes=0, source="test", hidden=False,
               ingested_at=__import__("datetime").datetime(2025, 1, 1),
               changed_at=__import__("datetime").datetime(2025, 1, 1))
    with engine.begin() as conn:
        conn.execute(papers.insert(), row)
    try:
        with engine.begin() as conn:
            conn.execute(papers.insert(), row)
    except IntegrityError:
        pass
    else:
        raise AssertionError("a second paper with the same id was accepted")
    with engine.connect() as conn:
        assert conn.execute(select(papers.c.id)).scalars().all() == ["2101.00001"]


def test_in_list_binds_a_list_of_any_length_as_one_parameter(engine):
    from dailypapers.store.backend import in_list

    rows = [dict(id=f"2101.{n:05d}", title="t", summary="s", authors=[], num_authors=0, categories="",
                 versions=[], upvotes=0, source_upvotes=0, source="test", hidden=False,
                 ingested_at=__import__("datetime").datetime(2025, 1, 1),
                 changed_at=__import__("datetime").datetime(2025, 1, 1)) for n in range(1, 6)]
    with engine.begin() as conn:
        conn.execute(papers.insert(), rows)
    by_pk = select(papers.c.id).where(in_list(papers.c.pk, "pks")).order_by(papers.c.id)
    by_id = select(papers.c.id).where(in_list(papers.c.id, "ids")).order_by(papers.c.id)
    with engine.connect() as conn:
        pks = conn.execute(select(papers.c.pk).order_by(papers.c.id)).scalars().all()
        assert conn.execute(by_pk, {"pks": pks[1:3]}).scalars().all() == ["2101.00002", "2101.00003"]
        assert conn.execute(by_pk, {"pks": pks + [10**9]}).scalars().all() == [r["id"] for r in rows]
        assert conn.execute(by_pk, {"pks": []}).scalars().all() == []
        # Strings too; quotes and brackets in a value are data, never syntax.
        assert conn.execute(by_id, {"ids": ["2101.00005", "x') OR 1=1 --", '"]']}).scalars().all() == ["2101.00005"]


def test_insert_many_stores_what_sqlalchemys_own_insert_stores(engine):
    import json
    from datetime import datetime

    from sqlalchemy import func

    from dailypapers.store.bulk import insert_many

    def row(n, **kw):
        return dict(id=f"2101.{n:05d}", title="t\u00e9", summary="s", authors=[{"name": "A. \u00c9"}],
                    num_authors=1, categories="cs.LG", versions=[{"version": 1}], upvotes=3, source_upvotes=3,
                    source="test", hidden=n % 2 == 0, published_at=datetime(2025, 1, 2, 3, 4, 5, 6),
                    ingested_at=datetime(2025, 1, 1), changed_at=datetime(2025, 1, 1), doi=None) | kw

    ours = [row(n) | {"authors": json.dumps(row(n)["authors"]), "versions": json.dumps(row(n)["versions"])}
            for n in (1, 2)]
    next_seq = select(func.coalesce(func.max(papers.c.text_seq), 0) + 1).scalar_subquery()
    with engine.begin() as conn:
        conn.execute(papers.insert(), [row(3), row(4)])
        insert_many(conn, papers, ours, serialized=("authors", "versions"), text_seq=next_seq)
        insert_many(conn, papers, [])  # nothing to do
    columns = [c for c in papers.c if c.name not in ("pk", "id", "text_seq", "search_vector")]
    with engine.connect() as conn:
        stored = {r.id: r for r in conn.execute(select(papers.c.id, papers.c.text_seq, *columns))}
        # The stored form, compared without SQLAlchemy's decoding (dates as text on SQLite).
        raw = dict(conn.exec_driver_sql("SELECT id, CAST(published_at AS TEXT) FROM papers").all())
    for theirs, mine in (("2101.00003", "2101.00001"), ("2101.00004", "2101.00002")):
        assert stored[mine][2:] == stored[theirs][2:]
        assert raw[mine] == raw[theirs]
    assert stored["2101.00001"].authors == [{"name": "A. \u00c9"}] and stored["2101.00002"].hidden is True
    assert stored["2101.00003"].text_seq == 0 and stored["2101.00001"].text_seq >= 1  # the subquery ran


def _fulltext_ids(engine, word):
    with engine.connect() as conn:
        pks = [hit.pk for hit in text_search(conn, parse_query(word), Filters(), 100)]
        return sorted(conn.execute(select(papers.c.id).where(papers.c.pk.in_(pks))).scalars())


def test_fulltext_index_follows_inserts_updates_and_author_names(engine):
    ingest(engine, [("record 1", Paper(id="2101.00001", title="Graph networks", summary="We study graphs."))])
    ingest(engine, [("record 1", Paper(id="2101.00002", title="Other", summary="Nothing here.",
                                       authors=[__import__("dailypapers.domain").domain.Author("Ada Lovelace")]))])
    assert _fulltext_ids(engine, "graphs") == ["2101.00001"]
    assert _fulltext_ids(engine, "lovelace") == ["2101.00002"]
    ingest(engine, [("record 1", Paper(id="2101.00001", title="Transformers", summary="We study attention."))])
    assert _fulltext_ids(engine, "graphs") == []
    assert _fulltext_ids(engine, "attention") == ["2101.00001"]


def test_a_database_from_before_0005_drops_fts5_and_its_papers_become_searchable(tmp_path):
    """Upgrading: the FTS5 table and its triggers go; existing papers get a text_seq and are indexed."""
    from alembic import command
    from sqlalchemy import text as sql

    from dailypapers.store.db import _alembic_config, open_engine

    engine = open_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
        conn.execute(sql("CREATE VIRTUAL TABLE papers_fts USING fts5(title, summary, authors)"))
        conn.execute(sql("CREATE TRIGGER papers_fts_delete AFTER DELETE ON papers BEGIN "
                         "DELETE FROM papers_fts WHERE rowid = old.pk; END"))
        conn.execute(sql(
            "INSERT INTO papers (id, title, summary, authors, num_authors, categories, versions, upvotes, "
            "source_upvotes, source, hidden, ingested_at, changed_at) VALUES ('2101.00001', 'Graph networks', "
            "'We study graphs.', '[]', 0, 'cs.LG', '[]', 0, 0, 'arxiv', 0, '2025-01-01', '2025-01-01')"))
    migrate(engine)
    with engine.connect() as conn:
        names = set(conn.execute(sql("SELECT name FROM sqlite_master")).scalars())
        assert "papers_fts" not in names and "papers_fts_delete" not in names
        assert conn.execute(select(papers.c.text_seq)).scalar_one() == 1
    upkeep(engine)  # a search only reads: the writers' upkeep step indexes them
    assert _fulltext_ids(engine, "graphs") == ["2101.00001"]
    engine.dispose()
