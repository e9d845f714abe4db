"""Small text helpers every source shares: whitespace, TeX accents, links, dates."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from functools import cache

from dailypapers.domain import Author



class SourceError(Exception):
    """A source as a whole cannot be read (missing file, not JSON, a server error): one clear line."""


_URL = re.compile(r"https?://[^\s<>\"'{}|\\^`\]]+", re.IGNORECASE)
_CODE_HOSTS = ("github.com/", "gitlab.com/", "bitbucket.org/", "codeberg.org/", "huggingface.co/spaces/")
_AUTHOR_SPLIT = re.compile(r"\s*(?:,|\band\b|;)\s*")
_PAREN = re.compile(r"\([^()]*\)")


@cache
def _latex():  # noqa: ANN202 - loaded on the first name with TeX in it: most inputs have none (4 MB less)
    from pylatexenc.latex2text import LatexNodes2Text

    return LatexNodes2Text(math_mode="verbatim", strict_latex_spaces=True)


def clean_text(text: str | None) -> str | None:
    """Collapse the hard line breaks and indentation that arXiv keeps in titles and abstracts."""
    if text is None:
        return None
    return " ".join(text.split()) or None  # str.split() knows the same whitespace as \s, 5x faster


def detex(text: str) -> str:
    """Decode TeX accents in names ("Bal\\'azs" -> "Balázs"); leave text without TeX alone."""
    if "\\" not in text and "{" not in text:
        return text
    try:
        return _latex().latex_to_text(text).strip()
    except Exception:  # pylatexenc gives up on some malformed TeX: keep the raw name
        return text


def split_authors(line: str | None) -> list[Author]:
    """Split an arXiv author line ("A, B (MIT) and C") into authors, affiliations in brackets."""
    if not line:
        return []
    authors = []
    affiliations_of: dict[str, tuple[str, ...]] = {}
    # Affiliations in parentheses belong to the name before them; commas inside them are not separators.
    plain = _PAREN.sub(lambda m: "\0" + str(len(affiliations_of)) + "\0", clean_text(line) or "")
    for i, m in enumerate(_PAREN.finditer(clean_text(line) or "")):
        affiliations_of[str(i)] = tuple(a.strip() for a in m.group(0)[1:-1].split(";") if a.strip())
    for part in _AUTHOR_SPLIT.split(plain):
        keys = re.findall(r"\0(\d+)\0", part)
        name = re.sub(r"\0\d+\0", "", part).strip()
        if name:
            affs = tuple(a for k in keys for a in affiliations_of.get(k, ()))
            authors.append(Author(detex(name), affs))
    return authors


def find_links(*texts: str | None) -> tuple[str | None, str | None]:
    """The first code repository and the first other web page named in the texts."""
    code = page = None
    for text in texts:
        for url in _URL.findall(text or ""):
            url = url.rstrip(".,;:)")
            if any(host in url.lower() for host in _CODE_HOSTS):
                code = code or url
            elif "arxiv.org" not in url.lower() and "doi.org" not in url.lower():
                page = page or url
    return code, page


def utc(dt: datetime) -> datetime:
    """Store naive UTC datetimes everywhere."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


def parse_date(value: str | None) -> datetime | None:
    """ISO 8601 ('2026-06-12T00:00:00.000Z', '2015-01-02') or RFC 2822 ('Mon, 2 Apr 2007 19:18:42 GMT')."""
    if not value:
        return None
    value = value.strip()
    try:
        return utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        pass
    try:
        return utc(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"{value!r} is not a date") from exc
