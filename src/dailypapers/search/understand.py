"""Query understanding that needs the stored papers: an author's name typed without ``author:``.

A query that holds a stored author's full name ("sergey levine", "levine sergey" does not count) puts
that author's papers first and leaves the rest of the results as they were: a name is never a filter,
since the same words may be a topic. A name is two to four words side by side in the query, all of
one author's name in order (a part of a longer name counts: "de vries" for "Jan de Vries"). One word
alone is not read as a name: on the sample corpus, 11 of the 715 authors' name words are also words
of the abstracts ("can" in 53 of 98, "law", "sun", "gui"), and the text side already weighs a name
word in the author field (fulltext_search.AUTHORS_BOOST).

Found through the full-text index's author field (both databases use it), so a name costs a phrase
lookup per word span: queries longer than MAX_QUERY_WORDS (a pasted paragraph) are not read for names.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.engine import Connection

from dailypapers.search.filters import Filters
from dailypapers.search.query import Query, _words
from dailypapers.search.text import text_search
from dailypapers.store.backend import in_list
from dailypapers.store.schema import papers

NAME_WORDS = (2, 4)  # how many words a name typed without author: has
MAX_QUERY_WORDS = 6  # longer queries are not read for names

_AUTHORS = select(papers.c.pk, papers.c.authors).where(in_list(papers.c.pk, "pks"))


def _folded(text: str) -> list[str]:
    """The words of a name, lowercased and without accents (as the full-text index compares them)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return _words("".join(ch for ch in decomposed if not unicodedata.combining(ch)))


def _name_with(span: list[str], authors: list[dict]) -> str | None:
    """The author whose name holds the span's words side by side, in order; None if none does."""
    n = len(span)
    for author in authors or ():
        name = author.get("name") or ""
        words = _folded(name)
        if any(words[i:i + n] == span for i in range(len(words) - n + 1)):
            return name
    return None


def typed_authors(conn: Connection, query: Query, filters: Filters, limit: int,
                  checked: Callable[[list[int]], set[int]] | None = None) -> tuple[tuple[str, ...], set[int]]:
    """The stored authors named in the query's free words, longest names first, and their papers
    (at most ``limit`` each, under the filters): ((names as stored), {paper pks})."""
    terms = [" ".join(_folded(t)) for t in query.terms]
    if not NAME_WORDS[0] <= len(terms) <= MAX_QUERY_WORDS:
        return (), set()
    taken = [False] * len(terms)
    names: dict[str, None] = {}
    found: set[int] = set()
    for n in range(min(NAME_WORDS[1], len(terms)), NAME_WORDS[0] - 1, -1):
        for i in range(len(terms) - n + 1):
            if any(taken[i:i + n]):
                continue
            span = terms[i:i + n]
            hits = [h.pk for h in text_search(conn, Query(authors=(" ".join(span),)), filters, limit, checked)]
            if not hits:
                continue
            # The index matches words side by side across two authors ("... Levine, Chelsea ..."):
            # keep the papers where one author's name holds them.
            by = {pk: name for pk, authors in conn.execute(_AUTHORS, {"pks": hits})
                  if (name := _name_with(span, authors))}
            if by:
                taken[i:i + n] = [True] * n
                names.update(dict.fromkeys(by[pk] for pk in hits if pk in by))
                found |= set(by)
    return tuple(names), found
