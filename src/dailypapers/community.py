"""Community: upvotes, comments, paper submissions, moderation (BibTeX: bibtex.py).

Plain functions over an Engine; who may do what beyond "the author of a comment" (for instance that
only admins hide papers and comments) is checked by the caller, which knows the signed-in user.
Errors are ``CommunityError`` subclasses with a sentence for the page: ``NotFound`` (404),
``Forbidden`` (403), the rest (400).

Votes: ``papers.upvotes`` is the shown total (the source's count plus local votes). Each local vote
is one ``upvotes`` row, and the row and the ``upvotes = upvotes ± 1`` move together in one
transaction, so the total always equals ``source_upvotes`` plus the rows, whatever clicks race.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import NamedTuple

import nh3
from markdown_it import MarkdownIt
from sqlalchemy import bindparam, delete, func, insert, literal, select, update
from sqlalchemy.engine import Connection, Engine

from dailypapers.domain import Paper, RecordError, Sourced
from dailypapers.ingest import ingest
from dailypapers.domain import normalize_id
from dailypapers.sources.common import SourceError
from dailypapers.store.backend import in_list
from dailypapers.store.schema import comments, papers, upvotes, users

MAX_COMMENT = 10_000  # characters of Markdown
COMMENTS_PAGE = 50  # comments shown on one page of a paper's comments


class CommunityError(ValueError):
    """An action refused, with a sentence to show (and the form field it concerns, when one does)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(CommunityError):
    """The paper or comment does not exist (or is hidden)."""


class Forbidden(CommunityError):
    """The user may not do this (another user's comment)."""


class SubmissionError(CommunityError):
    """A submitted id or URL that cannot be put on the feed."""

    def __init__(self, message: str):
        super().__init__(message, field="paper")


class NotOnArxiv(SubmissionError):
    """arXiv answered that it has no such paper."""


class ArxivUnavailable(SubmissionError):
    """arXiv did not answer (in time): worth trying again later."""


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc).replace(tzinfo=None)
    if now.tzinfo is not None:
        now = now.astimezone(timezone.utc).replace(tzinfo=None)
    return now


_visible = papers.c.hidden.is_(False)


def _paper_pk(conn: Connection, paper_id: str) -> int:
    pk = conn.execute(select(papers.c.pk).where(papers.c.id == paper_id, _visible)).scalar()
    if pk is None:
        raise NotFound(f"There is no paper {paper_id}.")
    return pk


# --- upvotes ------------------------------------------------------------------------------------


def toggle_upvote(engine: Engine, user_pk: int, paper_id: str, *,
                  now: datetime | None = None) -> tuple[bool, int]:
    """Vote for the paper, or take the vote back; returns (voted now, the paper's upvotes).

    The transaction first locks the paper's row (a no-op update: a row lock on PostgreSQL, the write
    lock on SQLite), so concurrent toggles of one paper run one after another: each sees the votes the
    others committed, counts stay equal to the rows, and no click meets a duplicate-key race.
    """
    now = _now(now)
    paper_pk = select(papers.c.pk).where(papers.c.id == paper_id).scalar_subquery()
    with engine.begin() as conn:
        conn.execute(update(papers).where(papers.c.id == paper_id).values(upvotes=papers.c.upvotes))
        removed = conn.execute(
            delete(upvotes).where(upvotes.c.user_pk == user_pk, upvotes.c.paper_pk == paper_pk)
        ).rowcount
        if removed:
            voted, delta = False, -1
        else:
            added = conn.execute(insert(upvotes).from_select(
                ["user_pk", "paper_pk", "created_at"],
                select(literal(user_pk), papers.c.pk, literal(now, upvotes.c.created_at.type))
                .where(papers.c.id == paper_id, _visible),
            ).returning(upvotes.c.paper_pk)).first()  # (rowcount of an INSERT is not portable)
            if added is None:
                raise NotFound(f"There is no paper {paper_id}.")
            voted, delta = True, 1
        total = conn.execute(
            update(papers).where(papers.c.id == paper_id).values(upvotes=papers.c.upvotes + delta)
            .returning(papers.c.upvotes)
        ).scalar_one()
        signals_changed(conn, user_pk)
    return voted, total


def _marked(engine: Engine, table, user_pk: int | None, paper_ids: Iterable[str]) -> set[str]:  # noqa: ANN001
    """Which of these papers have a (user, paper) row in ``table`` (upvotes, saved papers)."""
    ids = list(paper_ids)
    if user_pk is None or not ids:
        return set()
    query = (select(papers.c.id).join(table, table.c.paper_pk == papers.c.pk)
             .where(table.c.user_pk == bindparam("user"), in_list(papers.c.id, "ids")))
    with engine.connect() as conn:
        return set(conn.execute(query, {"user": user_pk, "ids": ids}).scalars())


