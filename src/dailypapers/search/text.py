"""Full-text search: the query language, ranked matching on both databases, and highlighting.

The query language (``parse_query``), as typed in the search box::

    diffusion video            free words: any may match; they rank the results
    "state space model"        a phrase: required, its words adjacent and in order
    -survey  -"large language"  excluded: no result contains it
    author:lovelace  author:"jan de vries"   required, in the author names
    cat:cs.LG  cat:cs          categories (the caller moves them into ``Filters.categories``)
    2104.12255, arXiv:2104.12255v2, https://arxiv.org/abs/2104.12255   the whole query is one paper

Nothing a user types is ever operator syntax for the database: every word reaches SQLite FTS5 as
a double-quoted string and PostgreSQL as a bound parameter of ``plainto_tsquery`` /
``phraseto_tsquery``, so ``AND``, ``NEAR(``, ``*``, ``^``, ``col:`` and quotes are plain text.

Ranking is BM25-like with the title above the abstract above the author names. SQLite: FTS5
``bm25()`` with the column weights below. PostgreSQL has no BM25, and plain ``ts_rank`` has no
idea that "model" is common and "mamba" rare; so each word's ``ts_rank`` (weighted by the A/B/C
labels of the stored ``search_vector``) is multiplied by the word's idf, read from the planner's
statistics. Measured nDCG@10 on SciFact (300 claims, 5,183 abstracts): ts_rank of the
whole query 0.564, ts_rank_cd 0.36-0.40, per-word ts_rank x idf 0.68 (0.55 before the table is
first analyzed); SQLite's bm25 0.69.
Free words are OR-ed: recall matters more than precision here, since the hybrid fusion re-orders
with the semantic results.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache, reduce

from markupsafe import Markup, escape
from sqlalchemy import ColumnElement, func, literal_column, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from dailypapers.domain import RecordError
from dailypapers.search.filters import Filters
from dailypapers.sources.arxiv_api import normalize_id
from dailypapers.store.schema import papers

MAX_QUERY_CHARS = 1000  # longer input is cut (at a word boundary when one is near)
MAX_QUERY_PARTS = 64  # words, phrases, exclusions and authors kept from one query, in order

# Column weights: papers_fts columns title, summary, authors; PostgreSQL labels A, B, C. In FTS5's
# bm25() a weight multiplies a column's term count before BM25 saturates it, so large weights push
# every match into saturation and flatten the title's advantage: 10/4/2 scored nDCG@10 0.674 on
# SciFact (300 test claims over 5,183 abstracts), 3/1/0.5 0.693 (BEIR's reference BM25: 0.665).
TITLE_WEIGHT = 3.0
SUMMARY_WEIGHT = 1.0
AUTHORS_WEIGHT = 0.5

# PostgreSQL: ts_rank's weights for the labels of search_vector (A title, B summary, C authors, D
# unused), each at most 1. ts_rank has no saturation, so the ratios differ from FTS5's: measured
# on SciFact, summary 0.33 -> 0.614, 0.5 -> 0.654, 0.7 -> 0.681, 1.0 -> 0.673.
PG_TITLE_WEIGHT = 1.0
PG_SUMMARY_WEIGHT = 0.7
PG_AUTHORS_WEIGHT = 0.2
PG_OTHER_WEIGHT = 0.1
_PG_WEIGHTS = "'{%s}'::float4[]" % ", ".join(
    f"{float(w):.4f}" for w in (PG_OTHER_WEIGHT, PG_AUTHORS_WEIGHT, PG_SUMMARY_WEIGHT, PG_TITLE_WEIGHT))
_PG_NORMALIZATION = 1  # ts_rank divides by 1 + log(document length): measured better than 0, 2, 32
_PG_CONFIG = "'english'::regconfig"
_MIN_FREQUENCY = 1e-7  # a document frequency is never taken as lower than this
_IDF_FLOOR = 0.05  # a word in every document still ranks a little

_PREFIXES = {"author": "author", "au": "author", "cat": "cat", "category": "cat"}
# One token: optional "-", optional "prefix:", then a "quoted phrase" (closed at the end when
# unbalanced) or a run of anything but space and quotes.
_TOKEN = re.compile(r'(-)?(?:(author|au|cat|category):)?(?:"([^"]*)(?:"|$)|([^\s"]+))', re.IGNORECASE)
_CATEGORY = re.compile(r"[a-z][a-z\-]*(?:\.[a-z\-]+)?", re.IGNORECASE)
# Hugging Face paper pages name the arXiv id too: https://huggingface.co/papers/2104.12255
_HF_PAPER_URL = re.compile(r"(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/papers/", re.IGNORECASE)


# --- the query ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    terms: tuple[str, ...] = ()  # free words, lowercased, for ranking (OR-ed: any may match)
    phrases: tuple[str, ...] = ()  # "quoted phrases": all required, as phrases
    excluded: tuple[str, ...] = ()  # -word or -"a phrase": none may match
    authors: tuple[str, ...] = ()  # author:smith author:"jan de vries": all required, in author names
    categories: tuple[str, ...] = ()  # cat:cs.LG cat:cs, spelled as arXiv does (cs.LG, cond-mat.str-el)
    arxiv_id: str | None = None  # the whole query is an arXiv id or URL (without version)
    raw: str = ""  # the cleaned query text

    @property
    def empty(self) -> bool:
        """Nothing to search for by text (exclusions alone find nothing; see ``arxiv_id`` first)."""
        return not (self.terms or self.phrases or self.authors)


# A run of letters, digits and combining marks (the marks matter for decomposed accents).
_WORD_RUN = re.compile(r"(?:[^\W_]|[\u0300-\u036f])+")


def _is_word_char(ch: str) -> bool:
    # Letters, digits and combining marks: what FTS5's unicode61 and PostgreSQL keep in a word.
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

    def add(kind: str, value: str) -> None:
        if sum(map(len, parts.values())) < MAX_QUERY_PARTS:
            parts[kind][value] = None

    for m in _TOKEN.finditer(cleaned):
        minus, prefix, quoted, bare = m.groups()
        kind = _PREFIXES.get(prefix.lower()) if prefix else None
        value = quoted if quoted is not None else bare
        words = _words(value)
        if kind == "cat":
            category = _category(value.strip())
            if category and not minus:
                add("categories", category)
            elif not category:  # not a category after all: its words are free words
                for word in words:
                    add("terms", word)
            continue  # "-cat:x" excludes nothing (Filters has no negative categories)
        if not words:
            continue
        if minus:
            add("excluded", " ".join(words))
        elif kind == "author":
            add("authors", " ".join(words))
        elif quoted is not None:
            add("phrases", " ".join(words))
        else:
            for word in words:
                add("terms", word)
    return Query(
        terms=tuple(parts["terms"]),
        phrases=tuple(parts["phrases"]),
        excluded=tuple(parts["excluded"]),
        authors=tuple(parts["authors"]),
        categories=tuple(parts["categories"]),
        raw=cleaned,
    )


# --- searching ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextHit:
    pk: int
    score: float  # higher is better; comparable only within one result list


def text_search(conn: Connection, query: Query, filters: Filters, limit: int) -> list[TextHit]:
    """Papers matching the query's text under the filters, best first ([] when there is no text)."""
    if query.empty or limit <= 0:
        return []
    if conn.dialect.name == "sqlite":
        return _search_sqlite(conn, query, filters, limit)
    return _search_postgresql(conn, query, filters, limit)


