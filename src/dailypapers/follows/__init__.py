"""Follows and "not interested": a reader's explicit signals besides saves and votes.

A reader follows authors (the name as written on papers), arXiv categories ("cs.RO", or a whole
archive, "cs") and organizations (their handle). "Not interested" marks a paper as unwanted; it is
undone by taking the mark back. Every change raises the reader's signals version in its own
transaction (``community.signals_changed``), so cached recommendations made before it are stale.

Errors are ``community`` errors with a sentence to show: ``FollowError`` (400) names what is wrong,
``community.NotFound`` (404) a paper that is not there.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone

from sqlalchemy import ColumnElement, bindparam, delete, exists, insert, literal, or_, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from dailypapers.community import CommunityError, NotFound, signals_changed
from dailypapers.follows.taxonomy import CATEGORIES
from dailypapers.store.backend import any_author_in, in_list
from dailypapers.store.schema import dismissals, follows, organizations, papers

KINDS = ("author", "category", "organization")
AUTHOR_MAX = 300  # characters, as the column holds
_CATEGORY = re.compile(r"[a-z][a-z-]{0,19}(\.[A-Za-z-]{1,20})?")  # cs, cs.RO, cond-mat.mes-hall
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


class FollowError(CommunityError):
    """A follow refused: the sentence names the field (kind or target) and what is wrong."""


def _now(now: datetime | None) -> datetime:
    """Naive UTC, as the store keeps times."""
    now = now or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc).replace(tzinfo=None) if now.tzinfo else now


def _padded_categories() -> ColumnElement:
    return literal(" ") + papers.c.categories + literal(" ")


def _category_condition(code: str) -> ColumnElement:
    """Papers in the category (an archive code matches each of its categories), as search filters do."""
    exact = _padded_categories().contains(f" {code} ", autoescape=True)
    return exact if "." in code else or_(exact, _padded_categories().contains(f" {code}.", autoescape=True))


def check_target(conn: Connection, kind: str, target: object) -> str:
    """The target as stored, or FollowError saying why it cannot be followed."""
    if kind not in KINDS:
        raise FollowError("kind: follow an author, a category or an organization.", field="kind")
    if not isinstance(target, str) or not target.strip():
        raise FollowError(f"target: name the {kind} to follow.", field="target")
    value = target.strip()
    if kind == "author":
        if CONTROL.search(value):
            raise FollowError("target: an author's name cannot hold control characters (such as NUL or "
                              "line breaks).", field="target")
        value = " ".join(value.split())
        if len(value) > AUTHOR_MAX:
            raise FollowError(f"target: an author's name can be at most {AUTHOR_MAX} characters; this one "
                              f"has {len(value):,}.", field="target")
        return value
    if kind == "category":
        if not _CATEGORY.fullmatch(value):
            raise FollowError(f"target: {value[:60]!r} does not look like an arXiv category (cs.RO, "
                              f"math.AG, cs).", field="target")
        if value not in CATEGORIES and not conn.execute(
                select(exists().where(papers.c.hidden.is_(False), _category_condition(value)))).scalar():
            raise FollowError(f"target: there is no arXiv category {value!r}.", field="target")
        return value
    if not conn.execute(select(exists().where(organizations.c.name == value))).scalar():
        raise FollowError(f"target: there is no organization {value[:80]!r} here.", field="target")
    return value


def follow(engine: Engine, user_pk: int, kind: str, target: object, *, now: datetime | None = None) -> bool:
    """Follow; True when it is new (following twice keeps one row)."""
    try:
        with engine.begin() as conn:
            value = check_target(conn, kind, target)
            here = (follows.c.user_pk == user_pk) & (follows.c.kind == kind) & (follows.c.target == value)
            if conn.execute(select(exists().where(here))).scalar():
                return False
            conn.execute(insert(follows).values(user_pk=user_pk, kind=kind, target=value,
                                                created_at=_now(now)))
            signals_changed(conn, user_pk)
            return True
    except IntegrityError:  # a concurrent click made it first
        return False


def unfollow(engine: Engine, user_pk: int, kind: str, target: object) -> bool:
    """Stop following; True when there was something to stop. Only the kind is checked: a target
    that no longer exists (an organization renamed) can always be unfollowed."""
    if kind not in KINDS:
        raise FollowError("kind: follow an author, a category or an organization.", field="kind")
    value = " ".join(target.split()) if isinstance(target, str) else ""
    with engine.begin() as conn:
        removed = conn.execute(delete(follows).where(
            follows.c.user_pk == user_pk, follows.c.kind == kind, follows.c.target == value)).rowcount
        if removed:
            signals_changed(conn, user_pk)
        return bool(removed)


def following(engine: Engine, user_pk: int | None) -> dict[str, list[str]]:
    """What the reader follows, by kind, each in the order followed."""
    out: dict[str, list[str]] = {kind: [] for kind in KINDS}
    if user_pk is None:
        return out
    with engine.connect() as conn:
        for kind, target in conn.execute(select(follows.c.kind, follows.c.target)
                                         .where(follows.c.user_pk == user_pk)
                                         .order_by(follows.c.created_at, follows.c.target)):
            out.setdefault(kind, []).append(target)
    return out


def followed_condition(engine: Engine, user_pk: int) -> ColumnElement:
    """A condition on ``papers``: in a followed category, by a followed author, or from a followed
    organization (what the feed's "followed only" filter shows)."""
    mine = follows.c.user_pk == user_pk
    with engine.connect() as conn:
        categories = list(conn.execute(select(follows.c.target)
                                       .where(mine, follows.c.kind == "category")).scalars())
        authors = select(follows.c.target).where(mine, follows.c.kind == "author").scalar_subquery()
        return or_(
            *(_category_condition(c) for c in categories),
            any_author_in(conn, papers.c.authors, authors),
            papers.c.organization_pk.in_(select(organizations.c.pk).join(
                follows, (follows.c.target == organizations.c.name) & (follows.c.kind == "organization"))
                .where(mine)),
        )


# --- "not interested" --------------------------------------------------------------------------


def _visible_paper(conn: Connection, paper_id: str) -> int:
    pk = conn.execute(select(papers.c.pk).where(papers.c.id == paper_id, papers.c.hidden.is_(False))).scalar()
    if pk is None:
        raise NotFound(f"There is no paper {paper_id[:80]!r} here.")
    return pk


def dismiss(engine: Engine, user_pk: int, paper_id: str, *, now: datetime | None = None) -> bool:
    """Mark a paper "not interested"; True when it was not marked yet."""
    try:
        with engine.begin() as conn:
            paper_pk = _visible_paper(conn, paper_id)
            here = (dismissals.c.user_pk == user_pk) & (dismissals.c.paper_pk == paper_pk)
            if conn.execute(select(exists().where(here))).scalar():
                return False
            conn.execute(insert(dismissals).values(user_pk=user_pk, paper_pk=paper_pk, created_at=_now(now)))
            signals_changed(conn, user_pk)
            return True
    except IntegrityError:  # a concurrent click marked it first
        return False


def undismiss(engine: Engine, user_pk: int, paper_id: str) -> bool:
    """Take "not interested" back; True when the paper was marked."""
    with engine.begin() as conn:
        paper_pk = _visible_paper(conn, paper_id)
        removed = conn.execute(delete(dismissals).where(
            dismissals.c.user_pk == user_pk, dismissals.c.paper_pk == paper_pk)).rowcount
        if removed:
            signals_changed(conn, user_pk)
        return bool(removed)


_DISMISSED = (select(papers.c.id).join(dismissals, dismissals.c.paper_pk == papers.c.pk)
              .where(dismissals.c.user_pk == bindparam("user"), in_list(papers.c.id, "ids")))


def dismissed_ids(engine: Engine, user_pk: int | None, paper_ids: Iterable[str]) -> set[str]:
    """Which of these papers the reader marked "not interested"."""
    ids = list(paper_ids)
    if user_pk is None or not ids:
        return set()
    with engine.connect() as conn:
        return set(conn.execute(_DISMISSED, {"user": user_pk, "ids": ids}).scalars())


# --- categories to pick from ------------------------------------------------------------------

COUNTS_FOR = 600.0  # seconds the category counts are reused (they move only with ingests)
_counts: dict[str, tuple[float, list[tuple[str, int]]]] = {}


def category_counts(engine: Engine) -> list[tuple[str, int]]:
    """The categories of the stored papers with how many papers each has, most papers first."""
    key = str(engine.url)
    cached = _counts.get(key)
    if cached is not None and time.monotonic() - cached[0] < COUNTS_FOR:
        return cached[1]
    counts: Counter[str] = Counter()
    with engine.begin() as conn:  # a transaction: PostgreSQL streams rows through a cursor only inside one
        for (categories,) in conn.execute(select(papers.c.categories).where(papers.c.hidden.is_(False))
                                          .execution_options(yield_per=5000)):
            counts.update(set(categories.split()))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    _counts[key] = (time.monotonic(), ranked)
    return ranked