def has_voted(engine: Engine, user_pk: int | None, paper_ids: Iterable[str]) -> set[str]:
    """Which of these papers the user has voted for."""
    return _marked(engine, upvotes, user_pk, paper_ids)


# --- comments -----------------------------------------------------------------------------------

# CommonMark with raw HTML off (typed tags show as text) and no images (no third-party requests from
# a comment); markdown-it refuses javascript:, vbscript:, file: and data: links by itself, and nh3
# sanitizes the result once more with an allow-list.
_markdown = MarkdownIt("commonmark", {"html": False}).enable("strikethrough").disable("image")
_ALLOWED_TAGS = {"p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li",
                 "a", "h1", "h2", "h3", "h4", "h5", "h6"}
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "code": {"class"}}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def render_markdown(text: str) -> str:
    """Markdown as safe HTML: no raw HTML, only http(s)/mailto links, each with rel="nofollow noopener"."""
    return nh3.clean(
        _markdown.render(text),
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener",
        strip_comments=True,
    )


def _body(markdown: str) -> str:
    body = _CONTROL.sub("", markdown).strip() if isinstance(markdown, str) else ""
    if not body:
        raise CommunityError("A comment cannot be empty.", field="body")
    if len(body) > MAX_COMMENT:
        raise CommunityError(f"A comment can be at most {MAX_COMMENT:,} characters; "
                             f"this one has {len(body):,}.", field="body")
    return body


def add_comment(engine: Engine, user_pk: int, paper_id: str, markdown: str, *,
                now: datetime | None = None) -> int:
    """Comment on a visible paper; returns the comment's pk. The Markdown is rendered here, once."""
    body = _body(markdown)
    with engine.begin() as conn:
        paper_pk = _paper_pk(conn, paper_id)
        return conn.execute(insert(comments).values(
            paper_pk=paper_pk, user_pk=user_pk, body=body, body_html=render_markdown(body),
            created_at=_now(now), hidden=False,
        ).returning(comments.c.pk)).scalar_one()


def _own_comment(conn: Connection, user_pk: int, comment_pk: int, action: str) -> None:
    author = conn.execute(select(comments.c.user_pk).where(comments.c.pk == comment_pk)).first()
    if author is None:
        raise NotFound("That comment does not exist.")
    if author.user_pk != user_pk:
        raise Forbidden(f"Only its author can {action} this comment.")


def edit_comment(engine: Engine, user_pk: int, comment_pk: int, markdown: str, *,
                 now: datetime | None = None) -> None:
    """Replace the text of one's own comment (it is marked edited)."""
    body = _body(markdown)
    with engine.begin() as conn:
        _own_comment(conn, user_pk, comment_pk, "edit")
        conn.execute(update(comments).where(comments.c.pk == comment_pk)
                     .values(body=body, body_html=render_markdown(body), edited_at=_now(now)))


def delete_comment(engine: Engine, user_pk: int, comment_pk: int) -> None:
    """Delete one's own comment."""
    with engine.begin() as conn:
        _own_comment(conn, user_pk, comment_pk, "delete")
        conn.execute(delete(comments).where(comments.c.pk == comment_pk))


def hide_comment(engine: Engine, comment_pk: int, hidden: bool = True) -> None:
    """Moderation (the caller checks that the user is an admin): hide a comment, or show it again."""
    with engine.begin() as conn:
        found = conn.execute(update(comments).where(comments.c.pk == comment_pk).values(hidden=hidden))
        if found.rowcount != 1:
            raise NotFound("That comment does not exist.")


