"""Validate records from any source and upsert them in batches, one transaction per batch.

Idempotent: the same input twice changes nothing. A newer version updates the paper in place and
keeps the older title and summary in its version history; an older version never overwrites a newer
one. A paper's feed day, once set, never moves. A bad record is reported with its position, field
and reason, and never stops or half-writes the good records around it.

Reading, validating and mapping records to rows is prepare.py's half; this module writes them,
reading ahead in a thread or, for a source that a child process can open itself, in that child.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from dailypapers import prepare
from dailypapers.domain import Sourced
from dailypapers.prepare import Prepared, Rejection
from dailypapers.search import fulltext
from dailypapers.sources.common import SourceError
from dailypapers.store import backend
from dailypapers.store.bulk import insert_many
from dailypapers.store.schema import CONTENT_COLUMNS, organizations, paper_embeddings, papers, users

__all__ = ["IngestReport", "Rejection", "ingest", "merge"]

KEEP_FIRST = {"submitted_on_daily_at", "submitted_by_pk"}  # a paper stays on the feed day it was put on
TEXT_COLUMNS = ("title", "summary", "authors")  # what the full-text index holds

# Above every text_seq committed before: the full-text index picks up what carries it.
_next_text_seq = select(func.coalesce(func.max(papers.c.text_seq), 0) + 1).scalar_subquery()
_STORED = select(papers).where(backend.in_list(papers.c.id, "ids"))


@dataclass
class IngestReport:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    rejected: int = 0
    cleaned: int = 0  # of the stored ones: records whose control characters were removed
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
            f"{self.deleted:,} deleted, {self.rejected:,} rejected"
            + (f" ({self.cleaned:,} kept without their control characters)" if self.cleaned else "")
            + f" in {self.seconds:.1f} s ({self.rate:,.0f} papers/s)"
        )

    def as_dict(self) -> dict:
        keys = ("inserted", "updated", "unchanged", "deleted", "rejected", "cleaned")
        return {k: getattr(self, k) for k in keys} | {"seconds": round(self.seconds, 3)}


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


class _Batch:
    """One batch of prepared rows, written in one transaction."""

    def __init__(self, conn: Connection, run_started: datetime):
        self.conn = conn
        self.run_started = run_started

    def _pks(self, table, key: str, wanted: dict[str, dict]) -> dict[str, int]:  # noqa: ANN001
        if not wanted:
            return {}
        found = dict(self.conn.execute(select(table.c[key], table.c.pk).where(table.c[key].in_(wanted))).all())
        missing = [values for name, values in wanted.items() if name not in found]
        if missing:
            self.conn.execute(table.insert(), missing)
            found |= dict(self.conn.execute(select(table.c[key], table.c.pk).where(table.c[key].in_(wanted))).all())
        return found

    def write(self, items: list[Prepared]) -> tuple[Counter, list[Rejection]]:
        """Write the items; returns what happened to them and the ones refused as duplicates."""
        report: Counter = Counter()
        refused: list[Rejection] = []
        reject = refused.append
        # Writers take text_seq's next value one at a time, so they commit in its order: a full-text
        # catch-up that has seen seq n never misses a paper committed later with n or less.
        backend.lock_key(self.conn, "papers.text_seq")
        org_pk = self._pks(organizations, "name", {o["name"]: o for item in items if (o := item.organization)})
        user_pk = self._pks(users, "username", {u["username"]: u | {"created_at": self.run_started}
                                                for item in items if (u := item.submitted_by)})

        stored = {r["id"]: dict(r) for r in self.conn.execute(_STORED, {"ids": [item.id for item in items]}).mappings()}
        inserts, updates, hide, reembed = [], [], [], []
        first_seen: dict[str, str] = {}
        for where, paper_id, row, org, user, featured_on in items:
            if paper_id in first_seen:
                reject(Rejection(where, "id", f"{paper_id!r} appears again (first at {first_seen[paper_id]})"))
                continue
            first_seen[paper_id] = where
            old = stored.get(paper_id)
            if old is not None and old["changed_at"] == self.run_started:
                reject(Rejection(where, "id", f"{paper_id!r} appears again (earlier in this input)"))
                continue
            if row is None:  # a deletion
                if old is not None and not old["hidden"]:
                    hide.append(old["pk"])
                    report["deleted"] += 1
                else:
                    report["unchanged"] += 1
                continue
            # Filled in place: a retry of the batch record by record (see _write) sets the same values.
            row["organization_pk"] = org_pk[org["name"]] if org else None
            row["submitted_by_pk"] = user_pk[user["username"]] if user else None
            if old is None:
                row["upvotes"] = row["source_upvotes"] = row["upvotes"] or 0
                if row["submitted_on_daily_at"] is None:
                    row["submitted_on_daily_at"] = featured_on
                row |= {"hidden": False, "ingested_at": self.run_started, "changed_at": self.run_started}
                inserts.append(row)
                report["inserted"] += 1
                continue
            merged = merge(old, prepare.decoded(row))
            if merged is None:
                report["unchanged"] += 1
            else:
                updates.append(merged | {"changed_at": self.run_started})
                if merged["title"] != old["title"] or merged["summary"] != old["summary"]:
                    reembed.append(old["pk"])  # its embedding no longer describes it
                report["updated"] += 1
        if inserts:
            insert_many(self.conn, papers, inserts, serialized=prepare.JSON_COLUMNS, text_seq=_next_text_seq)
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


def _in_thread(records: Iterable[Sourced], *args: object) -> Iterator[prepare.Batch]:
    """Read, validate and prepare in a thread, one batch ahead; its exceptions surface here."""
    ahead: queue.Queue = queue.Queue(maxsize=1)
    threading.Thread(target=prepare.feed, args=(lambda: records, ahead, *args), daemon=True,
                     name="ingest-read-ahead").start()
    yield from _received(ahead.get)


def _in_child(open_records: Callable[[], Iterable[Sourced]], *args: object) -> Iterator[prepare.Batch]:
    """Read, validate and prepare in a child process, two batches ahead; its exceptions surface here."""
    context = multiprocessing.get_context("spawn")  # not fork: this process may hold threads and connections
    ahead = context.Queue(maxsize=2)
    child = context.Process(target=prepare.feed_in_child, args=(open_records, ahead, *args), daemon=True,
                            name="dailypapers-ingest-reader")
    child.start()

    def get() -> tuple:
        while True:
            try:
                return ahead.get(timeout=1)
            except queue.Empty:
                if not child.is_alive():  # killed, or out of memory: it will not say so itself
                    raise SourceError(f"the process reading the input stopped (exit code {child.exitcode})")

    try:
        yield from _received(get)
    finally:
        child.terminate()  # gone already, unless the writer stopped first
        child.join()
        ahead.close()


def _received(get: Callable[[], tuple]) -> Iterator[prepare.Batch]:
    while True:
        batch, error = get()
        if error is not None:
            raise error
        if batch is None:
            return
        yield batch


def ingest(
    engine: Engine,
    records: Iterable[Sourced] | Callable[[], Iterable[Sourced]],
    *,
    batch_size: int = 1000,
    feature_categories: list[str] | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_reject: Callable[[Rejection], None] | None = None,
    on_commit: Callable[[], None] | None = None,
    read_ahead: bool = False,
) -> IngestReport:
    """Ingest every record; returns counts. ``on_commit`` runs after each batch is durable.

    ``records`` are the source's records, or a function that opens the source and returns them.
    ``read_ahead`` reads, validates and prepares the next batches while this one is written: in a
    child process when ``records`` is such a function (it must be picklable, like
    ``functools.partial(read_snapshot, path)``; the child imports the caller's main module, so a
    script needs the ``if __name__ == "__main__":`` guard), else in a thread. Leave it off for
    sources that must know that everything they yielded is stored when ``on_commit`` runs (the
    OAI-PMH checkpoint).
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

    args = (batch_size, now, feature_categories or [])
    if read_ahead and callable(records):
        batches = _in_child(records, *args)
    elif read_ahead:
        batches = _in_thread(records, *args)
    else:
        batches = prepare.batches(records() if callable(records) else records, *args)
    with fulltext.following(engine) as indexing:
        for size, valid, refused, cleaned in batches:
            report.cleaned += cleaned
            for rejection in refused:
                reject(rejection)
            _write(engine, valid, report, reject, run_started)
            indexing.poke()
            if on_commit:
                on_commit()
            if on_progress:
                on_progress(size)
    if report.inserted or report.updated:
        backend.refresh_statistics(engine)
    report.seconds = time.perf_counter() - started
    return report


def _write(engine: Engine, valid: list[Prepared], report: IngestReport, reject: Callable[[Rejection], None],
           run_started: datetime) -> None:
    """Write a batch in one transaction; if the database refuses it, find the record it refuses."""
    try:
        with engine.begin() as conn:
            outcomes = [_Batch(conn, run_started).write(valid)]
    except DBAPIError:
        outcomes = []
        for item in valid:  # one transaction each, so only the refused record is lost
            try:
                with engine.begin() as conn:
                    outcomes.append(_Batch(conn, run_started).write([item]))
            except DBAPIError as err:
                reason = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
                reject(Rejection(item.where, "record", f"the database refused it: {reason}"))
    for counts, refused in outcomes:
        for name, n in counts.items():
            setattr(report, name, getattr(report, name) + n)
        for rejection in refused:
            reject(rejection)
