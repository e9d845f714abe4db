"""Papers by id from the arXiv API (Atom 1.0): single submissions and ``dailypapers ingest arxiv ID...``.

``normalize_id`` (domain.py: search and submissions use it without this module's HTTP and XML)
turns what a user typed (an id, a versioned id, an abs/pdf URL, ``arXiv:...``) into
``(id, version)``; ``parse_feed`` reads any API feed (the 2016 and the 2026 serialisations alike, see
FORMATS.md §2) into ``Sourced`` records; ``fetch_papers`` asks the API for ids in batches, politely,
and reports every id the API silently leaves out.

The API signals errors with a feed holding one entry whose ``<id>`` is
``http(s)://arxiv.org/api/errors#...``; the HTTP status says nothing reliable (the manual shows that
feed with HTTP 200, the server sends it with HTTP 400 today), so errors are detected by that entry.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx
from lxml import etree

from dailypapers.domain import (
    ARXIV_ID_VERSIONED, Author, Paper, RecordError, Sourced, Version, normalize_id, quote_input, split_version,
)
from dailypapers.sources.common import SourceError, clean_text, find_links, parse_date

API_URL = "https://export.arxiv.org/api/query"
SOURCE = "arxiv-api"
USER_AGENT = "dailypapers (self-hosted Daily Papers; arXiv API client)"

ATOM = "http://www.w3.org/2005/Atom"
ARXIV = "http://arxiv.org/schemas/atom"
NS = {"atom": ATOM, "arxiv": ARXIV}

# The <id> of an entry: http(s)://arxiv.org/abs/<id>v<n>.
_ENTRY_ID = re.compile(r"https?://(?:www\.)?arxiv\.org/abs/(.+)", re.IGNORECASE)
_ERROR_ID = re.compile(r"https?://(?:www\.)?arxiv\.org/api/errors\b", re.IGNORECASE)
# arXiv categories ("cs.LG", "hep-th", "math.GT", "cond-mat.str-el", "physics.acc-ph", "q-bio.QM");
# ACM ("I.2.6; I.5.1", "F.2.2") and MSC ("68T05", "14J60 (Primary)") codes do not match.
_CATEGORY = re.compile(r"[a-z]+(?:-[a-z]+)?(?:\.[A-Za-z]+(?:-[a-z]+)?)?")
_POSITION_SUFFIX = re.compile(r",? line \d+, column \d+$")

MAX_RETRY_AFTER = 300.0  # seconds: a server asking for longer is not waited for that long


class ArxivApiError(SourceError):
    """The arXiv API as a whole failed: an error feed, a body that is not a feed, or no answer at all."""


# --- ids ----------------------------------------------------------------------------------------





def _key(arxiv_id: str, version: int | None) -> str:
    """The id as sent in ``id_list``: with its version when one was asked for."""
    return f"{arxiv_id}v{version}" if version is not None else arxiv_id


# --- the feed -----------------------------------------------------------------------------------

_PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _xml(body: bytes) -> etree._Element:
    # A fresh parser per call: lxml parsers are not thread-safe. No entities, no DTD, no network.
    parser = etree.XMLParser(**_PARSER_OPTIONS)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        reason = _POSITION_SUFFIX.sub("", (exc.msg or "syntax error").strip())
        raise ArxivApiError(
            f"arXiv API response is not well-formed XML (line {line}, column {column}): {reason}"
        ) from None
    if root is None or root.tag != f"{{{ATOM}}}feed":
        tag = getattr(root, "tag", None)
        raise ArxivApiError(f"arXiv API response is not an Atom feed (root element {tag!r})")
    return root


def _text(parent: etree._Element, path: str) -> str | None:
    el = parent.find(path, NS)
    if el is None:
        return None
    return clean_text("".join(el.itertext()))


def _date(entry: etree._Element, name: str) -> datetime | None:
    value = _text(entry, f"atom:{name}")
    try:
        return parse_date(value)
    except ValueError:
        raise RecordError(name, f"{value!r} is not a date") from None


def _error_message(root: etree._Element) -> str | None:
    """The message of an error feed ("incorrect id format for abc"), or None for an ordinary feed."""
    for entry in root.iterfind("atom:entry", NS):
        if _ERROR_ID.match(_text(entry, "atom:id") or ""):
            return _text(entry, "atom:summary") or _text(entry, "atom:id") or "unknown error"
    return None


def _categories(entry: etree._Element) -> list[str]:
    terms = []
    primary = entry.find("arxiv:primary_category", NS)
    if primary is not None:
        terms.append(primary.get("term"))
    terms.extend(c.get("term") for c in entry.iterfind("atom:category", NS))
    categories: list[str] = []
    for term in terms:
        term = (term or "").strip()
        if _CATEGORY.fullmatch(term) and term not in categories:
            categories.append(term)
    return categories


def _entry(entry: etree._Element) -> Paper:
    raw_id = _text(entry, "atom:id")
    if not raw_id:
        raise RecordError("id", "missing")
    m = _ENTRY_ID.fullmatch(raw_id)
    arxiv_id, version = split_version(m.group(1)) if m else (raw_id, None)
    if not m or not ARXIV_ID_VERSIONED.fullmatch(m.group(1)):
        raise RecordError("id", f"{quote_input(raw_id)} is not an arXiv abstract URL")

    title = _text(entry, "atom:title")
    if title is None:
        raise RecordError("title", "missing")
    summary = _text(entry, "atom:summary") or ""
    published = _date(entry, "published")
    updated = _date(entry, "updated")

    authors = []
    for author in entry.iterfind("atom:author", NS):
        name = _text(author, "atom:name")
        if name:
            found = author.iterfind("arxiv:affiliation", NS)
            affiliations = (clean_text("".join(a.itertext())) for a in found)
            authors.append(Author(name, tuple(a for a in affiliations if a)))

    comments = _text(entry, "arxiv:comment")
    github_repo, project_page = find_links(summary, comments)
    return Paper(
        id=arxiv_id,
        title=title,
        summary=summary,
        authors=authors,
        categories=_categories(entry),
        published_at=published,
        updated_at=updated,
        versions=[Version(version, submitted_at=updated)] if version is not None else [],
        doi=_text(entry, "arxiv:doi"),
        journal_ref=_text(entry, "arxiv:journal_ref"),
        comments=comments,
        github_repo=github_repo,
        project_page=project_page,
        source=SOURCE,
    )


def parse_feed(xml: bytes) -> list[Sourced]:
    """Every entry of an API feed (id_list or search_query) as a Paper, or the RecordError it raised.

    Raises ArxivApiError for an error feed ("arXiv API error: incorrect id format for abc") and for a
    body that is not a well-formed Atom feed.
    """
    return _records(_xml(xml))


def _records(root: etree._Element) -> list[Sourced]:
    message = _error_message(root)
    if message is not None:
        raise ArxivApiError(f"arXiv API error: {message}")
    out: list[Sourced] = []
    for n, entry in enumerate(root.iterfind("atom:entry", NS), start=1):
        m = _ENTRY_ID.fullmatch(_text(entry, "atom:id") or "")
        where = f"entry {n} ({split_version(m.group(1))[0]})" if m else f"entry {n}"
        try:
            out.append((where, _entry(entry)))
        except RecordError as exc:
            out.append((where, exc))
    return out


# --- fetching -----------------------------------------------------------------------------------


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _get(
    client: httpx.Client,
    url: str,
    params: dict[str, str | int],
    *,
    delay: float,
    sleep: Callable[[float], object],
    max_retries: int,
    before_request: Callable[[], object],
) -> httpx.Response:
    """GET, repeating on 429, 5xx and connection errors: Retry-After when given, else doubling waits."""
    attempt = 0
    while True:
        before_request()
        try:
            response = client.get(url, params=params)
        except httpx.TransportError as exc:
            problem, wait = f"{type(exc).__name__}: {exc}", None
        else:
            if response.status_code != 429 and response.status_code < 500:
                return response
            problem, wait = f"HTTP {response.status_code}", _retry_after(response)
        if attempt >= max_retries:
            raise ArxivApiError(f"arXiv API unavailable after {attempt + 1} attempts: {problem}")
        sleep(wait if wait is not None else max(delay, 1.0) * 2**attempt)
        attempt += 1


def _batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def fetch_papers(
    ids: list[str],
    *,
    base_url: str = API_URL,
    client: httpx.Client | None = None,
    batch_size: int = 100,
    delay: float = 3.0,
    sleep: Callable[[float], object] = time.sleep,
    max_retries: int = 3,
    timeout: float = 30.0,
    before_request: Callable[[], object] = lambda: None,
) -> Iterator[Sourced]:
    """The papers with these ids, from the arXiv API, in batches of ``batch_size`` ids per request.

    Yields ``("argument i", RecordError)`` for an input that is no arXiv id (it is never sent),
    ``("entry n (id)", Paper)`` for each entry returned, and ``("id x", RecordError)`` for each id the
    API left out. Waits ``delay`` seconds between requests, as the API terms ask, and calls
    ``before_request`` before each one (the web waits there for its turn among all workers). Raises
    ArxivApiError when the API answers with an error feed, a body that is no feed, or not at all.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    wanted: list[tuple[str, int | None]] = []
    for i, text in enumerate(ids, start=1):
        try:
            key = normalize_id(text)
        except RecordError as exc:
            yield f"argument {i}", exc
            continue
        if key not in wanted:
            wanted.append(key)
    if not wanted:
        return

    own_client = client is None
    if own_client:
        client = httpx.Client(timeout=timeout, follow_redirects=True, headers={"User-Agent": USER_AGENT})
    try:
        for n, batch in enumerate(_batches(wanted, batch_size)):
            if n:
                sleep(delay)
            params = {"id_list": ",".join(_key(*k) for k in batch), "start": 0, "max_results": len(batch)}
            response = _get(client, base_url, params, delay=delay, sleep=sleep, max_retries=max_retries,
                            before_request=before_request)
            try:
                root = _xml(response.content)
            except ArxivApiError as exc:
                if response.is_success:
                    raise
                # Not even a feed: the status is all there is to report.
                raise ArxivApiError(f"arXiv API answered HTTP {response.status_code} ({exc})") from None
            records = _records(root)  # an error feed raises here, whatever the status
            if not response.is_success:
                raise ArxivApiError(f"arXiv API answered HTTP {response.status_code}")
            found: set[tuple[str, int | None]] = set()
            for where, record in records:
                if isinstance(record, Paper):
                    found.add((record.id, None))
                    found.update((record.id, v.version) for v in record.versions)
                yield where, record
            for arxiv_id, version in batch:
                if (arxiv_id, version) not in found:
                    x = _key(arxiv_id, version)
                    yield f"id {x}", RecordError("id", f"'{x}' was not found on arXiv")
    finally:
        if own_client:
            client.close()