# SQLite: FTS5 --------------------------------------------------------------------------------------


def _fts_string(words: str) -> str:
    """A double-quoted FTS5 string: always a plain phrase, never syntax."""
    return '"' + words.replace('"', '""') + '"'


# Words too common to select anything (PostgreSQL's english configuration drops the same kind).
# Matching them would make FTS5 score nearly every paper; leaving them out keeps queries fast and
# does not change what ranks first.
STOP_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers him his how i if in into is it its itself just me more most my no nor not of off
on once only or other our ours out over own same she should so some such than that the their theirs them
then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours
""".split())


def fts5_expression(query: Query) -> str:
    """The FTS5 MATCH expression: (any term) AND each phrase AND each author, NOT any exclusion."""
    required = []
    terms = [t for t in query.terms if t not in STOP_WORDS] or list(query.terms)
    if terms:
        required.append("(" + " OR ".join(_fts_string(t) for t in terms) + ")")
    required += [_fts_string(p) for p in query.phrases]
    required += [f"authors : {_fts_string(a)}" for a in query.authors]
    expression = "(" + " AND ".join(required) + ")"
    if query.excluded:
        expression += " NOT (" + " OR ".join(_fts_string(e) for e in query.excluded) + ")"
    return expression


def _search_sqlite(conn: Connection, query: Query, filters: Filters, limit: int) -> list[TextHit]:
    fts = literal_column("papers_fts")
    # bm25() is lower-is-better; negated so that higher is better everywhere.
    score = -func.bm25(fts, TITLE_WEIGHT, SUMMARY_WEIGHT, AUTHORS_WEIGHT)
    statement = (
        select(papers.c.pk, score.label("score"))
        .select_from(papers.join(text("papers_fts"), literal_column("papers_fts.rowid") == papers.c.pk))
        .where(text("papers_fts MATCH :fts_query").bindparams(fts_query=fts5_expression(query)),
               *filters.conditions())
        .order_by(literal_column("score").desc(), papers.c.pk)
        .limit(limit)
    )
    return [TextHit(pk, float(s)) for pk, s in conn.execute(statement)]


# PostgreSQL: tsvector / tsquery -------------------------------------------------------------------


def _tsquery(function: str, words: str) -> ColumnElement:
    return getattr(func, function)(literal_column(_PG_CONFIG), words)


def _not(tsquery: ColumnElement) -> ColumnElement:
    return UnaryExpression(tsquery, operator=operators.custom_op("!!"))


def _pg_idf(conn: Connection, terms: tuple[str, ...]) -> dict[str, float]:
    """Each free word's inverse document frequency; words the english configuration drops are left out.

    Document frequencies come from the planner's statistics on ``search_vector`` (ANALYZE keeps the
    fraction of rows holding each of its most common lexemes): no scan, one small query. A lexeme
    missing from that list is rarer than all of them. Without statistics (a database never
    analyzed) every word weighs 1.
    """
    lexemes = dict(conn.execute(
        text(f"SELECT t, tsvector_to_array(to_tsvector({_PG_CONFIG}, t)) "
             "FROM unnest(CAST(:terms AS text[])) AS t"),
        {"terms": list(terms)}).all())
    if not any(lexemes.values()):
        return {}
    stats = conn.execute(text(
        "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
        "WHERE schemaname = current_schema() AND tablename = 'papers' AND attname = 'search_vector'"
    )).first()
    if not stats or not stats[0] or not stats[1]:
        return {t: 1.0 for t in terms if lexemes.get(t)}
    elements, frequencies = stats
    frequency = dict(zip(elements, frequencies))  # the 3 extra frequencies (min, max, nulls) fall off
    unlisted = min(frequencies[: len(elements)]) / 2
    idf = {}
    for term in terms:
        if found := lexemes.get(term):
            f = min(max(max(frequency.get(lexeme, unlisted) for lexeme in found), _MIN_FREQUENCY), 1.0)
            idf[term] = math.log(1 + (1 - f) / f) + _IDF_FLOOR
    return idf


def _search_postgresql(conn: Connection, query: Query, filters: Filters, limit: int) -> list[TextHit]:
    vector = literal_column("papers.search_vector")
    idf = _pg_idf(conn, query.terms) if query.terms else {}
    terms = [t for t in query.terms if t in idf]  # stop words ("the") have no lexeme: left out
    required = [_tsquery("phraseto_tsquery", p) for p in (*query.phrases, *query.authors)]
    if not terms and not required:
        return []
    # The match: (any term) && every phrase and author && !! every exclusion. A phrase made of stop
    # words only is an empty tsquery, which && and !! ignore.
    term_queries = {t: _tsquery("plainto_tsquery", t) for t in terms}
    parts = []
    if terms:
        parts.append(reduce(lambda a, b: a.op("||")(b), term_queries.values()))
    parts += required
    parts += [_not(_tsquery("phraseto_tsquery", e)) for e in query.excluded]
    tsq = reduce(lambda a, b: a.op("&&")(b), parts)
    # Authors must match in the author names: the C-labelled part of the vector.
    author_names = func.ts_filter(vector, literal_column("'{c}'::\"char\"[]"))
    author_conditions = [author_names.op("@@")(_tsquery("phraseto_tsquery", a)) for a in query.authors]
    # BM25-like: each word's weighted, length-normalized ts_rank times its idf; phrases and
    # authors count once each. The vector is decompressed once per row (a LATERAL that the planner
    # may not flatten: OFFSET), not once per ts_rank call: measured 2x faster.
    row = select(vector.op("||")(literal_column("''::tsvector")).label("v")).offset(0).lateral("row_vector")

    def rank(q: ColumnElement) -> ColumnElement:
        return func.ts_rank(literal_column(_PG_WEIGHTS), row.c.v, q, _PG_NORMALIZATION)

    score = sum((idf[t] * rank(q) for t, q in term_queries.items()), start=literal_column("0.0"))
    for q in required:
        score = score + rank(q)
    statement = (
        select(papers.c.pk, score.label("score"))
        .select_from(papers.join(row, literal_column("true")))
        .where(vector.op("@@")(tsq), *author_conditions, *filters.conditions())
        .order_by(literal_column("score").desc(), papers.c.pk)
        .limit(limit)
    )
    return [TextHit(pk, float(s)) for pk, s in conn.execute(statement)]


# --- highlighting -------------------------------------------------------------------------------

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


def _spans(text: str, query: Query) -> list[tuple[int, int]]:
    """Character spans of the text to mark, sorted and merged."""
    words = [(m.start(), m.end(), _fold(m.group())) for m in _WORD_RUN.finditer(text)]  # (start, end, folded)
    spans = []
    singles = {_fold(t) for t in query.terms if t not in _STOP_WORDS}
    for s, e, w in words:
        if any(_word_matches(w, t) for t in singles):
            spans.append((s, e))
    for phrase in (*query.phrases, *query.authors):
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
    spans = _spans(text, query)
    start, end = 0, len(text)
    if max_chars is not None and max_chars > 0 and len(text) > max_chars:
        start, end = _window(text, spans, max_chars)
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
    out = [Markup("…") if start > 0 else Markup("")]
    at = start
    for s, e in spans:
        s, e = max(s, start), min(e, end)
        if s >= e:
            continue
        out.append(escape(text[at:s]))
        out.append(Markup("<mark>") + escape(text[s:e]) + Markup("</mark>"))
        at = e
    out.append(escape(text[at:end]))
    if end < len(text):
        out.append(Markup("…"))
    return Markup("").join(out)
