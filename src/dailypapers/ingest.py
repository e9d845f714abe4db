"""Validate records from any source and upsert them in batches, one transaction per batch.

Idempotent: the same input twice changes nothing. A newer version updates the paper in place and
keeps the older title and summary in its version history; an older version never overwrites a newer
one. A paper's feed day, once set, never moves. A bad record is reported with its position, field
and reason, and never stops or half-writes the good records around it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from dailypapers.domain import Deletion, Paper, RecordError, Sourced
from dailypapers.search import fulltext
from dailypapers.store import backend
from dailypapers.store.schema import CONTENT_COLUMNS, organizations, paper_embeddings, papers, users
from dailypapers.validate import validate

KEEP_FIRST = {"submitted_on_daily_at", "submitted_by_pk"}  # a paper stays on the feed day it was put on
TEXT_COLUMNS = ("title", "summary", "authors")  # what the full-text index holds

# Above every text_seq committed before: the full-text index picks up what carries it.
_next_text_seq = select(func.coalesce(func.max(papers.c.text_seq), 0) + 1).scalar_subquery()


@dataclass(frozen=True)
class Rejection:
    where: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field}: {self.reason}"


@dataclass
class IngestReport:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    rejected: int = 0
    seconds: float = 0.0
    rejections: list[Rejection] = field(default_factory=list)  # the first MAX_KEPT of them

    MAX_KEPT = 1000

    @property
    def processed(self) -> int:
        return self.inserted + self.updated + self.unchanged + self.deleted + self.rejected

    @property
    def rate(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (
            f"{self.inserted:,} inserted, {self.updated:,} updated, {self.unchanged:,} unchanged, "
            f"{self.deleted:,} deleted, {self.rejected:,} rejected "
            f"in {self.seconds:.1f} s ({self.rate:,.0f} papers/s)"
        )

    def as_dict(self) -> dict:
        keys = ("inserted", "updated", "unchanged", "deleted", "rejected")
        return {k: getattr(self, k) for k in keys} | {"seconds": round(self.seconds, 3)}


def paper_row(paper: Paper) -> dict:
    """The papers-table columns of a record (organization and submitter are resolved per batch)."""
    return {
        "id": paper.id,
        "title": paper.title,
        "summary": paper.summary,
        "authors": [{"name": a.name, "affiliations": list(a.affiliations)} for a in paper.authors],
        "num_authors": paper.author_count,
        "categories": " ".join(paper.categories),
        "published_at": paper.published_at,
        "updated_at": paper.updated_at,
        "versions": [
            {k: v for k, v in (
                ("version", ver.version),
                ("submitted_at", ver.submitted_at.isoformat() if ver.submitted_at else None),
                ("title", ver.title),
                ("summary", ver.summary),
            ) if v is not None}
            for ver in sorted(paper.versions, key=lambda ver: ver.version)
        ],
        "doi": paper.doi,
        "journal_ref": paper.journal_ref,
        "comments": paper.comments,
        "report_no": paper.report_no,
        "license": paper.license,
        "submitter": paper.submitter,
        "github_repo": paper.github_repo,
        "project_page": paper.project_page,
        "organization_pk": None,
        "upvotes": paper.upvotes,
        "submitted_on_daily_at": paper.submitted_on_daily_at,
        "submitted_by_pk": None,
        "source": paper.source,
    }


def _latest(versions: list[dict]) -> int:
    return max((v["version"] for v in versions), default=0)


def merge(stored: dict, incoming: dict) -> dict | None:
    """The row after applying an incoming record to a stored one; None when nothing changes."""
    if _latest(incoming["versions"]) < _latest(stored["versions"]):
        return None  # an older version of what we have
    merged = dict(stored)
    for name in CONTENT_COLUMNS:
        value = incoming[name]
        if value is None or value == "" or value == []:
            continue  # this source does not say
        if name in KEEP_FIRST and stored[name] is not None:
            continue
        if name == "num_authors" and not incoming["authors"] and stored["authors"]:
            continue  # a bare count never replaces known names
        merged[name] = value
    if incoming["versions"]:
        merged["versions"] = _merge_versions(stored, incoming)
    if merged["source"] != stored["source"] and stored["source"] != "sample":
        merged["source"] = stored["source"]  # the source that created the paper keeps its name
    votes = incoming["upvotes"]
    if votes is not None and votes != stored["source_upvotes"]:
        # The source's count moved: move the total by as much, keeping the local votes in it.
        merged["upvotes"] = stored["upvotes"] + votes - stored["source_upvotes"]
        merged["source_upvotes"] = votes
    elif all(merged[n] == stored[n] for n in CONTENT_COLUMNS):
        return None
    return merged


def _merge_versions(stored: dict, incoming: dict) -> list[dict]:
    by_number = {v["version"]: dict(v) for v in stored["versions"]}
    old_latest = _latest(stored["versions"])
    for v in incoming["versions"]:
        by_number.setdefault(v["version"], {}).update({k: x for k, x in v.items() if k not in ("title", "summary")})
    if _latest(incoming["versions"]) > old_latest and old_latest:
        # The replaced version keeps the title and summary it had.
        for name in ("title", "summary"):
            if stored[name] != incoming[name]:
                by_number[old_latest].setdefault(name, stored[name])
    return [by_number[n] for n in sorted(by_number)]


def _featured(row: dict, categories: list[str]) -> bool:
    cats = row["categories"].split()
    return any(c == rule or c.startswith(rule + ".") for c in cats for rule in categories)


class _Batch:
    """One batch of validated rows, written in one transaction."""

    def __init__(self, conn: Connection, run_started: datetime, feature_categories: list[str]):
        self.conn = conn
        self.run_started = run_started
        self.feature_categories = feature_categories

    def _pks(self, table, key: str, wanted: dict[str, dict]) -> dict[str, int]:  # noqa: ANN001
        if not wanted:
            return {}
        found = dict(self.conn.execute(select(table.c[key], table.c.pk).where(table.c[key].in_(wanted))).all())
        missing = [values for name, values in wanted.items() if name not in found]
        if missing:
            self.conn.execute(table.insert(), missing)
            found |= dict(self.conn.execute(select(table.c[key], table.c.pk).where(table.c[key].in_(wanted))).all())
        return found

    def write(self, items: list[tuple[str, Paper | Deletion]]) -> tuple[Counter, list[Rejection]]:
        """Write the items; returns what happened to them and the ones refused as duplicates."""
        report: Counter = Counter()
        refused: list[Rejection] = []
        reject = refused.append
        orgs = {p.organization.name: {"name": p.organization.name, "fullname": p.organization.fullname,
                                      "avatar": p.organization.avatar}
                for _, p in items if isinstance(p, Paper) and p.organization}
        people = {u.username: {"username": u.username, "fullname": u.fullname, "avatar_url": u.avatar_url,
                               "created_at": self.run_started}
                  for _, p in items if isinstance(p, Paper) and (u := p.submitted_on_daily_by)}
        org_pk = self._pks(organizations, "name", orgs)
        user_pk = self._pks(users, "username", people)

        ids = list({p.id for _, p in items})
        stored = {r["id"]: dict(r) for r in self.conn.execute(select(papers).where(papers.c.id.in_(ids))).mappings()}
        inserts, updates, hide, reembed = [], [], [], []
        first_seen: dict[str, str] = {}
        for where, item in items:
            if item.id in first_seen:
                reject(Rejection(where, "id", f"{item.id!r} appears again (first at {first_seen[item.id]})"))
                continue
            first_seen[item.id] = where
            old = stored.get(item.id)
            if old is not None and old["changed_at"] == self.run_started:
                reject(Rejection(where, "id", f"{item.id!r} appears again (earlier in this input)"))
                continue
            if isinstance(item, Deletion):
                if old is not None and not old["hidden"]:
                    hide.append(old["pk"])
                    report["deleted"] += 1
                else:
                    report["unchanged"] += 1
                continue
            row = paper_row(item)
            row["organization_pk"] = org_pk.get(item.organization.name) if item.organization else None
            user = item.submitted_on_daily_by
            row["submitted_by_pk"] = user_pk.get(user.username) if user else None
            if old is None:
                row["upvotes"] = row["source_upvotes"] = row["upvotes"] or 0
                if row["submitted_on_daily_at"] is None and self.feature_categories and row["published_at"]:
                    if _featured(row, self.feature_categories):
                        row["submitted_on_daily_at"] = row["published_at"].replace(hour=0, minute=0, second=0,
                                                                                    microsecond=0)
                inserts.append(row | {"hidden": False, "ingested_at": self.run_started,
                                      "changed_at": self.run_started})
                report["inserted"] += 1
                continue
            merged = merge(old, row)
            if merged is None:
                report["unchanged"] += 1
            else:
                updates.append(merged | {"changed_at": self.run_started})
                if merged["title"] != old["title"] or merged["summary"] != old["summary"]:
                    reembed.append(old["pk"])  # its embedding no longer describes it
                report["updated"] += 1
        if inserts:
            self.conn.execute(papers.insert().values(text_seq=_next_text_seq), inserts)
        for row in updates:
            values = {n: row[n] for n in CONTENT_COLUMNS} | {"changed_at": row["changed_at"]}
            if any(row[n] != stored[row["id"]][n] for n in TEXT_COLUMNS):
                values["text_seq"] = _next_text_seq
            if row["source_upvotes"] != stored[row["id"]]["source_upvotes"]:
                # An increment, not a copy: a vote cast while this batch ran is not lost.
                delta = row["source_upvotes"] - stored[row["id"]]["source_upvotes"]
                values |= {"upvotes": papers.c.upvotes + delta, "source_upvotes": row["source_upvotes"]}
            self.conn.execute(update(papers).where(papers.c.pk == row["pk"]).values(values))
        if reembed:
            self.conn.execute(paper_embeddings.delete().where(paper_embeddings.c.paper_pk.in_(reembed)))
        if hide:
            self.conn.execute(update(papers).where(papers.c.pk.in_(hide)).values(hidden=True))
        return report, refused


def _chunks(iterable: Iterable, size: int) -> Iterator[list]:
    it = iter(iterable)
    while chunk := list(islice(it, size)):
        yield chunk


def _validated(records: Iterable[Sourced], size: int, now: datetime) -> Iterator[tuple[int, list, list]]:
    """Batches of (records read, valid records, rejections)."""
    for chunk in _chunks(records, size):
        valid, refused = [], []
        for where, item in chunk:
            if isinstance(item, RecordError):
                refused.append(Rejection(where, item.field, item.reason))
                continue
            if isinstance(item, Paper):
                try:
                    validate(item, now)
                except RecordError as err:
                    refused.append(Rejection(where, err.field, err.reason))
                    continue
            valid.append((where, item))
        yield len(chunk), valid, refused


def _read_ahead(batches: Iterator) -> Iterator:
    """Run the batch generator one batch ahead in a thread; its exceptions surface here."""
    ahead: queue.Queue = queue.Queue(maxsize=1)
    done = object()

    def produce() -> None:
        try:
            for batch in batches:
                ahead.put((batch, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            ahead.put((None, exc))
        ahead.put((done, None))

    threading.Thread(target=produce, daemon=True, name="ingest-read-ahead").start()
    while True:
        batch, error = ahead.get()
        if error is not None:
            raise error
        if batch is done:
            return
        yield batch


def ingest(
    engine: Engine,
    records: Iterable[Sourced],
    *,
    batch_size: int = 1000,
    feature_categories: list[str] | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_reject: Callable[[Rejection], None] | None = None,
    on_commit: Callable[[], None] | None = None,
    read_ahead: bool = False,
) -> IngestReport:
    """Ingest every record; returns counts. ``on_commit`` runs after each batch is durable.

    ``read_ahead`` parses and validates the next batch in a thread while this one is written
    (SQLite and psycopg release the GIL while they work). Leave it off for sources that must know
    that everything they yielded is stored when ``on_commit`` runs (the OAI-PMH checkpoint).
    """
    report = IngestReport()
    started = time.perf_counter()
    # Rows this run writes carry its start time, so a second record with their id is a duplicate.
    run_started = now = datetime.utcnow()

    def reject(rejection: Rejection) -> None:
        report.rejected += 1
        if len(report.rejections) < report.MAX_KEPT:
            report.rejections.append(rejection)
        if on_reject:
            on_reject(rejection)

    batches = _validated(records, batch_size, now)
    with fulltext.following(engine) as indexing:
        for size, valid, refused in _read_ahead(batches) if read_ahead else batches:
            for rejection in refused:
                reject(rejection)
            _write(engine, valid, report, reject, run_started, feature_categories or [])
            indexing.poke()
            if on_commit:
                on_commit()
            if on_progress:
                on_progress(size)
    if report.inserted or report.updated:
        backend.refresh_statistics(engine)
    report.seconds = time.perf_counter() - started
    return report


def _write(engine: Engine, valid: list, report: IngestReport, reject: Callable[[Rejection], None],
           run_started: datetime, feature_categories: list[str]) -> None:
    """Write a batch in one transaction; if the database refuses it, find the record it refuses."""
    try:
        with engine.begin() as conn:
            outcomes = [_Batch(conn, run_started, feature_categories).write(valid)]
    except DBAPIError:
        outcomes = []
        for where, item in valid:  # one transaction each, so only the refused record is lost
            try:
                with engine.begin() as conn:
                    outcomes.append(_Batch(conn, run_started, feature_categories).write([(where, item)]))
            except DBAPIError as err:
                reason = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
                reject(Rejection(where, "record", f"the database refused it: {reason}"))
    for counts, refused in outcomes:
        for name, n in counts.items():
            setattr(report, name, getattr(report, name) + n)
        for rejection in refused:
            reject(rejection)
