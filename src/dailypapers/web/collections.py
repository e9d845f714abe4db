"""Collections on the site: a reader's list of them, a page per collection (its owner edits it there),
RSS/Atom of public ones, BibTeX, RIS and CSL-JSON exports, and BibTeX or RIS imports. Thin over
dailypapers.collections; a private collection is a 404 to everyone but its owner.

The upload forms check the request's size before anything reads the body (the CSRF check reads
the form), so a huge file is a 400 at once.
"""

from __future__ import annotations

import json
import re
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import UploadFile as StarletteUpload  # what forms hold (FastAPI's is a subclass)

from dailypapers import collections as core
from dailypapers import community, jobs, throttle
from dailypapers.bibtex import bibtex
from dailypapers.collections import importing
from dailypapers.collections.references import MAX_BYTES, csl_json, ris
from dailypapers.store import queries
from dailypapers.store.schema import collections as lists
from dailypapers.web import actions, feeds
from dailypapers.web.deps import TEMPLATES, Csrf, Db, SignedIn, User, render
from dailypapers.web.inputs import NoNul
from dailypapers.web.pages import decorate

router = APIRouter()
CollectionPk = Annotated[int, Path(ge=1, le=2**31 - 1)]
FETCH_AT_ONCE = 100  # arXiv ids one "fetch" request takes (the submission throttle stops it sooner)
EXPORTS = {"bib": ("application/x-bibtex", lambda rows: bibtex(rows)),
           "ris": ("application/x-research-info-systems", lambda rows: ris(rows)),
           "json": ("application/vnd.citationstyles.csl+json",
                    lambda rows: json.dumps(csl_json(rows), ensure_ascii=False, indent=1))}


