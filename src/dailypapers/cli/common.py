"""What every command needs: settings, an up-to-date database, and one-line failures."""

from __future__ import annotations

from datetime import date, datetime
from typing import NoReturn

import typer
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from dailypapers.config import Settings, get_settings, hide_password
from dailypapers.store.db import migrate, open_engine


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def settings_or_fail() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        fail(f"setting DAILYPAPERS_{str(err['loc'][0]).upper()}: {err['msg']}")


def parse_day(value: str | None, option: str) -> date | None:
    """A YYYY-MM-DD option, or one clear line naming the option."""
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        fail(f"{option} {value!r}: expected a date like 2025-01-31")


def open_store() -> Engine:
    """The database from the settings, migrated to the current schema."""
    settings = settings_or_fail()
    try:
        engine = open_engine(settings.db_url, data_dir=settings.data_dir)
        migrate(engine)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        fail(f"cannot open the database {hide_password(settings.db_url)}: {reason}")
    return engine
