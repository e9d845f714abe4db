"""The Kaggle arXiv metadata snapshot (``arxiv-metadata-oai-snapshot.json``), streamed.

JSON Lines, one paper per line, optionally gzipped (told by the gzip magic bytes, not the name).
The file holds millions of lines: it is read line by line in binary and never held in memory.
Every non-blank line gives one ``(where, item)`` pair, ``where`` being ``"line N"`` (1-based) and
``item`` a :class:`Paper` or the :class:`RecordError` that says why the line is not one. A bad
line never stops the stream; only a file that cannot be read (missing, truncated gzip) raises
:class:`SnapshotError`.

Mapping (FORMATS.md section 3): ``id`` as given, less any ``vN``; ``title``, ``abstract`` and the
optional strings through ``clean_text``; authors from ``authors_parsed`` (``[keyname, forenames,
suffix, affiliation...]``), else from the ``authors`` line; ``categories`` split on spaces;
one :class:`Version` per ``versions`` entry, the first one's date being ``published_at`` and the
last one's ``updated_at``; code and project links found in the abstract and comments.
Lengths and id formats are the ingest stage's business, not this reader's.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from dailypapers.domain import Author, Paper, RecordError, Sourced, Version
from dailypapers.sources.common import SourceError, clean_text as _clean, detex, find_links, parse_date, split_authors
from dailypapers.validate import show

SOURCE = "arxiv-snapshot"
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_TRAILING_VERSION = re.compile(r"(?<=\d)v\d+$")
# The snapshot's only date form, "Mon, 2 Apr 2007 19:18:42 GMT": parsed directly, parse_date for the rest.
_RFC_GMT = re.compile(r"(?:[A-Z][a-z]{2}, )?(\d{1,2}) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT")
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
_KIND = {dict: "object", list: "list", str: "string", int: "int", float: "float", bool: "bool"}
_ARTICLE = {"object": "an object", "int": "an int", "null": "null"}
_OPTIONAL = (  # Paper field, snapshot key
    ("comments", "comments"),
    ("journal_ref", "journal-ref"),
    ("doi", "doi"),
    ("report_no", "report-no"),
    ("license", "license"),
    ("submitter", "submitter"),
)


class SnapshotError(SourceError):
    """The snapshot file itself cannot be read (as opposed to one bad line in it)."""


def read_snapshot(path: Path | str) -> Iterator[Sourced]:
    """Stream the snapshot at ``path`` (plain or gzipped JSON Lines)."""
    try:
        stream = open(path, "rb")  # closed by the with below, when the generator ends or is closed
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    with stream:
        yield from iter_snapshot(stream, name=str(path))


def iter_snapshot(stream: BinaryIO, name: str | None = None) -> Iterator[Sourced]:
    """Stream snapshot lines from a binary file object; gzip is recognised by its magic bytes."""
    name = name or str(getattr(stream, "name", "<stream>"))
    head, stream = _peek(stream, 2)
    gzipped = head == _GZIP_MAGIC
    lines: Any = gzip.GzipFile(fileobj=stream, mode="rb") if gzipped else stream
    number = 0
    try:
        for number, line in enumerate(lines, 1):  # number is reported on failure
            if number == 1 and line.startswith(_BOM):
                line = line[3:]
            if line.isspace() or not line:
                continue
            yield f"line {number}", parse_line(line)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        if isinstance(exc, EOFError):
            raise SnapshotError(f"{name}: gzip stream is truncated after line {number}") from exc
        raise SnapshotError(f"{name}: gzip stream is corrupt after line {number}: {exc}") from exc
    except OSError as exc:
        raise SnapshotError(f"{name}: read failed after line {number}: {exc}") from exc
    finally:
        if gzipped:
            lines.close()  # closes the decompressor only; the caller owns ``stream``


def parse_line(line: bytes) -> Paper | RecordError:
    """One snapshot line (bytes, with or without its line ending) as a Paper, or why it is not one."""
    try:
        record = orjson.loads(line)  # 2x the standard library's speed
    except orjson.JSONDecodeError:
        return _parse_bad_line(line)  # the standard library words what is wrong
    return _paper(record)


def _parse_bad_line(line: bytes) -> Paper | RecordError:
    """A line orjson refused: the standard library's reading, and its message when it refuses too."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte, column = line[exc.start], exc.start + 1
        return RecordError("line", f"is not valid UTF-8 (byte 0x{byte:02x} at column {column})")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        if text and text[-1] in "\r\n":  # a cut line: "Unterminated string", not "Invalid control character"
            return _parse_bad_line(line.rstrip(b"\r\n"))
        return RecordError("json", f"{exc.msg}: column {exc.colno}")
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        return RecordError("json", str(exc))
    except RecursionError:
        return RecordError("json", "is nested too deeply")
    if ("\\ud" in text or "\\uD" in text) and (bad := _lone_surrogate(record)):
        return RecordError("json", f"holds a lone UTF-16 surrogate \\u{ord(bad):04x}, not a character")
    return _paper(record)  # JSON that orjson does not take (NaN, Infinity)


def _paper(record: Any) -> Paper | RecordError:
    if type(record) is not dict:
        kind = _kind(record)
        return RecordError("json", f"expected an object, got {_ARTICLE.get(kind, 'a ' + kind)}")
    try:
        return to_paper(record)
    except RecordError as exc:
        return exc