async def _small_body(request: Request) -> None:
    """An import is at most MAX_BYTES (a little more with the form around it): refused before reading."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BYTES + 64 * 1024:
        raise HTTPException(400, f"The file has more than {MAX_BYTES // 2**20} MB; an import takes at most "
                                 f"{MAX_BYTES // 2**20} MB.")


Post = [Csrf, NoNul]
Upload = [Depends(_small_body), Csrf, NoNul]


def _call(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    try:
        return fn(*args, **kwargs)
    except community.NotFound as exc:
        raise HTTPException(404, exc.message) from None
    except community.Forbidden as exc:
        raise HTTPException(403, exc.message) from None
    except community.CommunityError as exc:
        raise HTTPException(400, exc.message) from None


def _reader_collections(request: Request) -> dict:
    """For the "add to collection" control of every card: the signed-in reader's own collections
    (besides Saved, which the Save button toggles), on the user dict the cards are given."""
    user = getattr(request.state, "user", None)
    if user is not None and "collections" not in user:
        query = (select(lists.c.pk, lists.c.name).where(lists.c.user_pk == user["pk"], ~lists.c.is_default)
                 .order_by(lists.c.name))
        try:
            with request.app.state.engine.connect() as conn:
                user["collections"] = [dict(r) for r in conn.execute(query).mappings()]
        except SQLAlchemyError:  # an error page while the database is away: shown without the control
            user["collections"] = []
    return {}


TEMPLATES.context_processors.append(_reader_collections)


def _file(upload: UploadFile | None) -> bytes:
    if not isinstance(upload, StarletteUpload) or not upload.filename:
        raise HTTPException(400, "Choose a BibTeX (.bib) or RIS (.ris) file to import.")
    if upload.size is not None and upload.size > MAX_BYTES:
        raise HTTPException(400, f"The file has {upload.size / 2**20:.1f} MB; an import takes at most "
                                 f"{MAX_BYTES // 2**20} MB.")
    return upload.file.read(MAX_BYTES + 1)


def _filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:60] or "collection"


# --- a reader's collections ---------------------------------------------------------------------


@router.get("/collections", dependencies=[NoNul])
def mine(request: Request, engine: Db, user: SignedIn) -> Response:
    return render(request, "collections.html", {"collections": core.of_reader(engine, user["pk"])})


@router.post("/collections", dependencies=Post)
def create(engine: Db, user: SignedIn, name: str = Form(""), description: str = Form(""),
           public: str = Form("")) -> Response:
    pk = _call(core.create, engine, user["pk"], name, description, public == "1")
    return RedirectResponse(f"/collections/{pk}", status_code=303)


@router.post("/collections/import", dependencies=Upload)
def create_from_file(request: Request, engine: Db, user: SignedIn, name: str = Form(""),
                     file: UploadFile | None = File(None)) -> Response:
    report = _call(importing.import_as_new, engine, user["pk"], name, _file(file))
    return _report(request, engine, user, report)


@router.get("/collections/saved", dependencies=[NoNul])
def saved(engine: Db, user: SignedIn) -> Response:
    return RedirectResponse(f"/collections/{core.ensure_default(engine, user['pk'])}", status_code=303)


@router.post("/collections/add", dependencies=Post)
def add(request: Request, engine: Db, user: SignedIn, collection: str = Form(""), paper: str = Form("")) -> Response:
    if not (collection.isascii() and collection.isdigit() and len(collection) < 10):
        raise HTTPException(400, "collection: choose one of your collections.")
    added = _call(core.add_paper, engine, user["pk"], int(collection), paper)
    if actions.wants_json(request):
        return JSONResponse({"added": added})
    return actions.back(request, f"/collections/{collection}")


# --- one collection -----------------------------------------------------------------------------


def _page(request: Request, engine, user: dict | None, pk: int, **context) -> Response:  # noqa: ANN001, ANN003
    viewer = user["pk"] if user else None
    row = _call(core.get, engine, pk, viewer)
    rows = decorate(engine, user, core.papers_of(engine, pk, viewer))
    return render(request, "collection.html", {"collection": row, "papers": rows,
                                               "owner": row["user_pk"] == viewer, **context})


@router.get("/collections/{pk}", dependencies=[NoNul])
def page(request: Request, pk: CollectionPk, engine: Db, user: User) -> Response:
    return _page(request, engine, user, pk)


@router.post("/collections/{pk}/edit", dependencies=Post)
def edit(pk: CollectionPk, engine: Db, user: SignedIn, name: str | None = Form(None),
         description: str | None = Form(None), public: str | None = Form(None)) -> Response:
    _call(core.update_collection, engine, user["pk"], pk, name=name, description=description,
          is_public=None if public is None else public == "1")
    return RedirectResponse(f"/collections/{pk}", status_code=303)


@router.post("/collections/{pk}/delete", dependencies=Post)
def delete(pk: CollectionPk, engine: Db, user: SignedIn) -> Response:
    _call(core.delete_collection, engine, user["pk"], pk)
    return RedirectResponse("/collections", status_code=303)


@router.post("/collections/{pk}/remove", dependencies=Post)
def remove(pk: CollectionPk, engine: Db, user: SignedIn, paper: str = Form("")) -> Response:
    _call(core.remove_paper, engine, user["pk"], pk, paper)
    return RedirectResponse(f"/collections/{pk}", status_code=303)


@router.post("/collections/{pk}/note", dependencies=Post)
def note(pk: CollectionPk, engine: Db, user: SignedIn, paper: str = Form(""), note: str = Form("")) -> Response:
    _call(core.set_note, engine, user["pk"], pk, paper, note)
    return RedirectResponse(f"/collections/{pk}#paper-{paper}", status_code=303)


@router.post("/collections/{pk}/move", dependencies=Post)
def move(pk: CollectionPk, engine: Db, user: SignedIn, paper: str = Form(""), to: str = Form("")) -> Response:
    """``to``: a position (1 = first), or up / down from where the paper is."""
    if to in ("up", "down"):
        order = [r["id"] for r in _call(core.papers_of, engine, pk, user["pk"])]
        if paper not in order:
            raise HTTPException(404, f"{paper[:80]!r} is not in this collection.")
        position = order.index(paper) + (0 if to == "up" else 2)
    elif to.isascii() and to.isdigit() and len(to) < 10:
        position = int(to)
    else:
        raise HTTPException(400, f"to: up, down or a position from 1, not {to[:40]!r}")
    _call(core.move_paper, engine, user["pk"], pk, paper, position)
    return RedirectResponse(f"/collections/{pk}#paper-{paper}", status_code=303)


# --- import, and fetching from arXiv what the site lacks ----------------------------------------


def _report(request: Request, engine, user: dict, report: importing.ImportReport) -> Response:  # noqa: ANN001
    row = _call(core.get, engine, report.collection_pk, user["pk"])
    return render(request, "collection_import.html", {"collection": row, "report": report})


@router.post("/collections/{pk}/import", dependencies=Upload)
def import_file(request: Request, pk: CollectionPk, engine: Db, user: SignedIn,
                file: UploadFile | None = File(None)) -> Response:
    _call(core.get, engine, pk, user["pk"])  # a 404 for another's private collection before the file
    report = _call(importing.import_file, engine, user["pk"], pk, _file(file))
    return _report(request, engine, user, report)


@router.post("/collections/{pk}/fetch", dependencies=Post)
def fetch(request: Request, pk: CollectionPk, engine: Db, user: SignedIn,
          arxiv: list[str] = Form([])) -> Response:
    """Submit the arXiv ids an import did not find, as /submit does (its throttle, its turns at
    arXiv), and add each paper to the collection."""
    row = _call(core.owned, engine, user["pk"], pk)
    if not arxiv:
        raise HTTPException(400, "arxiv: no arXiv id to fetch.")
    if len(arxiv) > FETCH_AT_ONCE:
        raise HTTPException(400, f"arxiv: at most {FETCH_AT_ONCE} ids at once, not {len(arxiv):,}.")
    settings = request.app.state.settings
    fetched, failed, left, wait = [], [], [], None
    if not actions._submitting.acquire(blocking=False):
        raise HTTPException(503, "Other submissions are being fetched from arXiv right now; try again in a minute.")
    try:
        for i, paper in enumerate(arxiv):
            try:
                throttle.hit(engine, f"submit:user:{user['pk']}", *actions.SUBMIT_LIMITS)
            except throttle.Throttled as exc:
                left, wait = arxiv[i:], exc.retry_after
                break
            try:
                done = community.submit_paper(
                    engine, paper, user["pk"], fetch=actions._arxiv(engine, settings),
                    after_ingest=partial(jobs.after_ingest, engine, settings, defer=True))
                _call(core.add_paper, engine, user["pk"], pk, done.paper_id)
                fetched.append(done.paper_id)
            except community.SubmissionError as exc:
                failed.append((paper, exc.message))
    finally:
        actions._submitting.release()
    return render(request, "collection_fetch.html", {
        "collection": row, "fetched": fetched, "failed": failed,
        "left": left, "wait": wait})


# --- feeds and exports --------------------------------------------------------------------------


# One route per format (each with a single path parameter, the collection).


def _feed(request: Request, engine, pk: int, kind: str) -> Response:  # noqa: ANN001
    """A public collection's papers, for feed readers (who sign in nowhere: private ones are 404)."""
    row = _call(core.get, engine, pk, None)
    rows = core.papers_of(engine, pk, None)
    return feeds._feed(request, f"{row['name']} — a collection by {row['owner']}", f"/collections/{pk}",
                       rows[:500], kind)


