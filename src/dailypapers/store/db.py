"""Opening the database and bringing its schema up to date (Alembic migrations, run from code)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.engine.url import make_url

from dailypapers.store.backend import configure_engine, engine_options, is_sqlite

MIGRATIONS = Path(__file__).with_name("migrations")


SEARCHES = "dailypapers_searches"  # the engine's execution option: False in a process that serves no searches


def open_engine(url: str, *, serving: bool = False, data_dir: Path | None = None,
                searches: bool = True) -> Engine:
    """An engine for the URL; a SQLite file's folder is created when missing. ``serving``: for a
    web worker (see ``backend.configure_engine``). ``data_dir``: where a PostgreSQL database's
    full-text index lives on this machine (search/fulltext.py; in memory without it). Not
    ``searches`` (a PostgreSQL jobs worker): this process keeps no full-text index of its own, the
    web processes of each machine keep theirs (SQLite's index, beside the file, is every process's)."""
    parsed = make_url(url)
    if is_sqlite(parsed) and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **engine_options(parsed))
    configure_engine(engine, serving=serving)
    if data_dir is not None:
        engine.update_execution_options(dailypapers_index_root=str(data_dir))  # fulltext.INDEX_ROOT
    if not searches:
        engine.update_execution_options(**{SEARCHES: False})
    return engine


def database_file(engine: Engine) -> Path | None:
    """A SQLite database's file, resolved (its indexes live beside it); None for an in-memory one or
    PostgreSQL."""
    database = engine.url.database
    if not is_sqlite(engine) or database in (None, "", ":memory:") or database.startswith("file:"):
        return None
    return _resolved(database)


@lru_cache(maxsize=64)
def _resolved(database: str) -> Path:  # a search asks every time: resolving costs a syscall per folder
    return Path(database).expanduser().resolve()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine) -> None:
    """Create or upgrade the schema to the newest migration (safe to run on every start)."""
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def is_current(engine: Engine) -> bool:
    """True when the database has every migration applied."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == head
