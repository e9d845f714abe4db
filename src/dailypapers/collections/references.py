"""Reference files: BibTeX and RIS read (Zotero, Mendeley, Google Scholar exports), RIS and CSL-JSON
written (BibTeX: dailypapers.bibtex).

Reading never touches the database: it gives each entry's number, key, title, arXiv id and DOI, or
raises ``BadFile`` with a sentence naming the line or the entry ("entry 3 (smith2020): ...").
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

import bibtexparser
import rispy
from bibtexparser.model import DuplicateBlockKeyBlock, DuplicateFieldKeyBlock, Entry, ParsingFailedBlock
from pylatexenc.latex2text import LatexNodes2Text

from dailypapers.bibtex import _author_names, _categories, citation_keys
from dailypapers.community import CommunityError
from dailypapers.domain import ARXIV_ID, RecordError, normalize_id

# bibtexparser logs each entry it cannot read, with the entry's text: the reader gets the message instead.
logging.getLogger("bibtexparser").setLevel(logging.ERROR)

MAX_BYTES = 5 * 1024 * 1024
MAX_ENTRIES = 5_000
NEITHER = ("This file is neither BibTeX (entries like @article{key, title = {...}}) nor RIS (references "
           "from a 'TY  - ' line to an 'ER  - ' line); export your library in one of these formats.")


class BadFile(CommunityError):
    """A reference file that cannot be imported; the message says where and why."""

    def __init__(self, message: str):
        super().__init__(message, field="file")


@dataclass(frozen=True)
class Reference:
    number: int  # 1, 2, ... in the order of the file
    key: str  # the BibTeX key or RIS ID ("" when there is none)
    title: str
    arxiv_id: str | None
    doi: str | None  # lower-case, without https://doi.org/

    @property
    def label(self) -> str:
        return f"entry {self.number}" + (f" ({self.key})" if self.key else "")


# --- finding the identifiers ---------------------------------------------------------------------

_ARXIV_URL = re.compile(r"(?:https?://)?(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/[^\s?#\[\]{},;\"']+", re.I)
_ARXIV_DOI = re.compile(r"10\.48550/arxiv\.([^\s\[\]{},;\"']+)", re.I)
_ARXIV_TEXT = re.compile(r"arxiv:\s*([^\s\[\]{},;\"']+)", re.I)
_DOI = re.compile(r"10\.\d{4,9}/[^\s{}\"']+")


def _arxiv_in(text: str) -> str | None:
    for found in (*_ARXIV_URL.findall(text), *_ARXIV_DOI.findall(text), *_ARXIV_TEXT.findall(text)):
        try:
            return normalize_id(found.rstrip("."))[0]
        except RecordError:
            continue
    return None


def _arxiv_id(eprints: list[str], texts: list[str]) -> str | None:
    """From fields that hold only an id (eprint, arxivid), then from URLs, DOIs and notes."""
    for value in eprints:
        try:
            return normalize_id(value)[0]
        except RecordError:
            pass
    for value in texts:
        if found := _arxiv_in(value):
            return found
    return None


def _doi(value: str | None) -> str | None:
    found = _DOI.search(value or "")
    return found.group(0).rstrip(".").lower() if found else None


_latex = LatexNodes2Text()


def latex_text(text: str) -> str:
    """LaTeX as plain text ("caf\\'e" -> "café"). pylatexenc takes milliseconds a call: only text with a
    command or math goes through it; braces alone are simply dropped."""
    if "\\" not in text and "$" not in text:
        return text.replace("{", "").replace("}", "")
    try:
        return _latex.latex_to_text(re.sub(r"(?<!\\)%", r"\\%", text))  # (a bare % starts a comment)
    except Exception:  # noqa: BLE001 - pylatexenc on odd input: the text as it is
        return text


def normalize_title(title: str) -> str:
    """For comparing titles: LaTeX decoded, accents and braces gone, case folded, punctuation a space."""
    text = latex_text(title)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


# --- reading --------------------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise BadFile(f"The file has {len(data) / 2**20:.1f} MB; an import takes at most {MAX_BYTES // 2**20} MB.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadFile(f"The file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start:,}); "
                      "export it again with the UTF-8 encoding.") from None
    if "\x00" in text:
        raise BadFile("The file contains NUL characters: it is not a BibTeX or RIS text file.")
    if not text.strip():
        raise BadFile("The file is empty.")
    return text


def read_references(data: bytes) -> tuple[str, list[Reference]]:
    """("BibTeX" or "RIS", the entries in file order) from a file's bytes; raises BadFile."""
    text = _decode(data)
    first = text.lstrip().split("\n", 1)[0]
    if re.match(r"TY\s+-", first):
        kind, refs = "RIS", _ris(text)
    elif re.search(r"^\s*@\s*[A-Za-z]+\s*[{(]", text, re.M):
        kind, refs = "BibTeX", _bibtex(text)
    else:
        raise BadFile(NEITHER)
    if not refs:
        raise BadFile(f"The file has no {kind} entries.")
    if len(refs) > MAX_ENTRIES:
        raise BadFile(f"The file has {len(refs):,} entries; an import takes at most {MAX_ENTRIES:,}.")
    for ref in refs:
        if not (ref.title or ref.arxiv_id or ref.doi):
            raise BadFile(f"{ref.label}: no title, DOI or arXiv id to find the paper by.")
    return kind, refs