def to_paper(record: dict[str, Any]) -> Paper:
    """Map one decoded snapshot object to a Paper; raise RecordError on a missing or mistyped field."""
    arxiv_id = _required(record, "id").strip()
    if not arxiv_id:
        raise RecordError("id", "is empty")
    if arxiv_id[-1].isdigit() and "v" in arxiv_id:
        arxiv_id = _TRAILING_VERSION.sub("", arxiv_id)
    title = _clean(_required(record, "title"))
    if title is None:
        raise RecordError("title", "is empty")
    summary = _clean(_required(record, "abstract"))
    if summary is None:
        raise RecordError("abstract", "is empty")

    optional = {attr: _clean(_optional(record, key)) for attr, key in _OPTIONAL}

    categories = _optional(record, "categories")
    versions = _versions(record.get("versions"))
    _check_update_date(_optional(record, "update_date"))
    authors = _authors_parsed(record.get("authors_parsed"))
    if not authors:
        authors = split_authors(_optional(record, "authors"))

    comments = optional["comments"]
    if "://" in summary or (comments and "://" in comments):
        github_repo, project_page = find_links(summary, comments)
    else:
        github_repo = project_page = None

    return Paper(
        id=arxiv_id,
        title=title,
        summary=summary,
        authors=authors,
        categories=categories.split() if categories else [],
        published_at=versions[0].submitted_at if versions else None,
        updated_at=versions[-1].submitted_at if versions else None,
        versions=versions,
        github_repo=github_repo,
        project_page=project_page,
        source=SOURCE,
        **optional,
    )


def _check_update_date(value: str | None) -> None:
    """``update_date``, the day of the last metadata change (not a version's date: not stored), is
    YYYY-MM-DD or absent; anything else says the line is not what it claims to be."""
    if value is None:
        return
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise RecordError("update_date", f"{show(value)} is not a date (YYYY-MM-DD)") from None


def _required(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if value is None:
        raise RecordError(key, "is missing")
    if type(value) is not str:
        raise RecordError(key, f"must be a string, got {_kind(value)}")
    return value


def _optional(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None or type(value) is str:
        return value
    raise RecordError(key, f"must be a string, got {_kind(value)}")


def _versions(value: Any) -> list[Version]:
    if value is None:
        return []
    if type(value) is not list:
        raise RecordError("versions", f"must be a list, got {_kind(value)}")
    versions = []
    for n, entry in enumerate(value, 1):
        if type(entry) is not dict:
            raise RecordError("versions", f"entry {n} must be an object, got {_kind(entry)}")
        label = entry.get("version")
        if type(label) is not str or label[:1] != "v" or not label[1:].isdecimal():
            raise RecordError("versions", f"entry {n} has version {label!r}, expected 'v' and a number")
        created = entry.get("created")
        if created is not None and type(created) is not str:
            raise RecordError("versions", f"entry {n} created must be a string, got {_kind(created)}")
        versions.append(Version(int(label[1:]), _date(created, n)))
    return versions


def _date(value: str | None, n: int) -> datetime | None:
    if not value:
        return None
    m = _RFC_GMT.fullmatch(value)
    if m is not None and m.group(2) in _MONTHS:
        day, month, year, hour, minute, second = m.groups()
        try:
            return datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second))
        except ValueError:
            pass  # an impossible day ("31 Feb"): let parse_date word the error
    try:
        return parse_date(value)
    except (ValueError, OverflowError) as exc:
        raise RecordError("versions", f"entry {n} created {value!r} is not a date") from exc


def _authors_parsed(value: Any) -> list[Author]:
    """``[[keyname, forenames, suffix, affiliation...], ...]`` -> Authors; [] when absent or empty."""
    if not value:
        return []
    if type(value) is not list:
        raise RecordError("authors_parsed", f"must be a list, got {_kind(value)}")
    authors = []
    for n, entry in enumerate(value, 1):
        if type(entry) is not list:
            raise RecordError("authors_parsed", f"entry {n} must be a list, got {_kind(entry)}")
        if len(entry) == 3 and type(entry[0]) is str and type(entry[1]) is str and type(entry[2]) is str:
            keyname, forenames, suffix = entry  # the usual shape, checked at once
            affiliations: tuple[str, ...] = ()
        else:
            for part in entry:
                if part is not None and type(part) is not str:
                    raise RecordError("authors_parsed", f"entry {n} must hold strings, got {_kind(part)}")
            keyname, forenames, suffix = (entry[:3] + [None, None, None])[:3]
            # A fourth element is the affiliation given in brackets in the author line ("R. P. Malik (Bhu)").
            affiliations = tuple(
                aff for part in entry[3:] if part for a in part.split(";") if (aff := " ".join(a.split()))
            )
        name = " ".join(f"{forenames or ''} {keyname or ''} {suffix or ''}".split())
        if not name:
            continue
        if "\\" in name:  # authors_parsed is decoded already; the odd leftover TeX goes through pylatexenc
            name = detex(name)
        authors.append(Author(name, affiliations))
    return authors


def _lone_surrogate(record: dict[str, Any]) -> str | None:
    """The first unpaired surrogate that a ``\\udxxx`` escape put in the record, if any."""
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.object[exc.start]
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return _KIND.get(type(value), type(value).__name__)


class _Prefixed(io.RawIOBase):
    """A non-seekable stream with some bytes already read from it put back in front."""

    def __init__(self, head: bytes, stream: BinaryIO):
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)


def _peek(stream: BinaryIO, size: int) -> tuple[bytes, BinaryIO]:
    """The first ``size`` bytes of ``stream`` and a stream that still starts with them."""
    peek = getattr(stream, "peek", None)
    if peek is not None:
        return peek(size)[:size], stream
    if stream.seekable():
        start = stream.tell()
        head = stream.read(size)
        stream.seek(start)
        return head, stream
    head = stream.read(size)
    return head, io.BufferedReader(_Prefixed(head, stream))  # type: ignore[arg-type]
