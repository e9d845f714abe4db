"""The schema on both databases: migrations, constraints, the full-text index kept in step."""

from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from dailypapers.ingest import ingest
from dailypapers.domain import Paper
from dailypapers.search.filters import Filters
from dailypapers.search.query import parse_query
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