def _parse(text: str) -> bibtexparser.Library:
    return bibtexparser.parse_string(text)  # (the titles alone are decoded from LaTeX: latex_text)


def _bibtex(text: str) -> list[Reference]:
    try:
        library = _parse(text)
    except Exception as exc:  # noqa: BLE001 - the parser's own failure on a file it cannot split
        raise BadFile(f"The BibTeX file could not be read: {str(exc)[:200]}") from None
    entries = []
    for block in library.blocks:
        if isinstance(block, (DuplicateBlockKeyBlock, DuplicateFieldKeyBlock)):
            # A key or field twice: keep the entry, as BibTeX tools do (read alone, through the middlewares).
            block = next(iter(_parse(block.raw or "").entries), None)
        elif isinstance(block, ParsingFailedBlock):
            key = re.match(r"\s*@\s*\w+\s*[{(]\s*([^,\s]*)", block.raw or "")
            where = f"line {(block.start_line or 0) + 1}" + (f" ({key.group(1)})" if key and key.group(1) else "")
            reason = str(getattr(block, "error", "")).split("bibtex:", 1)[-1].strip().split("\n")[0]
            raise BadFile(f"{where}: this entry is not valid BibTeX" + (f" ({reason[:200]})" if reason else "")
                          + "; check its braces and quotes.")
        if isinstance(block, Entry):
            entries.append(block)
    refs = []
    for number, entry in enumerate(entries, 1):
        fields = {f.key.lower(): str(f.value) for f in entry.fields}
        prefix = (fields.get("archiveprefix") or fields.get("eprinttype") or "").lower()
        eprints = [fields[k] for k in ("arxivid", "arxiv") if k in fields]
        if "eprint" in fields and (prefix in ("", "arxiv")):
            eprints.insert(0, fields["eprint"])
        texts = [fields[k] for k in ("url", "doi", "note", "journal", "howpublished", "eprint", "annote")
                 if k in fields]
        refs.append(Reference(number, entry.key, " ".join(latex_text(fields.get("title", "")).split()),
                              _arxiv_id(eprints, texts), _doi(fields.get("doi"))))
    return refs


_RIS_LINE = re.compile(r"([A-Z][A-Z0-9])  -(?: (.*))?")


def _check_ris(text: str) -> None:
    """rispy skips what it does not understand; a file that is not whole must say where instead."""
    opened = None  # the line of the TY whose ER has not come yet
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        tag = _RIS_LINE.fullmatch(line.rstrip())
        if tag is None:
            if opened is None and re.fullmatch(r"\d+\.", line.strip()):
                continue  # the number rispy writes before each reference
            if opened is None:
                raise BadFile(f"line {number}: {line[:60]!r} is not a RIS line ('XX  - value') within a reference.")
            continue  # a long field continued on the next line
        if tag.group(1) == "TY":
            if opened is not None:
                raise BadFile(f"line {number}: a reference starts (TY) before the one of line {opened} ended (ER).")
            opened = number
        elif opened is None:
            raise BadFile(f"line {number}: {tag.group(1)} is outside a reference (each goes from TY to ER).")
        elif tag.group(1) == "ER":
            opened = None
    if opened is not None:
        raise BadFile(f"line {opened}: the reference that starts here has no ER line to end it.")


