"""PostgreSQL's engine as the web uses it: reads in autocommit (one round trip a statement), writes in
transactions, pooled connections checked without a round trip, hnsw.ef_search set once per session."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from psycopg import pq
from sqlalchemy import event, insert, select, text

from dailypapers.domain import Paper
from dailypapers.ingest import ingest
from dailypapers.search.backends import postgres
from dailypapers.search.filters import Filters
from dailypapers.store.db import migrate, open_engine
from dailypapers.store.schema import organizations, paper_embeddings, papers


@pytest.fixture
def pg(postgres_url):  # noqa: ANN001
    engine = open_engine(postgres_url)
    migrate(engine)
    yield engine
    engine.dispose()


def volcanic(i: int) -> tuple[str, Paper]:
    return (f"t{i}", Paper(id=f"2503.{i:05d}", title=f"Volcanic ash dispersion {i}", summary="We model ash.",
                           categories=["physics.ao-ph"], published_at=datetime(2025, 3, 1)))


@pytest.fixture
def embedded(pg):  # noqa: ANN001
    """A few papers with vectors (random, unit length), so that the HNSW side finds enough."""
    ingest(pg, [volcanic(i) for i in range(1, 13)])
    rng = np.random.default_rng(3)
    with pg.begin() as conn:
        pks = conn.execute(select(papers.c.pk)).scalars().all()
        vectors = rng.standard_normal((len(pks), 384)).astype(np.float32)
        conn.execute(insert(paper_embeddings), [
            {"paper_pk": pk, "model": "m", "vector": postgres.vector_value(v / np.linalg.norm(v)), "seq": pk}
            for pk, v in zip(pks, vectors)])
    pg.dispose()  # the pool starts empty: a test's connections one after the other are one connection
    return pg


def statements(engine) -> list[str]:  # noqa: ANN001
    """Every statement the engine sends from now on (SQLAlchemy's cursor events)."""
    sent: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda conn, cur, statement, *_: sent.append(statement))
    return sent


def test_a_read_sends_its_statements_and_nothing_else(pg):
    with pg.connect() as conn:
        first = conn.execute(text("SELECT pg_current_xact_id()")).scalar_one()
        second = conn.execute(text("SELECT pg_current_xact_id()")).scalar_one()
        # No transaction is left open on the server between statements: no BEGIN went before
        # them, and none needs a ROLLBACK when the connection goes back to the pool.
        assert conn.connection.dbapi_connection.info.transaction_status == pq.TransactionStatus.IDLE
    assert second != first  # each statement was a transaction of its own


def test_a_write_is_one_transaction(pg):
    with pg.begin() as conn:
        first = conn.execute(text("SELECT pg_current_xact_id()")).scalar_one()
        assert conn.execute(text("SELECT pg_current_xact_id()")).scalar_one() == first
    with pytest.raises(RuntimeError), pg.begin() as conn:
        conn.execute(insert(organizations).values(name="lab", fullname="A lab"))
        raise RuntimeError("the write fails half way")
    with pg.connect() as conn:
        assert conn.execute(select(organizations.c.name)).all() == []  # rolled back


def test_a_pooled_connection_the_server_closed_is_replaced_before_use(pg):
    with pg.connect() as conn:
        gone = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with pg.connect() as other, pg.connect() as admin:  # a second connection ends the first's backend
        assert other.execute(text("SELECT pg_backend_pid()")).scalar_one() == gone  # pooled, reused
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": gone})
    for _ in range(50):  # the server closes its end a moment later
        with pg.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        if pid != gone:
            break
    assert pid != gone
    sent = statements(pg)
    with pg.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert sent == ["SELECT 1"]  # no ping before it


def test_the_web_serves_again_after_the_database_restarted_its_connections(postgres_url, tmp_path):
    from fastapi.testclient import TestClient

    from dailypapers.config import get_settings
    from dailypapers.web.app import create_app

    engine = open_engine(postgres_url)
    migrate(engine)
    ingest(engine, [volcanic(1)])
    settings = get_settings(database_url=postgres_url, data_dir=tmp_path, base_url="http://testserver",
                            embedding_runtime="off", mail_schedule=False)
    with TestClient(create_app(settings)) as client:
        assert client.get("/papers/2503.00001").status_code == 200
        with engine.connect() as conn:  # what a restart does to every other connection
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        for _ in range(3):
            assert client.get("/papers/2503.00001").status_code == 200
    engine.dispose()


def test_hnsw_ef_search_is_set_once_per_pooled_session(embedded):
    pg = embedded
    q = np.ones(384, np.float32) / np.sqrt(384)
    sent = statements(pg)
    with pg.connect() as conn:
        postgres.nearest(conn, q, Filters(), 10, "m")
        postgres.nearest(conn, q, Filters(), 10, "m")
        assert conn.execute(text("SHOW hnsw.ef_search")).scalar_one() == str(postgres.PG_MIN_EF_SEARCH)
    with pg.connect() as conn:  # the same pooled connection, the same session
        postgres.nearest(conn, q, Filters(), 10, "m")
    assert [s for s in sent if s.startswith("SET")] == [f"SET hnsw.ef_search = {postgres.PG_MIN_EF_SEARCH}"]


def test_in_a_transaction_hnsw_ef_search_is_set_for_that_transaction_alone(embedded):
    pg = embedded
    q = np.ones(384, np.float32) / np.sqrt(384)
    sent = statements(pg)
    with pg.begin() as conn:
        postgres.nearest(conn, q, Filters(), 10, "m")
        assert conn.execute(text("SHOW hnsw.ef_search")).scalar_one() == str(postgres.PG_MIN_EF_SEARCH)
    with pg.connect() as conn:  # the same pooled connection: back to the session's value
        assert conn.execute(text("SHOW hnsw.ef_search")).scalar_one() == "40"  # pgvector's default
    assert [s for s in sent if s.startswith("SET")] == [f"SET LOCAL hnsw.ef_search = {postgres.PG_MIN_EF_SEARCH}"]
