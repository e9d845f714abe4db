"""From source records to validated rows ready to store: the half of an ingest that needs no database.

An ingest (ingest.py) runs this in its own process, in a thread, or in a child process beside the
writer. So it imports nothing of the store, and what it returns is cheap to pass between processes:
tuples and plain dicts, authors and version history already JSON text.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any, NamedTuple

import orjson

from dailypapers.domain import Deletion, Paper, RecordError, Sourced
from dailypapers.validate import ControlCharacter, validate, without_controls

JSON_COLUMNS = ("authors", "versions", "keywords")  # JSON text in a prepared row


@dataclass(frozen=True)
class Rejection:
    where: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field}: {self.reason}"


class Prepared(NamedTuple):
    """One valid record: a paper's row (papers columns), or a deletion (``row`` None)."""

    where: str
    id: str
    row: dict | None
    organization: dict | None = None  # resolved to organization_pk by the writer
    submitted_by: dict | None = None  # resolved to submitted_by_pk
    featured_on: datetime | None = None  # the feed day an operator rule gives it, if it is new


class Batch(NamedTuple):
    read: int  # records read from the source
    valid: list[Prepared]
    rejected: list[Rejection]
    cleaned: int  # valid records kept once their control characters were removed


def paper_row(paper: Paper) -> dict:
    """The papers-table columns of a record (organization and submitter are resolved per batch)."""
    return {
        "id": paper.id,
        "title": paper.title,
        "summary": paper.summary,
        "authors": _json([{"name": a.name, "affiliations": list(a.affiliations)} for a in paper.authors]),
        "num_authors": paper.author_count,
        "categories": " ".join(paper.categories),
        "keywords": _json(paper.keywords),
        "published_at": paper.published_at,
        "updated_at": paper.updated_at,
        "versions": _json([_version(v) for v in sorted(paper.versions, key=lambda v: v.version)]),
        "doi": paper.doi,
        "journal_ref": paper.journal_ref,
        "comments": paper.comments,
        "report_no": paper.report_no,
        "license": paper.license,
        "submitter": paper.submitter,
        "github_repo": paper.github_repo,
        "project_page": paper.project_page,
        "organization_pk": None,
        "upvotes": paper.upvotes,
        "submitted_on_daily_at": paper.submitted_on_daily_at,
        "submitted_by_pk": None,
        "source": paper.source,
    }


def _json(value: list) -> str:
    return orjson.dumps(value).decode()


def _version(v) -> dict:  # noqa: ANN001 - a domain Version
    out: dict = {"version": v.version}
    if v.submitted_at is not None:
        out["submitted_at"] = v.submitted_at.isoformat()
    if v.title is not None:
        out["title"] = v.title
    if v.summary is not None:
        out["summary"] = v.summary
    return out


def decoded(row: dict) -> dict:
    """A prepared row with its JSON columns as Python values again."""
    return row | {name: orjson.loads(row[name]) for name in JSON_COLUMNS}


def featured(categories: list[str], rules: list[str]) -> bool:
    """A rule "cs" features every cs.* paper; "cs.LG" only that category."""
    return any(c == rule or c.startswith(rule + ".") for c in categories for rule in rules)


def prepare(where: str, paper: Paper, feature_categories: list[str]) -> Prepared:
    org, user = paper.organization, paper.submitted_on_daily_by
    day = None
    if feature_categories and paper.submitted_on_daily_at is None and paper.published_at:
        if featured(paper.categories, feature_categories):
            day = paper.published_at.replace(hour=0, minute=0, second=0, microsecond=0)
    return Prepared(
        where, paper.id, paper_row(paper),
        {"name": org.name, "fullname": org.fullname, "avatar": org.avatar} if org else None,
        {"username": user.username, "fullname": user.fullname, "avatar_url": user.avatar_url} if user else None,
        day,
    )


def batches(records: Iterable[Sourced], size: int, now: datetime, feature_categories: list[str]) -> Iterator[Batch]:
    """The records in batches of ``size``, each validated and prepared, or rejected with the reason."""
    it = iter(records)
    while chunk := list(islice(it, size)):
        valid, rejected, cleaned = [], [], 0
        for where, item in chunk:
            if isinstance(item, RecordError):
                rejected.append(Rejection(where, item.field, item.reason))
            elif isinstance(item, Deletion):
                valid.append(Prepared(where, item.id, None))
            else:
                try:
                    try:
                        validate(item, now)
                    except ControlCharacter:  # checked first: clean records pay nothing for this
                        item = without_controls(item)
                        validate(item, now)
                        cleaned += 1
                except RecordError as err:
                    rejected.append(Rejection(where, err.field, err.reason))
                    continue
                valid.append(prepare(where, item, feature_categories))
        yield Batch(len(chunk), valid, rejected, cleaned)


def feed(open_records: Callable[[], Iterable[Sourced]], out: Any, *args: Any) -> None:
    """Put ``batches(open_records(), *args)`` on the queue ``out`` as (batch, None), then (None, None);
    or (None, exception) when reading fails. Runs in the child process of an ingest with read-ahead:
    it lives here, not in ingest.py, so that the child starts without importing the database layer."""
    try:
        for batch in batches(open_records(), *args):
            out.put((batch, None))
        out.put((None, None))
    except KeyboardInterrupt:
        pass  # the parent has it too
    except BaseException as exc:  # noqa: BLE001 - handed to the parent, which re-raises it
        out.put((None, exc))


def feed_in_child(open_records: Callable[[], Iterable[Sourced]], out: Any, *args: Any) -> None:
    """``feed`` as a child process's whole work. Its records make few reference cycles (a rejected
    record's traceback): the garbage collector runs rarely (~5% faster than its defaults)."""
    gc.set_threshold(50_000, 20, 20)
    feed(open_records, out, *args)