def _ris(text: str) -> list[Reference]:
    _check_ris(text)
    try:
        records = rispy.loads(text, skip_unknown_tags=True)
    except Exception as exc:  # noqa: BLE001 - rispy's own failure
        raise BadFile(f"The RIS file could not be read: {str(exc)[:200]}") from None
    refs = []
    for number, record in enumerate(records, 1):
        title = record.get("title") or record.get("primary_title") or record.get("translated_title") or ""
        listed = [*record.get("urls", []), *record.get("notes", []), record.get("doi") or "",
                  record.get("journal_name") or "", record.get("note") or "", record.get("number") or ""]
        refs.append(Reference(number, str(record.get("id") or ""), " ".join(str(title).split()),
                              _arxiv_id([], [str(v) for v in listed]), _doi(record.get("doi"))))
    return refs


# --- writing --------------------------------------------------------------------------------------


def _split_name(name: str) -> tuple[str, str]:
    """(family, given): "Turing, Alan" and "Alan Turing" -> ("Turing", "Alan")."""
    if "," in name:
        family, given = name.split(",", 1)
        return family.strip(), given.strip()
    parts = name.split()
    suffix = parts.pop() if len(parts) > 2 and parts[-1].lower().strip(".") in ("jr", "sr", "ii", "iii", "iv") else ""
    family = parts[-1] + (f" {suffix}" if suffix else "")
    return family, " ".join(parts[:-1])


def _links(row: dict) -> tuple[str | None, str | None]:
    """(DOI, URL): the paper's DOI, else arXiv's own for its papers; the abs page, else the DOI's."""
    paper_id = row.get("id") or ""
    arxiv = bool(ARXIV_ID.fullmatch(paper_id))
    doi = (row.get("doi") or "").split()[0] if row.get("doi") else (f"10.48550/arXiv.{paper_id}" if arxiv else None)
    url = f"https://arxiv.org/abs/{paper_id}" if arxiv else (f"https://doi.org/{doi}" if doi else None)
    return doi, url


def ris(rows: list[dict]) -> str:
    """RIS references for paper rows, in the order given (JOUR with a journal, else a preprint)."""
    records = []
    for key, row in zip(citation_keys(rows), rows):
        doi, url = _links(row)
        record = {"type_of_reference": "JOUR" if row.get("journal_ref") else "GEN", "id": key,
                  "title": " ".join((row.get("title") or "").split()),
                  "authors": [", ".join(p for p in _split_name(n) if p) for n in _author_names(row)]}
        if isinstance(row.get("published_at"), datetime):
            record["year"] = str(row["published_at"].year)
            record["date"] = row["published_at"].strftime("%Y/%m/%d")
        if row.get("summary"):
            record["abstract"] = " ".join(row["summary"].split())
        if row.get("journal_ref"):
            record["journal_name"] = row["journal_ref"]
        if doi:
            record["doi"] = doi
        if url:
            record["urls"] = [url]
        if ARXIV_ID.fullmatch(row.get("id") or ""):
            record["notes"] = [f"arXiv:{row['id']}" + (f" [{_categories(row)[0]}]" if _categories(row) else "")]
            record["publisher"] = "arXiv"
        if row.get("note"):
            record["research_notes"] = " ".join(row["note"].split())
        records.append(record)
    return rispy.dumps(records, implementation=_RisWriter)


class _RisWriter(rispy.RisWriter):
    def set_header(self, count: int) -> str:
        return ""  # rispy numbers references ("1.") by default; other tools write no such line



def csl_json(rows: list[dict]) -> list[dict]:
    """CSL-JSON items (citeproc, Zotero, pandoc) for paper rows, in the order given."""
    items = []
    for key, row in zip(citation_keys(rows), rows):
        doi, url = _links(row)
        authors = []
        for name in _author_names(row):
            family, given = _split_name(name)
            authors.append({"family": family, "given": given} if given else {"literal": family})
        item = {"id": key, "type": "article-journal" if row.get("journal_ref") else "article",
                "title": " ".join((row.get("title") or "").split()), "author": authors}
        if isinstance(row.get("published_at"), datetime):
            when = row["published_at"]
            item["issued"] = {"date-parts": [[when.year, when.month, when.day]]}
        if row.get("summary"):
            item["abstract"] = " ".join(row["summary"].split())
        if row.get("journal_ref"):
            item["container-title"] = row["journal_ref"]
        if ARXIV_ID.fullmatch(row.get("id") or ""):
            item |= {"publisher": "arXiv", "number": row["id"]}
        if doi:
            item["DOI"] = doi
        if url:
            item["URL"] = url
        if row.get("note"):
            item["note"] = row["note"]
        items.append(item)
    return items
