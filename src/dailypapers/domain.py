"""The records every part of dailypapers speaks: plain dataclasses, no I/O.

Field names follow the Hugging Face papers API (``summary``, ``published_at`` for ``publishedAt``,
``github_repo`` for ``githubRepo``, ``submitted_on_daily_at`` ...) so the JSON API maps one-to-one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime

# New-style (2301.01234, 0704.0001) and old-style (hep-th/9901001, math.GT/0309136) arXiv ids.
ARXIV_ID = re.compile(r"(?:\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})")
ARXIV_ID_VERSIONED = re.compile(rf"({ARXIV_ID.pattern})(?:v(\d+))?")
# Papers from outside arXiv get an id of their own, derived from their title.
LOCAL_ID = re.compile(r"dp-[0-9a-f]{12}")


def local_id(title: str) -> str:
    """A stable id for a paper without an arXiv id: the same title always gives the same id."""
    key = " ".join(title.lower().split())
    return "dp-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]


def split_version(arxiv_id: str) -> tuple[str, int | None]:
    """'2104.12255v3' -> ('2104.12255', 3); an id without a version gives None."""
    m = ARXIV_ID_VERSIONED.fullmatch(arxiv_id.strip())
    if not m:
        return arxiv_id, None
    return m.group(1), int(m.group(2)) if m.group(2) else None


# What a user may paste around an id: an abs/pdf/html URL of arxiv.org (or a mirror host name of it).
_URL_PREFIX = re.compile(r"(?:https?://)?(?:(?:www|export)\.)?arxiv\.org/(?:abs|pdf|html)/", re.IGNORECASE)
_ARXIV_PREFIX = re.compile(r"arxiv:\s*", re.IGNORECASE)
# Old-style ids written with the subject class ("math.GT/0309136"): the id proper is "math/0309136".
_SUBJECT_CLASS = re.compile(r"^([a-z][a-z\-]*)\.[A-Z]{2}/")

MAX_ID_LENGTH = 64  # far above any real id or abs URL; longer input is refused before any regex runs
MAX_SHOWN = 100  # how much of a bad input an error message repeats


def quote_input(text: object) -> str:
    """The input, quoted and escaped, as an error message repeats it ('abc', '\\x00', long ones cut)."""
    if not isinstance(text, str):
        return repr(text)[:MAX_SHOWN]
    if len(text) > MAX_SHOWN:
        text = text[:MAX_SHOWN] + "..."
    return repr(text)


def normalize_id(text: str) -> tuple[str, int | None]:
    """What a user typed -> (id, version): 'https://arxiv.org/abs/2104.12255v1' -> ('2104.12255', 1).

    Accepts a bare or versioned id, ``arXiv:<id>``, and arxiv.org ``abs``/``pdf``/``html`` URLs (with
    or without scheme, ``.pdf`` suffix, query or fragment). Old-style ids lose their subject class
    ("math.GT/0309136" -> "math/0309136"), which is not part of the id. Anything else raises
    ``RecordError("id", "'abc' is not an arXiv identifier")``.
    """
    if isinstance(text, str):
        s = text.strip()
        if s and len(s) <= MAX_ID_LENGTH and s.isascii() and s.isprintable():
            if m := _URL_PREFIX.match(s):
                s = re.split(r"[?#]", s[m.end() :], maxsplit=1)[0].rstrip("/")
                if s.lower().endswith(".pdf"):
                    s = s[:-4]
            elif m := _ARXIV_PREFIX.match(s):
                s = s[m.end() :]
            m = ARXIV_ID_VERSIONED.fullmatch(s)
            if m and (m.group(2) is None or int(m.group(2)) >= 1):
                version = int(m.group(2)) if m.group(2) else None
                return _SUBJECT_CLASS.sub(r"\1/", m.group(1)), version
    raise RecordError("id", f"{quote_input(text)} is not an arXiv identifier")


@dataclass(frozen=True, slots=True)
class Author:
    name: str
    affiliations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Version:
    """One arXiv version. Title and summary are kept once a later version replaces them."""

    version: int
    submitted_at: datetime | None = None
    title: str | None = None
    summary: str | None = None


@dataclass(frozen=True, slots=True)
class Organization:
    name: str  # handle, as in a URL: "facebook"
    fullname: str | None = None  # display name: "AI at Meta"
    avatar: str | None = None


@dataclass(frozen=True, slots=True)
class User:
    username: str
    fullname: str | None = None
    avatar_url: str | None = None


@dataclass(slots=True)
class Paper:
    """One paper, whatever source it came from. ``None`` means "this source does not say"."""

    id: str
    title: str
    summary: str
    authors: list[Author] = field(default_factory=list)
    num_authors: int | None = None  # when a source gives a count but not the names
    categories: list[str] = field(default_factory=list)  # primary first
    keywords: list[str] = field(default_factory=list)  # what it is about, in a few words (Hugging Face's ai_keywords)
    published_at: datetime | None = None  # first version
    updated_at: datetime | None = None  # latest version
    versions: list[Version] = field(default_factory=list)
    doi: str | None = None
    journal_ref: str | None = None
    comments: str | None = None
    report_no: str | None = None
    license: str | None = None
    submitter: str | None = None  # who uploaded it to arXiv
    github_repo: str | None = None
    project_page: str | None = None
    organization: Organization | None = None
    upvotes: int | None = None
    submitted_on_daily_at: datetime | None = None  # the feed day it was put on
    submitted_on_daily_by: User | None = None
    source: str = "arxiv"

    @property
    def primary_category(self) -> str | None:
        return self.categories[0] if self.categories else None

    @property
    def author_count(self) -> int:
        return len(self.authors) or (self.num_authors or 0)

    @property
    def latest_version(self) -> int | None:
        return max((v.version for v in self.versions), default=None)

    @property
    def is_arxiv(self) -> bool:
        return ARXIV_ID.fullmatch(self.id) is not None

    @property
    def abs_url(self) -> str | None:
        return f"https://arxiv.org/abs/{self.id}" if self.is_arxiv else None

    @property
    def pdf_url(self) -> str | None:
        return f"https://arxiv.org/pdf/{self.id}" if self.is_arxiv else None


@dataclass(frozen=True, slots=True)
class Deletion:
    """A source says this paper is gone (an OAI-PMH header with status="deleted")."""

    id: str


class RecordError(ValueError):
    """One record is bad: which field, and why. The position is added by whoever reports it."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# What a source yields: where the record was ("line 7", "record 3"), and the record or its error.
Sourced = tuple[str, "Paper | Deletion | RecordError"]