def list_comments(engine: Engine, paper_id: str, *, include_hidden: bool = False, page: int = 1,
                  per_page: int = COMMENTS_PAGE) -> list[dict]:
    """One page of a paper's comments, oldest first: pk, user_pk, username, fullname, avatar_url, body
    (Markdown), html (as rendered when written), created_at, edited_at, hidden. Hidden ones only with
    ``include_hidden``."""
    query = (
        select(comments.c.pk, comments.c.user_pk, users.c.username, users.c.fullname, users.c.avatar_url,
               comments.c.body, comments.c.body_html.label("html"), comments.c.created_at,
               comments.c.edited_at, comments.c.hidden)
        .join(papers, papers.c.pk == comments.c.paper_pk)
        .join(users, users.c.pk == comments.c.user_pk)
        .where(papers.c.id == paper_id)
        .order_by(comments.c.created_at, comments.c.pk)
        .limit(per_page).offset((max(page, 1) - 1) * per_page)
    )
    if not include_hidden:
        query = query.where(comments.c.hidden.is_(False))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def comment_pages(count: int) -> int:
    """How many pages ``count`` comments fill (at least one, empty)."""
    return max(1, -(-count // COMMENTS_PAGE))


_COMMENT_COUNTS = (select(papers.c.id, func.count()).join(comments, comments.c.paper_pk == papers.c.pk)
                   .where(in_list(papers.c.id, "ids"), comments.c.hidden.is_(False)).group_by(papers.c.id))


def comment_counts(engine: Engine, paper_ids: Iterable[str]) -> dict[str, int]:
    """Visible comments per paper, for every id asked about (0 when none)."""
    ids = list(paper_ids)
    counts = dict.fromkeys(ids, 0)
    if not ids:
        return counts
    with engine.connect() as conn:
        counts.update({paper_id: n for paper_id, n in conn.execute(_COMMENT_COUNTS, {"ids": ids})})
    return counts


# --- signals ------------------------------------------------------------------------------------


def signals_changed(conn: Connection, user_pk: int) -> None:
    """Mark the reader's cached recommendations stale, in the transaction that changed a signal
    (a save, a vote, a follow, a "not interested")."""
    conn.execute(update(users).where(users.c.pk == user_pk)
                 .values(signals_version=users.c.signals_version + 1))


# --- moderation and submissions -----------------------------------------------------------------


def hide_paper(engine: Engine, paper_id: str, hidden: bool = True) -> None:
    """Moderation (the caller checks that the user is an admin): hide a paper everywhere, or show it."""
    with engine.begin() as conn:
        if conn.execute(update(papers).where(papers.c.id == paper_id).values(hidden=hidden)).rowcount != 1:
            raise NotFound(f"There is no paper {paper_id}.")


def _today(now: datetime | None) -> datetime:
    return _now(now).replace(hour=0, minute=0, second=0, microsecond=0)


def _put_on_feed(engine: Engine, paper_id: str, user_pk: int, day: datetime) -> bool:
    """Put the paper on the feed of ``day``; False when it already was on a feed (the first day stays)."""
    with engine.begin() as conn:
        return conn.execute(
            update(papers)
            .where(papers.c.id == paper_id, papers.c.submitted_on_daily_at.is_(None))
            .values(submitted_on_daily_at=day, submitted_by_pk=user_pk)
        ).rowcount == 1


class Submitted(NamedTuple):
    paper_id: str
    already_on_feed: bool  # it was on a feed before (it stays on its first day)
    fetched: bool  # it was fetched from arXiv just now


def submit_paper(
    engine: Engine,
    text: str,
    user_pk: int,
    *,
    fetch: Callable[[list[str]], Iterator[Sourced]],
    after_ingest: Callable[[list[int]], object] | None = None,
    now: datetime | None = None,
) -> Submitted:
    """Put a paper on today's feed by arXiv id or URL.

    A paper not in the store yet is fetched with ``fetch`` (the web passes ``fetch_papers`` with a
    short timeout and arXiv's spacing) and ingested first. Raises SubmissionError with a sentence
    for the form. ``after_ingest`` gets the new paper's pk (the web defers its embedding to the jobs).
    """
    try:
        paper_id, _version = normalize_id(text)  # the latest version is what gets stored
    except RecordError as exc:
        raise SubmissionError(exc.reason) from None
    day = _today(now)

    with engine.connect() as conn:
        row = conn.execute(select(papers.c.hidden, papers.c.submitted_on_daily_at)
                           .where(papers.c.id == paper_id)).first()
    if row is not None:
        if row.hidden:
            raise SubmissionError(f"{paper_id} was removed from this site and cannot be submitted.")
        if row.submitted_on_daily_at is not None:
            return Submitted(paper_id, True, False)
        return Submitted(paper_id, not _put_on_feed(engine, paper_id, user_pk, day), False)

    try:
        found = [(where, record) for where, record in fetch([paper_id])
                 if isinstance(record, Paper) and record.id == paper_id]
    except SourceError as exc:
        raise ArxivUnavailable(f"arXiv could not be asked for {paper_id} ({exc}); try again later.") from None
    if not found:
        raise NotOnArxiv(f"{paper_id} was not found on arXiv")
    report = ingest(engine, found[:1])
    if report.rejections:
        raise SubmissionError(f"{paper_id} could not be added: {report.rejections[0].field}: "
                              f"{report.rejections[0].reason}")
    if after_ingest is not None:  # the web's: indexes brought up to date, embedding deferred
        with engine.connect() as conn:
            pk = conn.execute(select(papers.c.pk).where(papers.c.id == paper_id)).scalar_one()
        after_ingest([pk])
    return Submitted(paper_id, not _put_on_feed(engine, paper_id, user_pk, day), True)
