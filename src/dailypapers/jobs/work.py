"""The unattended work, as plain functions of (engine, settings): no HTTP, no queue.

queue.py runs them through procrastinate on PostgreSQL, inprocess.py in a thread of `serve` on
SQLite; the CLI calls them directly. ``after_ingest`` is what follows every ingest (the CLI, a
submission, a harvest): the search indexes brought up to date, then the new papers embedded, at
once or by a job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache

from sqlalchemy.engine import Engine

from dailypapers.config import Settings
from dailypapers.store.backend import is_postgresql

log = logging.getLogger("dailypapers.jobs")


def uses_queue(engine: Engine) -> bool:
    """PostgreSQL runs the jobs on procrastinate's queue; SQLite runs them in `serve`'s process."""
    return is_postgresql(engine)


@lru_cache(maxsize=4)
def _load(model: str | None, runtime: str, device: str, cache_dir: str):  # noqa: ANN202
    from dailypapers.search.embedder import load_embedder

    return load_embedder(model, runtime, device, cache_dir=cache_dir)


def embedder_for(settings: Settings):  # noqa: ANN201
    """The configured embedder, loaded once per process; None when embedding is off."""
    if settings.embedding_runtime == "off":
        return None
    return _load(settings.embedding_model, settings.embedding_runtime, settings.embedding_device,
                 str(settings.data_dir / "models"))


def upkeep(engine: Engine) -> int:
    """The search indexes brought up to date with the tables (search.backends.upkeep)."""
    from dailypapers.search.backends import upkeep as bring_up_to_date

    return bring_up_to_date(engine)


def embed_new(engine: Engine, settings: Settings, *, only: list[int] | None = None, embedder=None,  # noqa: ANN001
              on_progress: Callable[[int], None] | None = None) -> int:
    """Embed the papers that have no current embedding (or those of ``only``), then upkeep;
    returns how many were embedded. Committed batch by batch: a killed run loses one batch at most."""
    from dailypapers.search.vectors import embed_backlog

    embedder = embedder or embedder_for(settings)
    if embedder is None:
        return 0
    written = embed_backlog(engine, embedder, batch_size=settings.embed_batch_size, only=only,
                            on_progress=on_progress)
    if written:
        log.info("embedded %d papers with %s", written, embedder.name)
        upkeep(engine)
    return written


def after_ingest(engine: Engine, settings: Settings, pks: list[int] | None = None, *, defer: bool = False,
                 embedder=None, on_progress: Callable[[int], None] | None = None) -> int:  # noqa: ANN001
    """What follows an ingest: upkeep, then the new papers (``pks``, else every one not embedded)
    embedded here (returns how many) or, with ``defer``, by the next embedding job (returns 0)."""
    upkeep(engine)
    if defer:
        defer_embedding(engine, settings)
        return 0
    return embed_new(engine, settings, only=pks, embedder=embedder, on_progress=on_progress)


def defer_embedding(engine: Engine, settings: Settings) -> None:
    """Have the new papers embedded soon: a job on PostgreSQL, a wake-up of the in-process runner on
    SQLite (which embeds in its next round when no runner is in this process)."""
    if uses_queue(engine):
        from dailypapers.jobs.queue import defer

        defer(settings, "embed")
    else:
        from dailypapers.jobs.inprocess import wake

        wake()


def refresh_recommendations(engine: Engine) -> int:
    """The cached recommendations made stale by new embeddings or changed signals, recomputed
    (recommend.refresh); returns how many readers' lists were."""
    from dailypapers import recommend

    return recommend.refresh(engine)


def send_mail(engine: Engine, settings: Settings) -> list:
    """The digests and alerts that are due (mail/schedule.py's run_once)."""
    from dailypapers.mail.schedule import run_once

    return run_once(engine, settings)


def purge(engine: Engine) -> int:
    """Expired sessions, links and throttle counts deleted (mail/schedule.py's purge_once)."""
    from dailypapers.mail.schedule import purge_once

    return purge_once(engine)


def harvest(engine: Engine, settings: Settings) -> dict:
    """Every configured OAI-PMH set harvested from its checkpoint (jobs/harvest.py)."""
    from dailypapers.jobs.harvest import harvest as run

    return run(engine, settings)


def embedded(engine: Engine) -> int:
    """How many visible papers have an embedding by the current model (the newest embeddings')."""
    from sqlalchemy import func, select

    from dailypapers.search.vector_index import current_model
    from dailypapers.store.schema import paper_embeddings as emb
    from dailypapers.store.schema import papers

    with engine.connect() as conn:
        model = current_model(conn)
        if model is None:
            return 0
        return conn.execute(select(func.count()).select_from(papers.join(emb, emb.c.paper_pk == papers.c.pk))
                            .where(papers.c.hidden.is_(False), emb.c.model == model)).scalar_one()
