"""The daily harvest: every set of DAILYPAPERS_HARVEST_SETS by OAI-PMH, resuming from its checkpoint.

The checkpoint of each set lives in the database (``harvest_checkpoints``), so a harvest stopped
on one machine resumes on another. The harvester (sources/oai.py) keeps it in a file: the job
copies the saved state into a private file first and back into the table after every committed
batch. A harvest starts where the last complete one of its set started (arXiv's advice for
incremental harvests), or ``harvest_days`` back the first time; an unfinished one is finished first
with its own arguments. Requests to arXiv take turns with every other process of the site
(``throttle.wait_turn``). Its papers go on the daily feed: the categories of
DAILYPAPERS_FEATURE_CATEGORIES, else those of the harvested sets.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Engine

from dailypapers import throttle
from dailypapers.config import Settings
from dailypapers.ingest import IngestReport, ingest
from dailypapers.sources.common import parse_date
from dailypapers.sources.oai import USER_AGENT, OaiHarvest, read_checkpoint
from dailypapers.store.schema import harvest_checkpoints

log = logging.getLogger("dailypapers.jobs")


def feed_categories(settings: Settings) -> list[str]:
    """What a harvest puts on the feed: the operator's categories, else the sets' (physics:hep-th
    is the category hep-th)."""
    return settings.feature_categories or [spec.rpartition(":")[2] for spec in settings.harvest_sets]


def load_state(engine: Engine, set_spec: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(harvest_checkpoints.c.state)
                            .where(harvest_checkpoints.c.set_spec == set_spec)).scalar()


def save_state(engine: Engine, set_spec: str, state: str) -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with engine.begin() as conn:
        updated = conn.execute(harvest_checkpoints.update()
                               .where(harvest_checkpoints.c.set_spec == set_spec)
                               .values(state=state, updated_at=now)).rowcount
        if not updated:
            conn.execute(harvest_checkpoints.insert().values(set_spec=set_spec, state=state, updated_at=now))


def _client(engine: Engine, settings: Settings) -> httpx.Client:
    """An HTTP client that waits for the site's turn at arXiv before every request."""
    def take_turn(_request: httpx.Request) -> None:
        time.sleep(throttle.wait_turn(engine, "arxiv", settings.request_delay))

    return httpx.Client(timeout=120.0, follow_redirects=True, headers={"User-Agent": USER_AGENT},
                        event_hooks={"request": [take_turn]})


def harvest_set(engine: Engine, settings: Settings, set_spec: str, today: date | None = None) -> IngestReport:
    """Harvest one set from its checkpoint to the end of its list; the report of what was stored."""
    from dailypapers.jobs.work import after_ingest

    today = today or datetime.now(timezone.utc).date()
    with tempfile.TemporaryDirectory(prefix="dailypapers-harvest-") as folder:
        path = Path(folder) / "checkpoint.json"
        saved = load_state(engine, set_spec)
        start, until = today - timedelta(days=settings.harvest_days), None
        if saved:
            path.write_text(saved, encoding="utf-8")
            state = read_checkpoint(path) or {}
            if not state.get("complete") and state.get("base_url") == settings.oai_base_url:
                arguments = state.get("arguments") or {}  # finish the interrupted harvest as it began
                start = date.fromisoformat(arguments["from"]) if arguments.get("from") else None
                until = date.fromisoformat(arguments["until"]) if arguments.get("until") else None
            else:
                path.unlink()
                start = last_harvest_date_of(saved) or start
        with _client(engine, settings) as client:
            harvest = OaiHarvest(settings.oai_base_url, from_=start, until=until, set_=set_spec,
                                 checkpoint=path, delay=0, client=client)

            def committed() -> None:
                harvest.committed()
                if path.exists():
                    save_state(engine, set_spec, path.read_text(encoding="utf-8"))

            log.info("harvest of %s from %s%s", set_spec, start or "the beginning",
                     " (resuming)" if harvest.resuming else "")
            report = ingest(engine, harvest, batch_size=settings.batch_size,
                            feature_categories=feed_categories(settings), on_commit=committed)
            if path.exists():  # the list is complete: the next harvest starts from its date
                save_state(engine, set_spec, path.read_text(encoding="utf-8"))
    log.info("harvest of %s: %s", set_spec, report.summary())
    after_ingest(engine, settings, defer=True)
    return report


def last_harvest_date_of(state: str) -> date | None:
    """When the last complete harvest of a saved state started (None: not complete)."""
    data = json.loads(state)
    if data.get("complete") and data.get("response_date"):
        return parse_date(data["response_date"]).date()
    return None


def harvest(engine: Engine, settings: Settings) -> dict[str, IngestReport]:
    """Harvest every configured set (none by default); one set failing does not stop the others,
    but the job fails afterwards so that it is retried."""
    reports, failed = {}, []
    for set_spec in settings.harvest_sets:
        try:
            reports[set_spec] = harvest_set(engine, settings, set_spec)
        except Exception as exc:  # noqa: BLE001 - logged, re-raised below once every set had its turn
            log.error("harvest of %s failed: %s", set_spec, exc)
            failed.append(exc)
    if failed:
        raise failed[0]
    return reports
