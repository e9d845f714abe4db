"""arXiv OAI-PMH responses parsed: ``parse_page`` turns one ``ListRecords`` or ``GetRecord`` response
in the ``arXiv`` or ``arXivRaw`` format into records (FORMATS.md §1 of the recorded data); oai.py
fetches the pages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lxml import etree

from dailypapers.domain import Author, Deletion, Paper, RecordError, Sourced, Version
from dailypapers.sources.common import SourceError, clean_text, detex, find_links, parse_date, split_authors

SOURCE = "arxiv-oai"
FORMATS = ("arXiv", "arXivRaw")

OAI = "http://www.openarchives.org/OAI/2.0/"
ARXIV = "http://arxiv.org/OAI/arXiv/"
ARXIV_RAW = "http://arxiv.org/OAI/arXivRaw/"
_O = f"{{{OAI}}}"
_ID_PREFIX = "oai:arXiv.org:"
_VERSION = re.compile(r"v(\d+)")
_PARSER_POSITION = re.compile(r",\s*line \d+,\s*column \d+\s*$")

# What to do about each OAI-PMH error code (noRecordsMatch is not an error: it is an empty list).
_ADVICE = {
    "badResumptionToken": "the resumption token was rejected (expired?): harvest again from the start",
    "badArgument": (
        "the server refused the request arguments: check from/until (YYYY-MM-DD), set and metadataPrefix"
    ),
    "badVerb": "the server did not understand the request: check that the base URL is an OAI-PMH endpoint",
    "cannotDisseminateFormat": "the server does not offer this metadataPrefix: use arXiv or arXivRaw",
    "idDoesNotExist": "no such record: use oai:arXiv.org:<id> without a version suffix",
    "noMetadataFormats": "the server offers no metadata format for this item",
    "noSetHierarchy": "the server has no sets: harvest without a set",
}


class HarvestError(SourceError):
    """The harvest cannot go on: an OAI-PMH error, an HTTP failure, a page that is not XML."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        server_text: str | None = None,
        page: int | None = None,
        url: str | None = None,
    ):
        super().__init__(message)
        self.code = code  # the OAI-PMH error code, when the server sent one
        self.server_text = server_text  # and the server's words for it
        self.page = page
        self.url = url


@dataclass(slots=True)
class Page:
    """One OAI-PMH response: its records, the token for the next page (None: the list is complete)."""

    records: list[Sourced] = field(default_factory=list)
    token: str | None = None
    response_date: datetime | None = None  # naive UTC


def _text(parent: etree._Element, tag: str) -> str | None:
    el = parent.find(tag)
    return None if el is None else (el.text or "")


def page_label(page: int, url: str | None) -> str:
    return f"page {page} of {url}" if url else f"page {page}"


def oai_error(code: str, text: str, page: int, url: str | None, advice: str | None = None) -> HarvestError:
    advice = advice or _ADVICE.get(code, "see the OAI-PMH specification for this error code")
    return HarvestError(
        f'{page_label(page, url)}: OAI-PMH error {code} ("{text}"): {advice}',
        code=code,
        server_text=text,
        page=page,
        url=url,
    )


