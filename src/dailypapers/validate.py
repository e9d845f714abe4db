"""Validation of one Paper before it is stored: every error names the field and says why."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta
from typing import Any

from dailypapers.domain import ARXIV_ID, LOCAL_ID, Paper, RecordError

LIMITS = {
    "id": 64,
    "title": 1_000,
    "summary": 20_000,
    "doi": 500,
    "journal_ref": 1_000,
    "comments": 10_000,
    "report_no": 500,
    "license": 500,
    "submitter": 300,
    "github_repo": 2_000,
    "project_page": 2_000,
}
MAX_AUTHORS = 10_000
AUTHOR_NAME_LIMIT = 300
AFFILIATION_LIMIT = 500
MAX_KEYWORDS = 100
KEYWORD_LIMIT = 200
CATEGORY = re.compile(r"[A-Za-z][A-Za-z\-]*(?:\.[A-Za-z\-]+)?")
EARLIEST = datetime(1986, 1, 1)  # arXiv's oldest back-filled papers are from the late 1980s
# Control characters other than tab and newline, and lone surrogates (JSON can smuggle them in).
_BAD_CHAR = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class ControlCharacter(RecordError):
    """A field holds a control character: real metadata has stray ones, which ``without_controls``
    removes so that the record can be kept."""


def without_controls(value: Any) -> Any:
    """The value (a Paper, and every text inside it) with its control characters removed."""
    if isinstance(value, str):
        return _CONTROL.sub("", value)
    if isinstance(value, list):
        return [without_controls(v) for v in value]
    if isinstance(value, tuple):
        return tuple(without_controls(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{
            f.name: without_controls(getattr(value, f.name)) for f in dataclasses.fields(value)})
    return value


def show(value: object, width: int = 60) -> str:
    """A value as it appears in a message: quoted, and cut short when long."""
    text = str(value)
    if len(text) > width:
        return repr(text[:width]) + f"… ({len(text):,} characters)"
    return repr(text)


def check_text(field: str, value: str | None, limit: int | None = None, required: bool = False) -> None:
    if value is None or value == "":
        if required:
            raise RecordError(field, "is missing" if value is None else "is empty")
        return
    if not isinstance(value, str):
        raise RecordError(field, f"must be text, got {type(value).__name__}")
    if required and not value.strip():
        raise RecordError(field, "is empty")
    bad = _BAD_CHAR.search(value)
    if bad:
        char = bad.group(0)
        if "\ud800" <= char <= "\udfff":
            raise RecordError(field, f"is not valid Unicode (lone surrogate U+{ord(char):04X})")
        if char == "\x00":
            raise ControlCharacter(field, "contains a NUL byte")
        raise ControlCharacter(field, f"contains the control character U+{ord(char):04X}")
    if limit is not None and len(value) > limit:
        raise RecordError(field, f"is {len(value):,} characters long; the limit is {limit:,}")


def check_url(field: str, value: str | None) -> None:
    check_text(field, value, LIMITS[field])
    if value and not value.lower().startswith(("http://", "https://")):
        raise RecordError(field, f"{show(value)} is not an http(s) URL")


def validate(paper: Paper, now: datetime | None = None) -> None:
    """Raise RecordError for the first problem found; a valid paper passes unchanged."""
    if not isinstance(paper.id, str) or not paper.id:
        raise RecordError("id", "is missing")
    if len(paper.id) > LIMITS["id"] or not (ARXIV_ID.fullmatch(paper.id) or LOCAL_ID.fullmatch(paper.id)):
        raise RecordError("id", f"{show(paper.id)} is not an arXiv identifier")
    check_text("title", paper.title, LIMITS["title"], required=True)
    check_text("summary", paper.summary, LIMITS["summary"], required=True)
    for name in ("doi", "journal_ref", "comments", "report_no", "license", "submitter"):
        check_text(name, getattr(paper, name), LIMITS[name])
    check_url("github_repo", paper.github_repo)
    check_url("project_page", paper.project_page)

    if len(paper.authors) > MAX_AUTHORS:
        raise RecordError("authors", f"has {len(paper.authors):,} names; the limit is {MAX_AUTHORS:,}")
    for i, author in enumerate(paper.authors, 1):
        check_text(f"authors[{i}].name", author.name, AUTHOR_NAME_LIMIT, required=True)
        for affiliation in author.affiliations:
            check_text(f"authors[{i}].affiliation", affiliation, AFFILIATION_LIMIT)
    if len(paper.keywords) > MAX_KEYWORDS:
        raise RecordError("keywords", f"has {len(paper.keywords):,}; the limit is {MAX_KEYWORDS}")
    for i, keyword in enumerate(paper.keywords, 1):
        check_text(f"keywords[{i}]", keyword, KEYWORD_LIMIT, required=True)
    if paper.num_authors is not None and not 0 <= paper.num_authors <= MAX_AUTHORS:
        raise RecordError("num_authors", f"{paper.num_authors} is out of range")

    for category in paper.categories:
        if len(category) > 50 or not CATEGORY.fullmatch(category):
            raise RecordError("categories", f"{show(category)} is not an arXiv category")
    if len(" ".join(paper.categories)) > 1000:
        raise RecordError("categories", "are longer than 1,000 characters in all")

    latest = (now or datetime.utcnow()) + timedelta(days=2)
    for name in ("published_at", "updated_at", "submitted_on_daily_at"):
        value = getattr(paper, name)
        if value is not None and not EARLIEST <= value <= latest:
            raise RecordError(name, f"{value:%Y-%m-%d} is not a plausible date")
    for version in paper.versions:
        if version.version < 1 or version.version > 10_000:
            raise RecordError("versions", f"v{version.version} is not a version number")

    if paper.upvotes is not None and not (isinstance(paper.upvotes, int) and 0 <= paper.upvotes < 10**9):
        raise RecordError("upvotes", f"{show(paper.upvotes)} is not a count")
    if paper.organization is not None:
        check_text("organization.name", paper.organization.name, 100, required=True)
        check_text("organization.fullname", paper.organization.fullname, 300)
        check_text("organization.avatar", paper.organization.avatar, 2000)
    if paper.submitted_on_daily_by is not None:
        check_text("submitted_by.username", paper.submitted_on_daily_by.username, 100, required=True)
        check_text("submitted_by.fullname", paper.submitted_on_daily_by.fullname, 300)
        check_text("submitted_by.avatar_url", paper.submitted_on_daily_by.avatar_url, 2000)
