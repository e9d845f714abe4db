"""The query language, as typed in the search box::

    diffusion video            free words: any may match; they rank the results
    "state space model"        a phrase: required, its words adjacent and in order
    -survey  -"large language"  excluded: no result contains it
    author:lovelace  author:"jan de vries"   required, in the author names
    cat:cs.LG  cat:cs          categories (the caller moves them into ``Filters.categories``)
    cs.RO  hep-th  q-fin.PM    a real arXiv category typed bare is ``cat:`` too (not "cs" or "math" alone:
                               those are words)
    2104.12255, arXiv:2104.12255v2, https://arxiv.org/abs/2104.12255   the whole query is one paper

``parse_query`` never raises and never passes syntax through: what the databases receive is built
from the words (text.py, fulltext.py), so ``AND``, ``NEAR(``, ``*``, quotes and ``col:`` are plain text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from dailypapers.domain import RecordError
from dailypapers.domain import normalize_id

MAX_QUERY_CHARS = 1000  # longer input is cut (at a word boundary when one is near)
MAX_QUERY_PARTS = 64  # words, phrases, exclusions and authors kept from one query, in order

_PREFIXES = {"author": "author", "au": "author", "cat": "cat", "category": "cat"}
# One token: optional "-", optional "prefix:", then a "quoted phrase" (closed at the end when
# unbalanced) or a run of anything but space and quotes.
_TOKEN = re.compile(r'(-)?(?:(author|au|cat|category):)?(?:"([^"]*)(?:"|$)|([^\s"]+))', re.IGNORECASE)
_CATEGORY = re.compile(r"[a-z][a-z\-]*(?:\.[a-z\-]+)?", re.IGNORECASE)
# Hugging Face paper pages name the arXiv id too: https://huggingface.co/papers/2104.12255
_HF_PAPER_URL = re.compile(r"(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/papers/", re.IGNORECASE)



@dataclass(frozen=True)
class Query:
    terms: tuple[str, ...] = ()  # free words, lowercased, for ranking (OR-ed: any may match)
    phrases: tuple[str, ...] = ()  # "quoted phrases": all required, as phrases
    excluded: tuple[str, ...] = ()  # -word or -"a phrase": none may match
    authors: tuple[str, ...] = ()  # author:smith author:"jan de vries": all required, in author names
    categories: tuple[str, ...] = ()  # cat:cs.LG cat:cs, spelled as arXiv does (cs.LG, cond-mat.str-el)
    arxiv_id: str | None = None  # the whole query is an arXiv id or URL (without version)
    raw: str = ""  # the cleaned query text
    meaning: str = ""  # what the embedding reads: the text without its categories (filters, not meaning)
    # Every free word with how often it was typed (beyond MAX_QUERY_PARTS too): a pasted abstract's
    # words are weighed by these (fulltext.py).
    counts: tuple[tuple[str, int], ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing to search for by text (exclusions alone find nothing; see ``arxiv_id`` first)."""
        return not (self.terms or self.phrases or self.authors)




def _is_word_char(ch: str) -> bool:
    # Letters, digits and combining marks: what the full-text indexes keep in a word.
    return unicodedata.category(ch)[0] in "LNM"


def _words(s: str) -> list[str]:
    """The words of a piece of text, lowercased: runs of letters, digits and marks."""
    out, current = [], []
    for ch in s:
        if _is_word_char(ch):
            current.append(ch)
        elif current:
            out.append("".join(current))
            current = []
    if current:
        out.append("".join(current))
    return [w.lower() for w in out]


def _clean(raw: object) -> str:
    """Cut to MAX_QUERY_CHARS; control, format and surrogate characters become spaces; one space."""
    if not isinstance(raw, str):
        return ""
    if len(raw) > MAX_QUERY_CHARS:
        cut = raw[:MAX_QUERY_CHARS]
        space = cut.rfind(" ")
        raw = cut[:space] if space > MAX_QUERY_CHARS - 50 else cut
    cleaned = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") else ch for ch in raw)
    return " ".join(cleaned.split())