@router.get("/collections/{pk}/feed.rss", dependencies=[NoNul], responses=feeds.FEED)
def feed_rss(request: Request, pk: CollectionPk, engine: Db) -> Response:
    return _feed(request, engine, pk, "rss")


@router.get("/collections/{pk}/feed.atom", dependencies=[NoNul], responses=feeds.FEED)
def feed_atom(request: Request, pk: CollectionPk, engine: Db) -> Response:
    return _feed(request, engine, pk, "atom")


def _export(engine, user: dict | None, pk: int, fmt: str) -> Response:  # noqa: ANN001
    viewer = user["pk"] if user else None
    row = _call(core.get, engine, pk, viewer)
    media, write = EXPORTS[fmt]
    return Response(write(core.papers_of(engine, pk, viewer)), media_type=media, headers={
        "Content-Disposition": f'attachment; filename="{_filename(row["name"])}.{fmt}"'})


@router.get("/collections/{pk}/export.bib", dependencies=[NoNul])
def export_bib(pk: CollectionPk, engine: Db, user: User) -> Response:
    return _export(engine, user, pk, "bib")


@router.get("/collections/{pk}/export.ris", dependencies=[NoNul])
def export_ris(pk: CollectionPk, engine: Db, user: User) -> Response:
    return _export(engine, user, pk, "ris")


@router.get("/collections/{pk}/export.json", dependencies=[NoNul], summary="CSL-JSON")
def export_csl(pk: CollectionPk, engine: Db, user: User) -> Response:
    return _export(engine, user, pk, "json")


@router.get("/papers/{paper_id:path}.ris", dependencies=[NoNul])
def paper_ris(paper_id: str, engine: Db) -> Response:
    return _paper_export(engine, paper_id, "ris")


@router.get("/papers/{paper_id:path}.json", dependencies=[NoNul])
def paper_csl(paper_id: str, engine: Db) -> Response:
    return _paper_export(engine, paper_id, "json")


def _paper_export(engine, paper_id: str, fmt: str) -> Response:  # noqa: ANN001
    row = queries.paper(engine, paper_id)
    if row is None:
        raise HTTPException(404, f"There is no paper {paper_id[:80]!r} here.")
    media, write = EXPORTS[fmt]
    return Response(write([row]), media_type=media)
