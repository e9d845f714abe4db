"""Fixtures shared by the whole suite: the recorded data beside the project, fresh databases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# ../shared/data beside the checkout (read-only; tests read it from there, never copy it).
SHARED_DATA = Path(os.environ.get("DAILYPAPERS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
RECORDED = SHARED_DATA / "recorded"


def pytest_sessionstart(session) -> None:  # noqa: ANN001
    """Without the shared data, say so once instead of failing dozens of tests one by one."""
    if not SHARED_DATA.is_dir():
        pytest.exit(f"the tests read ../shared/data beside the checkout and it is missing: {SHARED_DATA} "
                    "(set DAILYPAPERS_SHARED_DATA to where it is; see the README)", returncode=4)


@pytest.fixture(scope="session")
def recorded() -> Path:
    assert RECORDED.is_dir(), f"the recorded responses are missing: {RECORDED}"
    return RECORDED


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert SHARED_DATA.is_dir(), f"the shared data is missing: {SHARED_DATA}"
    return SHARED_DATA


# --- databases: every storage test runs on a fresh SQLite file and on a fresh PostgreSQL database ---

import itertools  # noqa: E402
import tempfile  # noqa: E402

from sqlalchemy import create_engine, text  # noqa: E402

from dailypapers.store.db import migrate, open_engine  # noqa: E402

_pg_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL 16 with pgvector (the pgserver package), started once for the session."""
    import pgserver

    datadir = tempfile.mkdtemp(prefix="dailypapers-pg-")  # under the temp dir: pgserver opens its parents
    server = pgserver.get_server(datadir, cleanup_mode="delete")  # stopped and removed at the end
    yield server
    server.cleanup()


def _postgres_url(server) -> str:  # noqa: ANN001
    return server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def postgres_url(postgres_server) -> str:  # noqa: ANN001
    """A URL to a brand-new, empty PostgreSQL database."""
    name = f"test_{os.getpid()}_{next(_pg_counter)}"
    admin = create_engine(_postgres_url(postgres_server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    base = _postgres_url(postgres_server)
    path, _, query = base.partition("?")
    yield f"{path.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    # Engines a test left open (apps, threads) would hold their pooled connections until collected,
    # and the server takes 100 at most: dropping the database ends them (and frees its disk).
    admin = create_engine(_postgres_url(postgres_server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:  # noqa: ANN001
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'dailypapers.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(db_url):  # noqa: ANN001
    """A migrated, empty database on each backend; closed after the test."""
    eng = open_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()
