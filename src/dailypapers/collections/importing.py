"""Import a BibTeX or RIS file into a collection: each entry matched to a paper of the site by its
arXiv id, then its DOI, then (for entries without an arXiv id) its normalized title; all of it one
transaction (a bad file, or one that would overfill the collection, changes nothing).

Titles are looked up through the full-text index (the few best hits for the title's words), then
compared normalized (references.normalize_title): no scan of the papers table per entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from dailypapers.collections import _owned, create_in, insert_papers
from dailypapers.collections.references import Reference, normalize_title, read_references
from dailypapers.community import CommunityError, _now
from dailypapers.search.filters import Filters
from dailypapers.search.query import parse_query
from dailypapers.search.text import text_search
from dailypapers.store.backend import in_list
from dailypapers.store.schema import collection_items as items, papers

TITLE_CANDIDATES = 10  # full-text hits compared with an entry's title
_visible = papers.c.hidden.is_(False)
_BY_ID = select(papers.c.pk, papers.c.id, papers.c.title).where(_visible, in_list(papers.c.id, "ids"))
_BY_DOI = (select(papers.c.pk, papers.c.id, papers.c.title, func.lower(papers.c.doi).label("doi"))
           .where(_visible, in_list(func.lower(papers.c.doi), "dois")))
_BY_PK = select(papers.c.pk, papers.c.id, papers.c.title).where(_visible, in_list(papers.c.pk, "pks"))


@dataclass(frozen=True)
class Found:
    reference: Reference
    paper_id: str
    paper_title: str


@dataclass
class ImportReport:
    collection_pk: int
    kind: str  # "BibTeX" or "RIS"
    added: list[Found] = field(default_factory=list)
    already: list[Found] = field(default_factory=list)  # in the collection before, or twice in the file
    not_found: list[Reference] = field(default_factory=list)

    @property
    def fetchable(self) -> list[Reference]:
        """Entries not on the site that arXiv may have."""
        return [ref for ref in self.not_found if ref.arxiv_id]


def _by_title(conn: Connection, refs: list[Reference]) -> dict[int, tuple]:
    """Entry number -> (pk, id, title) of the paper whose normalized title is the entry's."""
    found = {}
    for ref in refs:
        wanted = normalize_title(ref.title)
        if not wanted:
            continue
        hits = text_search(conn, parse_query(wanted), Filters(), TITLE_CANDIDATES)
        if not hits:
            continue
        for row in conn.execute(_BY_PK, {"pks": [hit.pk for hit in hits]}):
            if normalize_title(row.title) == wanted:
                found[ref.number] = tuple(row)
                break
    return found


def match(conn: Connection, refs: list[Reference]) -> dict[int, tuple]:
    """Entry number -> (pk, id, title) of its paper on the site, for the entries found."""
    found: dict[int, tuple] = {}
    ids = list({ref.arxiv_id for ref in refs if ref.arxiv_id})
    by_id = {row.id: tuple(row) for row in conn.execute(_BY_ID, {"ids": ids})} if ids else {}
    found |= {ref.number: by_id[ref.arxiv_id] for ref in refs if ref.arxiv_id in by_id}
    dois = list({ref.doi for ref in refs if ref.doi and ref.number not in found})
    by_doi = {row.doi: tuple(row)[:3] for row in conn.execute(_BY_DOI, {"dois": dois})} if dois else {}
    found |= {ref.number: by_doi[ref.doi] for ref in refs if ref.number not in found and ref.doi in by_doi}
    # An entry with an arXiv id the site lacks is not looked for by title: the site's papers from
    # arXiv are stored under their id (the rest are fetchable), and title lookups are the slow part.
    return found | _by_title(conn, [ref for ref in refs if ref.number not in found and ref.title
                                    and not ref.arxiv_id])


def _fill(conn: Connection, row: dict, kind: str, refs: list[Reference], now: datetime) -> ImportReport:
    report = ImportReport(row["pk"], kind)
    found = match(conn, refs)
    there = set(conn.execute(select(items.c.paper_pk).where(items.c.collection_pk == row["pk"])).scalars())
    new = []
    for ref in refs:
        if ref.number not in found:
            report.not_found.append(ref)
            continue
        pk, paper_id, title = found[ref.number]
        (report.already if pk in there else report.added).append(Found(ref, paper_id, title))
        if pk not in there:
            there.add(pk)
            new.append(pk)
    insert_papers(conn, row, new, now)  # checks the collection's size; signals_changed when any
    return report


def import_file(engine: Engine, user_pk: int, collection_pk: int, data: bytes, *,
                now: datetime | None = None) -> ImportReport:
    """Add the papers a reference file names to one of the reader's collections (after its papers)."""
    kind, refs = read_references(data)
    try:
        with engine.begin() as conn:
            return _fill(conn, _owned(conn, user_pk, collection_pk), kind, refs, _now(now))
    except IntegrityError:  # a paper added by a concurrent request: nothing of this import was kept
        raise CommunityError("The collection changed during the import; nothing was imported, try again.") from None


def import_as_new(engine: Engine, user_pk: int, name: str, data: bytes, *, description: str = "",
                  is_public: bool = False, now: datetime | None = None) -> ImportReport:
    """A new collection holding the papers a reference file names, in the file's order."""
    kind, refs = read_references(data)
    now = _now(now)
    try:
        with engine.begin() as conn:
            pk = create_in(conn, user_pk, name, description, is_public, now)
            return _fill(conn, _owned(conn, user_pk, pk), kind, refs, now)
    except IntegrityError:  # the same name made by a concurrent request
        raise CommunityError(f"You already have a collection named {name.strip()!r}.", field="name") from None