def _arxiv_id(s: str) -> str | None:
    if m := _HF_PAPER_URL.match(s):
        s = re.split(r"[?#]", s[m.end():], maxsplit=1)[0].rstrip("/")
    try:
        return normalize_id(s)[0]
    except (RecordError, ValueError):
        return None


def _category(value: str) -> str | None:
    """arXiv's spelling of a category: cs.LG, math.GT, hep-th, cond-mat.str-el; None if not one."""
    if not _CATEGORY.fullmatch(value) or len(value) > 50:
        return None
    archive, _, subject = value.lower().partition(".")
    if not subject:
        return archive
    return f"{archive}.{subject.upper() if len(subject) == 2 else subject}"


def _bare_category(value: str) -> str | None:
    """A bare word that is a real arXiv category with a dot or a dash (cs.RO, hep-th, cond-mat.str-el),
    closing punctuation aside; None otherwise ("cs", "math" and "self-supervised" stay words)."""
    from dailypapers.follows.taxonomy import CATEGORIES  # here: follows/ imports ingest, which imports this

    value = value.rstrip(".,;:")
    if "." not in value and "-" not in value:
        return None
    category = _category(value)
    return category if category in CATEGORIES else None


def _without(text: str, spans: list[tuple[int, int]]) -> str:
    """The text with the spans cut out (one space between what is left)."""
    if not spans:
        return text
    bounds = [0, *(i for span in spans for i in span), len(text)]
    return " ".join(" ".join(text[a:b] for a, b in zip(bounds[::2], bounds[1::2])).split())


def parse_query(raw: str) -> Query:
    """Read what a user typed into a Query. Never raises, whatever the input."""
    try:
        return _parse(_clean(raw))
    except Exception:  # noqa: BLE001 - a search box must never fail; nothing is searched instead
        return Query()


def _parse(cleaned: str) -> Query:
    arxiv_id = _arxiv_id(cleaned) if cleaned else None
    if arxiv_id:
        return Query(arxiv_id=arxiv_id, raw=cleaned)
    kinds = ("terms", "phrases", "excluded", "authors", "categories")
    parts: dict[str, dict[str, None]] = {k: {} for k in kinds}  # ordered sets

    counts: dict[str, int] = {}
    filters: list[tuple[int, int]] = []  # where the categories are: not read by the embedding

    def add(kind: str, value: str) -> None:
        if sum(map(len, parts.values())) < MAX_QUERY_PARTS:
            parts[kind][value] = None

    def free(words: list[str]) -> None:
        for word in words:
            add("terms", word)
            counts[word] = counts.get(word, 0) + 1

    for m in _TOKEN.finditer(cleaned):
        minus, prefix, quoted, bare = m.groups()
        kind = _PREFIXES.get(prefix.lower()) if prefix else None
        value = quoted if quoted is not None else bare
        words = _words(value)
        if kind == "cat":
            category = _category(value.strip())
            if category and not minus:
                add("categories", category)
                filters.append(m.span())
            elif not category:  # not a category after all: its words are free words
                free(words)
            continue  # "-cat:x" excludes nothing (Filters has no negative categories)
        if not words:
            continue
        if not (minus or kind or quoted is not None) and (category := _bare_category(value)):
            add("categories", category)
            filters.append(m.span())
        elif minus:
            add("excluded", " ".join(words))
        elif kind == "author":
            add("authors", " ".join(words))
        elif quoted is not None:
            add("phrases", " ".join(words))
        else:
            free(words)
    return Query(
        terms=tuple(parts["terms"]),
        phrases=tuple(parts["phrases"]),
        excluded=tuple(parts["excluded"]),
        authors=tuple(parts["authors"]),
        categories=tuple(parts["categories"]),
        raw=cleaned,
        meaning=_without(cleaned, filters),
        counts=tuple(counts.items()),
    )