def parse_page(xml: bytes, *, page: int = 1, url: str | None = None) -> Page:
    """Parse one ListRecords or GetRecord response in the ``arXiv`` or ``arXivRaw`` format.

    Bad records come back as ``RecordError`` items; anything that stops the whole page (not XML, an
    OAI-PMH error other than noRecordsMatch) raises ``HarvestError``.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, remove_comments=True)
    try:
        root = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        reason = _PARSER_POSITION.sub("", exc.msg or "syntax error")
        raise HarvestError(
            f"{page_label(page, url)} is not well-formed XML (line {line}, column {column}: {reason}): "
            "the response was cut off or is not OAI-PMH; harvest again",
            page=page,
            url=url,
        ) from exc
    if root.tag != f"{_O}OAI-PMH":
        raise HarvestError(
            f"{page_label(page, url)} is not an OAI-PMH response "
            f"(root element <{etree.QName(root).localname}>): check the base URL",
            page=page,
            url=url,
        )

    response_date = None
    raw_date = _text(root, f"{_O}responseDate")
    if raw_date:
        try:
            response_date = parse_date(raw_date)
        except ValueError:
            response_date = None

    errors = root.findall(f"{_O}error")
    if errors:
        codes = [e.get("code") or "" for e in errors]
        if all(c == "noRecordsMatch" for c in codes):
            return Page([], None, response_date)
        bad = next(e for e in errors if e.get("code") != "noRecordsMatch")
        raise oai_error(bad.get("code") or "unknown", clean_text(bad.text) or "", page, url)

    verb = root.find(f"{_O}ListRecords")
    if verb is None:
        verb = root.find(f"{_O}GetRecord")
    if verb is None:
        raise HarvestError(
            f"{page_label(page, url)} has neither ListRecords, GetRecord nor error: "
            "only these are supported",
            page=page,
            url=url,
        )

    records: list[Sourced] = []
    for n, record in enumerate(verb.findall(f"{_O}record"), start=1):
        identifier = clean_text(_text(record, f"{_O}header/{_O}identifier"))
        where = f"page {page}, record {n}" + (f" ({identifier})" if identifier else "")
        records.append((where, _parse_record(record, identifier)))

    token_el = verb.find(f"{_O}resumptionToken")
    token = ((token_el.text or "").strip() or None) if token_el is not None else None
    return Page(records, token, response_date)


def _parse_record(record: etree._Element, identifier: str | None) -> Paper | Deletion | RecordError:
    header = record.find(f"{_O}header")
    if header is None:
        return RecordError("header", "is missing")
    if header.get("status") == "deleted":
        if not identifier:
            return RecordError("identifier", "is missing")
        return Deletion(identifier.removeprefix(_ID_PREFIX))
    metadata = record.find(f"{_O}metadata")
    if metadata is None or len(metadata) == 0:
        return RecordError("metadata", "is missing")
    body = metadata[0]
    try:
        if body.tag == f"{{{ARXIV}}}arXiv":
            return _parse_arxiv(body)
        if body.tag == f"{{{ARXIV_RAW}}}arXivRaw":
            return _parse_arxiv_raw(body)
    except RecordError as exc:
        return exc
    return RecordError("metadata", f"is in an unsupported format <{etree.QName(body).localname}>")


def _required(body: etree._Element, ns: str, name: str) -> str:
    value = _text(body, f"{{{ns}}}{name}")
    if value is None:
        raise RecordError(name, "is missing")
    cleaned = clean_text(value)
    if cleaned is None:
        raise RecordError(name, "is empty")
    return cleaned


def _optional(body: etree._Element, ns: str, name: str) -> str | None:
    return clean_text(_text(body, f"{{{ns}}}{name}"))


def _date(body: etree._Element, ns: str, name: str) -> datetime | None:
    value = _optional(body, ns, name)
    try:
        return parse_date(value)
    except ValueError:
        raise RecordError(name, f"{value!r} is not a date") from None


def _common(body: etree._Element, ns: str) -> dict[str, Any]:
    """The fields both formats share, by the same element names."""
    summary = _required(body, ns, "abstract")
    comments = _optional(body, ns, "comments")
    github_repo, project_page = find_links(summary, comments)
    return dict(
        id=_required(body, ns, "id"),
        title=_required(body, ns, "title"),
        summary=summary,
        categories=(_optional(body, ns, "categories") or "").split(),
        doi=_optional(body, ns, "doi"),
        journal_ref=_optional(body, ns, "journal-ref"),
        comments=comments,
        report_no=_optional(body, ns, "report-no"),
        license=_optional(body, ns, "license"),
        github_repo=github_repo,
        project_page=project_page,
        source=SOURCE,
    )


def _parse_arxiv(body: etree._Element) -> Paper:
    a = f"{{{ARXIV}}}"
    fields = _common(body, ARXIV)
    authors = []
    for author in body.findall(f"{a}authors/{a}author"):
        parts = [_optional(author, ARXIV, tag) for tag in ("forenames", "keyname", "suffix")]
        name = " ".join(p for p in parts if p)
        if not name:
            raise RecordError("authors", f"author {len(authors) + 1} has no keyname")
        affiliations = tuple(filter(None, (clean_text(el.text) for el in author.findall(f"{a}affiliation"))))
        authors.append(Author(detex(name), affiliations))
    created = _date(body, ARXIV, "created")
    updated = _date(body, ARXIV, "updated")
    # "updated" only appears once a paper is revised, and then its version number is not given.
    versions = [Version(1, created)] if created and not updated else []
    return Paper(
        authors=authors, published_at=created, updated_at=updated or created, versions=versions, **fields
    )


def _parse_arxiv_raw(body: etree._Element) -> Paper:
    r = f"{{{ARXIV_RAW}}}"
    fields = _common(body, ARXIV_RAW)
    versions = []
    for el in body.findall(f"{r}version"):
        label = (el.get("version") or "").strip()
        m = _VERSION.fullmatch(label)
        if not m:
            raise RecordError("version", f"{label!r} is not a version number (vN)")
        raw = clean_text(_text(el, f"{r}date"))
        try:
            submitted = parse_date(raw)
        except ValueError:
            raise RecordError("version", f"{label}: {raw!r} is not a date") from None
        versions.append(Version(int(m.group(1)), submitted))
    versions.sort(key=lambda v: v.version)
    return Paper(
        authors=split_authors(_text(body, f"{r}authors")),
        published_at=versions[0].submitted_at if versions else None,
        updated_at=versions[-1].submitted_at if versions else None,
        versions=versions,
        submitter=_optional(body, ARXIV_RAW, "submitter"),
        **fields,
    )
