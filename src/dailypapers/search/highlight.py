"""Highlighting: the query's words marked in titles and abstracts, and the densest snippet."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from markupsafe import Markup, escape

from dailypapers import tex
from dailypapers.search.query import Query

# A run of letters, digits and combining marks (the marks matter for decomposed accents).
_WORD_RUN = re.compile(r"(?:[^\W_]|[\u0300-\u036f])+")

# Free words too common to be worth marking (phrases and author names mark all their words).
_STOP_WORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was we were with"
    .split())


@lru_cache(maxsize=65_536)
def _fold(word: str) -> str:
    """Lowercase without diacritics, as the full-text indexes compare words."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _word_matches(word: str, term: str) -> bool:
    """Whether a folded text word is a form of a folded query word: a shared Porter-ish stem."""
    if len(term) <= 4:
        return word == term or word in (term + "s", term + "es")
    return word.startswith(term[: max(4, len(term) - 3)])


@lru_cache(maxsize=1024)
def _singles(query: Query) -> tuple[frozenset[str], re.Pattern | None]:
    """The query's folded free words, and one pattern marking their forms in ASCII text.

    The pattern is the fast path (one regex pass instead of a test per word and term): a search
    highlights dozens of abstracts. It matches exactly what ``_word_matches`` accepts.
    """
    singles = frozenset(_fold(t) for t in query.terms if t not in _STOP_WORDS)
    forms = [re.escape(t) + "(?:s|es)?" if len(t) <= 4 else re.escape(t[: max(4, len(t) - 3)]) + r"[^\W_]*"
             for t in sorted(singles) if t.isascii()]
    pattern = re.compile(r"\b(?:" + "|".join(forms) + r")(?![^\W_])", re.ASCII) if forms else None
    return singles, pattern


def _ascii_marks(pattern: re.Pattern, text: str) -> list[tuple[int, int]]:
    """Where ``pattern`` matches ASCII ``text``, lowercased and with underscores as spaces (so \b is
    "not after a letter or digit"): no case folding and ASCII classes, 40% of the time of a
    case-blind look-behind."""
    return [m.span() for m in pattern.finditer(text.lower().replace("_", " "))]


def _folded_words(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), _fold(m.group())) for m in _WORD_RUN.finditer(text)]


def _spans(text: str, query: Query) -> list[tuple[int, int]]:
    """Character spans of the text to mark, sorted and merged."""
    singles, pattern = _singles(query)
    words = None
    if text.isascii():  # lowercasing is all the folding ASCII needs
        spans = _ascii_marks(pattern, text) if pattern else []
    else:
        words = _folded_words(text)
        spans = [(s, e) for s, e, w in words if any(_word_matches(w, t) for t in singles)]
    for phrase in (*query.phrases, *query.authors):
        words = words if words is not None else _folded_words(text)
        parts = [_fold(p) for p in phrase.split()]
        n = len(parts)
        for i in range(len(words) - n + 1):
            if all(_word_matches(words[i + k][2], parts[k]) for k in range(n)):
                spans.append((words[i][0], words[i + n - 1][1]))
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def _window(text: str, spans: list[tuple[int, int]], max_chars: int) -> tuple[int, int]:
    """About max_chars of the text around its densest run of marks, cut at spaces."""
    best, best_count = (0, 0), 0
    j = 0
    for i, (s, _) in enumerate(spans):
        j = max(j, i)
        while j + 1 < len(spans) and spans[j + 1][1] - s <= max_chars:
            j += 1
        if spans[j][1] - s <= max_chars and j - i + 1 > best_count:
            best, best_count = (i, j), j - i + 1
    if best_count:
        first, last = spans[best[0]][0], spans[best[1]][1]
        pad = (max_chars - (last - first)) // 2
        start = max(0, first - pad)
    else:
        first = last = start = 0
    end = min(len(text), start + max_chars)
    start = max(0, end - max_chars)
    if start > 0:  # begin at a word: after the first space, unless that loses a mark
        space = text.find(" ", start, first if best_count else end)
        if space != -1:
            start = space + 1
    if end < len(text):  # end at a word
        space = text.rfind(" ", last if best_count else start, end)
        if space != -1 and space > start:
            end = space
    return start, end


def highlight(text: str, query: Query, max_chars: int | None = None) -> Markup:
    """The text, HTML-escaped, with <mark> around the query's words; with max_chars, the densest window."""
    if not text:
        return Markup("")
    text = tex.to_text(text)  # marks are placed in what the reader sees
    spans = _spans(text, query)
    start, end = 0, len(text)
    if max_chars is not None and max_chars > 0 and len(text) > max_chars:
        start, end = _window(text, spans, max_chars)
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
    # Plain strings, every piece of the text escaped here, wrapped once (Markup per piece cost 1/3).
    out = ["…" if start > 0 else ""]
    at = start
    for s, e in spans:
        s, e = max(s, start), min(e, end)
        if s >= e:
            continue
        out += [str(escape(text[at:s])), "<mark>", str(escape(text[s:e])), "</mark>"]
        at = e
    out.append(str(escape(text[at:end])))
    if end < len(text):
        out.append("…")
    return Markup("".join(out))
