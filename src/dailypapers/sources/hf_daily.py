"""Hugging Face papers JSON: ``/api/daily_papers`` lists and ``/api/papers/{id}`` objects.

Imports a history of daily papers with its upvotes, submitters, organizations and feed dates.
Errors name the item and the JSON key as it appears in the file (``item 3: paper.publishedAt: ...``).
``numAuthors`` (for papers whose author names are unknown) and ``categories`` are dailypapers extensions:
what its own API gives reads back the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from dailypapers.domain import Author, Organization, Paper, RecordError, Sourced, User, local_id
from dailypapers.sources.common import SourceError, clean_text, find_links, parse_date

HF = "https://huggingface.co"


def read_hf_json(path: Path | str) -> Iterator[Sourced]:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror or exc}") from exc
    yield from parse_hf_json(raw, str(path))


def parse_hf_json(raw: bytes, name: str = "input") -> Iterator[Sourced]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{name}: is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{name}: is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise SourceError(f"{name}: expected a JSON array of daily papers or a paper object")
    for n, item in enumerate(data, 1):
        ident = item.get("paper", item).get("id") if isinstance(item, dict) and isinstance(
            item.get("paper", item), dict) else None
        where = f"item {n}" + (f" ({ident})" if isinstance(ident, str) and len(ident) <= 64 else "")
        try:
            yield where, to_paper(item)
        except RecordError as err:
            yield where, err


def _text(obj: dict, key: str, prefix: str, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise RecordError(prefix + key, "is missing")
        return None
    if not isinstance(value, str):
        raise RecordError(prefix + key, f"must be a string, got {type(value).__name__}")
    return value


def _date(obj: dict, key: str, prefix: str):  # noqa: ANN202
    value = _text(obj, key, prefix)
    try:
        return parse_date(value)
    except ValueError as exc:
        raise RecordError(prefix + key, str(exc)) from exc


def _user(obj: object, field: str) -> User | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise RecordError(field, "must be an object")
    username = obj.get("user") or obj.get("name")
    if not isinstance(username, str) or not username:
        raise RecordError(field + ".name", "is missing")
    avatar = _text(obj, "avatarUrl", field + ".")
    if avatar and avatar.startswith("/"):
        avatar = HF + avatar
    return User(username, _text(obj, "fullname", field + "."), avatar)


def _organization(obj: object, field: str) -> Organization | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise RecordError(field, "must be an object")
    name = _text(obj, "name", field + ".", required=True)
    return Organization(name, _text(obj, "fullname", field + "."), _text(obj, "avatar", field + "."))


def to_paper(item: object) -> Paper:
    """One daily-papers item (with a ``paper`` inside) or a bare paper object."""
    if not isinstance(item, dict):
        raise RecordError("item", f"must be an object, got {type(item).__name__}")
    wrapped = isinstance(item.get("paper"), dict)
    paper = item["paper"] if wrapped else item
    p = "paper." if wrapped else ""
    title = clean_text(_text(paper, "title", p) or _text(item, "title", ""))
    if not title:
        raise RecordError(p + "title", "is missing")
    summary = clean_text(_text(paper, "summary", p) or _text(item, "summary", "")) or ""
    ident = _text(paper, "id", p) or local_id(title)

    authors_raw = paper.get("authors") or []
    if not isinstance(authors_raw, list):
        raise RecordError(p + "authors", "must be a list")
    authors = []
    for i, a in enumerate(authors_raw):
        if not isinstance(a, dict) or not isinstance(a.get("name"), str):
            raise RecordError(f"{p}authors[{i}].name", "is missing")
        authors.append(Author(clean_text(a["name"]) or ""))
    num_authors = paper.get("numAuthors")
    if num_authors is not None and not isinstance(num_authors, int):
        raise RecordError(p + "numAuthors", "must be a whole number")
    categories = paper.get("categories") or []  # dailypapers' own API gives them; Hugging Face does not
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        raise RecordError(p + "categories", "must be a list of strings")

    keywords = paper.get("ai_keywords") or []
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise RecordError(p + "ai_keywords", "must be a list of strings")

    upvotes = paper.get("upvotes")
    if upvotes is not None and (not isinstance(upvotes, int) or isinstance(upvotes, bool)):
        raise RecordError(p + "upvotes", f"must be a whole number, got {type(upvotes).__name__}")
    # The feed day: newer responses say it on the paper; older ones only on the list item.
    feed_day = _date(paper, "submittedOnDailyAt", p) or (_date(item, "publishedAt", "") if wrapped else None)
    submitter = _user(paper.get("submittedOnDailyBy"), p + "submittedOnDailyBy") or _user(
        item.get("submittedBy"), "submittedBy")
    code, page = find_links(summary)
    return Paper(
        id=ident,
        title=title,
        summary=summary,
        authors=authors,
        num_authors=num_authors,
        categories=categories,
        keywords=[k for k in (clean_text(k) for k in keywords) if k],
        published_at=_date(paper, "publishedAt", p),
        github_repo=_text(paper, "githubRepo", p) or code,
        project_page=_text(paper, "projectPage", p) or page,
        organization=_organization(item.get("organization") or paper.get("organization"), "organization"),
        upvotes=upvotes,
        submitted_on_daily_at=feed_day,
        submitted_on_daily_by=submitter,
        source="hf",
    )
