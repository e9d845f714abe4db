"""BibTeX for papers: stable, unique citation keys and escaped fields (paper pages, saved papers)."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

from dailypapers.domain import ARXIV_ID

_BIB_ESCAPES = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "&": r"\&", "%": r"\%", "$": r"\$",
                "#": r"\#", "_": r"\_", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_BIB_SPECIAL = re.compile("[" + re.escape("".join(_BIB_ESCAPES)) + "]")
_STOP_WORDS = {"a", "an", "the", "on", "of", "in", "for", "to", "and", "with", "at", "by", "from"}
_NAME_SUFFIXES = {"jr", "sr", "ii", "iii", "iv"}


def _bib_text(value: str) -> str:
    """Text for a BibTeX field: one line, its special characters escaped."""
    return _BIB_SPECIAL.sub(lambda m: _BIB_ESCAPES[m.group(0)], " ".join(str(value).split()))


def _bib_verbatim(value: str) -> str:
    """URLs, DOIs, eprints are read verbatim by biblatex: only braces, backslashes and spaces go."""
    return re.sub(r"[{}\\\s]", "", str(value))


def _ascii_words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.findall(r"[a-z0-9]+", folded.lower())


def _author_names(paper: dict) -> list[str]:
    names = []
    for author in paper.get("authors") or []:
        name = author.get("name") if isinstance(author, dict) else getattr(author, "name", author)
        if isinstance(name, str) and name.strip():
            names.append(" ".join(name.split()))
    return names


def _last_name(name: str) -> str:
    if "," in name:  # "Turing, Alan"
        return name.split(",", 1)[0]
    parts = [p for p in name.split() if p.lower().strip(".") not in _NAME_SUFFIXES]
    return parts[-1] if parts else name


def _year(paper: dict) -> int | None:
    when = paper.get("published_at")
    if isinstance(when, datetime):
        return when.year
    if isinstance(when, str) and re.match(r"\d{4}", when):
        return int(when[:4])
    return None


def _categories(paper: dict) -> list[str]:
    cats = paper.get("categories") or []
    return cats.split() if isinstance(cats, str) else list(cats)


def citation_key(paper: dict) -> str:
    """``lastname`` of the first author + year + first word of the title: ``stanley2016heat``.

    Accents are folded ("Núñez" -> "nunez"); short words ("a", "on", "the") and numbers are skipped;
    without author names the key starts with "anonymous".
    """
    names = _author_names(paper)
    last = "".join(_ascii_words(_last_name(names[0]))) if names else ""
    words = [w for w in _ascii_words(paper.get("title") or "") if w not in _STOP_WORDS and not w.isdigit()]
    year = _year(paper)
    return (last or "anonymous") + (str(year) if year else "") + (words[0] if words else "")


def citation_keys(papers: list[dict]) -> list[str]:
    """One key per paper, in order; a key repeated within the list gets a letter: ``smith2025deepb``."""
    keys, used = [], set()
    for paper in papers:
        key = base = citation_key(paper)
        suffix = ord("b")
        while key in used:
            key, suffix = f"{base}{chr(suffix)}", suffix + 1
        used.add(key)
        keys.append(key)
    return keys


def bibtex(papers: list[dict]) -> str:
    """BibTeX entries for paper rows (as the store returns them), in the order given.

    ``@article`` with ``journal`` when a journal reference is known, else ``@misc``; arXiv papers get
    ``eprint``, ``archivePrefix`` and ``primaryClass``. A paper whose authors are only counted gets
    ``author = {others}``. Keys repeated within the list get a letter: ``smith2025deepb``.
    """
    entries = []
    for paper, key in zip(papers, citation_keys(papers)):
        names = _author_names(paper)
        count = paper.get("num_authors") or 0
        authors = " and ".join(_bib_text(n) for n in names)
        if count > len(names):
            authors = f"{authors} and others" if authors else "others"
        fields: list[tuple[str, str]] = [("title", _bib_text(paper.get("title") or ""))]
        if authors:
            fields.append(("author", authors))
        if year := _year(paper):
            fields.append(("year", str(year)))
        paper_id = paper.get("id") or ""
        arxiv = bool(ARXIV_ID.fullmatch(paper_id))
        if arxiv:
            fields += [("eprint", _bib_verbatim(paper_id)), ("archivePrefix", "arXiv")]
            if cats := _categories(paper):
                fields.append(("primaryClass", _bib_verbatim(cats[0])))
        if journal := paper.get("journal_ref"):
            fields.append(("journal", _bib_text(journal)))
        if doi := paper.get("doi"):
            fields.append(("doi", _bib_verbatim(doi)))
        if arxiv:
            fields.append(("url", f"https://arxiv.org/abs/{_bib_verbatim(paper_id)}"))
        elif doi:
            fields.append(("url", f"https://doi.org/{_bib_verbatim(doi)}"))
        kind = "article" if paper.get("journal_ref") else "misc"
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
        entries.append(f"@{kind}{{{key},\n{body}\n}}\n")
    return "\n".join(entries)
