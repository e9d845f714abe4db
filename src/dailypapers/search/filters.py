"""Search filters and sorts, as SQLAlchemy conditions on the papers table (both databases)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import TypeVar

from sqlalchemy import ColumnElement, literal, or_, select

from dailypapers.store.schema import organizations, papers

SORTS = ("relevance", "trending", "newest", "upvotes")


@dataclass(frozen=True)
class Filters:
    since: date | None = None  # published on or after
    until: date | None = None  # published on or before
    categories: tuple[str, ...] = ()  # any of them; "cs" matches every cs.* category
    organization: str | None = None  # handle, e.g. "facebook"
    has_code: bool | None = None
    extra: tuple[ColumnElement, ...] = field(default=(), compare=False)

    def conditions(self) -> list[ColumnElement]:
        """Where-clauses for a query over ``papers`` (hidden papers are never found)."""
        where: list[ColumnElement] = [papers.c.hidden.is_(False), *self.extra]
        if self.since:
            where.append(papers.c.published_at >= datetime.combine(self.since, datetime.min.time()))
        if self.until and self.until < date.max:  # (the day after the last one cannot be written)
            where.append(papers.c.published_at < datetime.combine(self.until + timedelta(days=1),
                                                                  datetime.min.time()))
        if self.categories:
            padded = literal(" ") + papers.c.categories + literal(" ")
            where.append(or_(*(
                or_(padded.contains(f" {c} ", autoescape=True), padded.contains(f" {c}.", autoescape=True))
                if "." not in c else padded.contains(f" {c} ", autoescape=True)
                for c in self.categories)))
        if self.organization:
            where.append(papers.c.organization_pk.in_(
                select(organizations.c.pk).where(organizations.c.name == self.organization)))
        if self.has_code is True:
            where.append(papers.c.github_repo.is_not(None))
        elif self.has_code is False:
            where.append(papers.c.github_repo.is_(None))
        return where

    @property
    def active(self) -> bool:
        return bool(self.since or self.until or self.categories or self.organization
                    or self.has_code is not None or self.extra)


Statement = TypeVar("Statement")


def statement_for(filters: Filters, build: Callable[[Filters], Statement]) -> Statement:
    """``build(filters)``, kept per filter set: building a statement (and its cache key) costs more
    than running a small one. Filters with ``extra`` conditions, which are not part of their value,
    are built anew each time."""
    return build(filters) if filters.extra else _built(build, filters)


@lru_cache(maxsize=512)
def _built(build: Callable[[Filters], Statement], filters: Filters) -> Statement:
    return build(filters)
