"""What a reader has told us: the papers of their collections and votes (positives), their follows,
their "not interested" marks (negatives). Read in a few indexed queries, no HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import literal, select
from sqlalchemy.engine import Connection

from dailypapers.store.schema import collection_items, collections, dismissals, follows, papers, upvotes, users

MAX_SEEDS = 100  # library papers a recommendation starts from, the most recently added


@dataclass(frozen=True)
class Seed:
    """A paper the reader likes, and how they said so (the reason a recommendation gives)."""

    paper_pk: int
    kind: str  # saved (the default collection) | collection | upvoted
    collection: str | None = None


@dataclass
class Signals:
    user_pk: int
    version: int  # users.signals_version when read
    seeds: list[Seed] = field(default_factory=list)  # most recent first, one per paper
    follows: list[tuple[str, str]] = field(default_factory=list)  # (kind, target)
    excluded: set[int] = field(default_factory=set)  # saved anywhere, voted or dismissed: never shown
    dismissed: set[int] = field(default_factory=set)


_ITEMS = (select(collection_items.c.paper_pk, collections.c.is_default, collections.c.name,
                 collection_items.c.added_at.label("at"))
          .join(collections, collections.c.pk == collection_items.c.collection_pk))
_VISIBLE = select(papers.c.pk).where(papers.c.hidden.is_(False))


def read(conn: Connection, user_pk: int) -> Signals | None:
    """The reader's signals (None: no such reader)."""
    version = conn.execute(select(users.c.signals_version).where(users.c.pk == user_pk)).scalar()
    if version is None:
        return None
    signals = Signals(user_pk, version)
    items = conn.execute(_ITEMS.where(collections.c.user_pk == user_pk)).all()
    votes = conn.execute(select(upvotes.c.paper_pk, upvotes.c.created_at).where(upvotes.c.user_pk == user_pk)).all()
    signals.dismissed = set(conn.execute(select(dismissals.c.paper_pk).where(dismissals.c.user_pk == user_pk))
                            .scalars())
    signals.follows = [tuple(r) for r in conn.execute(
        select(follows.c.kind, follows.c.target).where(follows.c.user_pk == user_pk)
        .order_by(follows.c.created_at.desc()))]
    signals.excluded = {r.paper_pk for r in items} | {r.paper_pk for r in votes} | signals.dismissed
    # A paper saved and voted is one seed: the saved list first, then other collections, then votes.
    found: dict[int, tuple] = {}
    for row in items:
        kind = "saved" if row.is_default else "collection"
        seed = Seed(row.paper_pk, kind, None if row.is_default else row.name)
        if row.paper_pk not in found or (kind == "saved" and found[row.paper_pk][1].kind != "saved"):
            found[row.paper_pk] = (row.at, seed)
    for pk, at in votes:
        found.setdefault(pk, (at, Seed(pk, "upvoted")))
    ordered = sorted(found.values(), key=lambda pair: (pair[0], pair[1].paper_pk), reverse=True)
    if ordered:
        visible = set(conn.execute(_VISIBLE.where(papers.c.pk.in_([s.paper_pk for _, s in ordered]))).scalars())
        signals.seeds = [s for _, s in ordered if s.paper_pk in visible and s.paper_pk not in signals.dismissed]
    signals.seeds = signals.seeds[:MAX_SEEDS]
    return signals


def has_signals(conn: Connection, user_pk: int) -> bool:
    """Any positive signal: a paper in a collection, an upvote, a follow."""
    mine = collections.c.user_pk == user_pk
    queries = [
        select(literal(1)).select_from(collection_items.join(
            collections, collections.c.pk == collection_items.c.collection_pk)).where(mine).limit(1),
        select(literal(1)).where(upvotes.c.user_pk == user_pk).limit(1),
        select(literal(1)).where(follows.c.user_pk == user_pk).limit(1),
    ]
    return any(conn.execute(q).first() for q in queries)


__all__ = ["MAX_SEEDS", "Seed", "Signals", "has_signals", "read"]
