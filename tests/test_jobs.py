"""The jobs (jobs/): the site runs itself. On SQLite a thread of the app runs them; on PostgreSQL
real procrastinate workers do (in this process, or `dailypapers worker` processes). The harvest
talks to a local server that replays recorded OAI-PMH pages (oai-pmh/ in the recorded data)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from test_community import FakeArxiv, add_user
from test_security_accounts import _expired_and_live_rows, count
from test_source_oai import CURRENT_TOKEN, arxiv_chain, oai, server  # noqa: F401 - fixture
from typer.testing import CliRunner

from dailypapers import jobs
from dailypapers.cli import app as cli
from dailypapers.community import submit_paper
from dailypapers.config import get_settings
from dailypapers.jobs import queue
from dailypapers.jobs.inprocess import Runner
from dailypapers.jobs.timing import cron
from dailypapers.jobs.work import embedded
from dailypapers.store.db import migrate, open_engine
from dailypapers.store.queries import daily_papers
from dailypapers.store.schema import paper_embeddings, papers, sessions, throttle_hits
from dailypapers.web.app import create_app

SRC = Path(__file__).resolve().parents[1] / "src"
SECOND_TOKEN = "verb%3DListRecords%26metadataPrefix%3DarXiv%26set%3Dcs%26skip%3D5"
HARVESTED = {"1412.8544", "hep-th/9504118", "1412.8323", "1507.07790", "1607.01710"}
PAGE3_IDS = 3  # records of the hep-ex page
FEED_DAY = date(2014, 12, 29)  # 1412.8544 (cs.DM), the one paper of set cs in the replay


class OaiReplay:
    """A local OAI-PMH endpoint over recorded pages: the first request gets page 1, a resumption
    token its page; ``slow[page] = seconds`` delays the first answer of that page once. Logs every
    request's page."""

    def __init__(self, pages: list[bytes], tokens: list[str]):
        self.pages, self.tokens = pages, tokens
        self.log: list[int] = []
        self.slow: dict[int, float] = {}
        self.lock = threading.Lock()
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                params = dict(parse_qsl(urlsplit(self.path).query))
                token = params.get("resumptionToken")
                page = 1 if token is None else replay.tokens.index(token) + 2
                with replay.lock:
                    replay.log.append(page)
                    delay = replay.slow.pop(page, 0)
                time.sleep(delay)
                body = replay.pages[page - 1]
                self.send_response(200)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/oai"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def one_cycle(settings) -> None:  # noqa: ANN001
    """A real worker until the queue is empty, in a thread of its own: procrastinate's worker runs
    its event loop with asyncio.run, which refuses a thread whose loop is already running (the
    browser tests' Playwright leaves one in the main thread)."""
    from concurrent.futures import ThreadPoolExecutor

    from dailypapers.jobs import queue

    with ThreadPoolExecutor(1) as pool:
        pool.submit(queue.run_worker, settings, wait=False).result()


def three_pages(recorded: Path) -> tuple[list[bytes], list[str]]:
    """Page 1: the recorded 2015 list, page 2 the hep-th one, page 3 the hep-ex one (tokens added)."""
    page1, page2 = arxiv_chain(recorded)
    page2 = page2.replace(b"<resumptionToken/>", f"<resumptionToken>{SECOND_TOKEN}</resumptionToken>".encode())
    page3 = oai(recorded, "ListRecords_arXiv_set-physics-hep-ex_from-2017-12-14.xml").replace(
        b"</ListRecords>", b"<resumptionToken/>\n</ListRecords>")
    return [page1, page2, page3], [CURRENT_TOKEN, SECOND_TOKEN]


@pytest.fixture
def endpoint(recorded):
    page1, page2 = arxiv_chain(recorded)
    replay = OaiReplay([page1, page2], [CURRENT_TOKEN])
    yield replay
    replay.close()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """One model cache for the session, warm: the first load converts the bundled model to ONNX."""
    from dailypapers.search.embedder import load_embedder

    folder = tmp_path_factory.getbasetemp() / "models-home"  # one per session, whichever module asks
    folder.mkdir(exist_ok=True)
    load_embedder(cache_dir=folder)
    return folder


def job_settings(db_url: str, tmp_path: Path, **overrides):
    overrides.setdefault("request_delay", 0)
    engine = open_engine(db_url)
    migrate(engine)  # as `serve` does before it starts the app
    engine.dispose()
    return get_settings(database_url=db_url, data_dir=tmp_path, base_url="http://testserver",
                        mail_schedule=False, **overrides)


def wait_for(condition, what: str, seconds: float = 60.0):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found


def feed_ids(engine, day: date = FEED_DAY) -> set[str]:  # noqa: ANN001
    return {row["id"] for row in daily_papers(engine, day)}


def link_models(settings, models_dir: Path) -> None:  # noqa: ANN001
    (Path(settings.data_dir) / "models").symlink_to(models_dir, target_is_directory=True)


# --- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, value, message", [
    ("DAILYPAPERS_HARVEST_SETS", "cs,math stuff", "setting DAILYPAPERS_HARVEST_SETS: Value error, 'math stuff' "
                                                  "is not an OAI-PMH set (like cs, math or physics:hep-th)"),
    ("DAILYPAPERS_HARVEST_SCHEDULE", "25:00", "setting DAILYPAPERS_HARVEST_SCHEDULE: Value error, '25:00' is "
                                              "not a schedule: use a UTC time like 03:00, or an interval"),
    ("DAILYPAPERS_HARVEST_SCHEDULE", "every week", "setting DAILYPAPERS_HARVEST_SCHEDULE: Value error, "
                                                   "'every week' is not a schedule"),
    ("DAILYPAPERS_JOBS_INTERVAL", "0", "setting DAILYPAPERS_JOBS_INTERVAL: Input should be greater than 0"),
    ("DAILYPAPERS_WORKER_HEARTBEAT", "soon", "setting DAILYPAPERS_WORKER_HEARTBEAT: Input should be a valid "
                                             "number"),
    ("DAILYPAPERS_EMBED_BATCH_SIZE", "0", "setting DAILYPAPERS_EMBED_BATCH_SIZE: Input should be greater"),
])
@pytest.mark.parametrize("command", [["worker"], ["jobs"]])
def test_bad_settings_get_one_clear_line(monkeypatch, tmp_path, command, name, value, message):
    monkeypatch.setenv("DAILYPAPERS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 1
    assert result.output.startswith("error: " + message) and result.output.count("\n") == 1


def test_schedules_become_cron_lines():
    assert cron("03:00") == "0 3 * * *" and cron(" 23:59 ") == "59 23 * * *"
    assert cron("every 6h") == "0 */6 * * *" and cron("every 30m") == "*/30 * * * *"
    assert cron("every 20s") == "* * * * * */20" and cron("EVERY 2 S") == "* * * * * */2"


def test_the_defaults_harvest_nothing(db_url, tmp_path, endpoint, monkeypatch):
    for name in list(os.environ):
        if name.startswith("DAILYPAPERS_"):
            monkeypatch.delenv(name)
    settings = job_settings(db_url, tmp_path, oai_base_url=endpoint.url, harvest_schedule="every 1s",
                            embedding_runtime="off")
    assert settings.harvest_sets == []
    engine = open_engine(settings.db_url)
    if jobs.uses_queue(engine):
        names = {task.task.name for task in queue.make_app(settings).periodic_registry.periodic_tasks.values()}
        assert "harvest" not in names and {"embed", "purge", "retry_stalled"} <= names
    else:
        runner = Runner(engine, settings)
        assert runner.harvest_due is None
        runner.round()
    assert jobs.work.harvest(engine, settings) == {}
    assert endpoint.log == []
    engine.dispose()


# --- the feed fills itself --------------------------------------------------------------------------


def test_sqlite_serve_fills_the_feed_by_itself(tmp_path, endpoint):
    settings = job_settings(f"sqlite:///{tmp_path / 'site.db'}", tmp_path, oai_base_url=endpoint.url,
                            harvest_sets=["cs"], harvest_schedule="every 1s", embedding_runtime="off")
    with TestClient(create_app(settings)) as client:
        day = FEED_DAY.isoformat()
        found = wait_for(lambda: client.get("/api/daily_papers", params={"date": day}).json(), "the feed")
        assert [item["paper"]["id"] for item in found] == ["1412.8544"]
    engine = open_engine(settings.db_url)
    with engine.connect() as conn:
        assert set(conn.execute(select(papers.c.id)).scalars()) == HARVESTED
    assert endpoint.log[:2] == [1, 2]  # and later rounds start again from the checkpoint's date
    engine.dispose()


def test_postgresql_workers_fill_the_feed_by_themselves(postgres_url, tmp_path, endpoint):
    env = os.environ | {"PYTHONPATH": str(SRC), "DAILYPAPERS_DATABASE_URL": postgres_url,
                        "DAILYPAPERS_DATA_DIR": str(tmp_path), "DAILYPAPERS_OAI_BASE_URL": endpoint.url,
                        "DAILYPAPERS_REQUEST_DELAY": "0", "DAILYPAPERS_HARVEST_SETS": "cs",
                        "DAILYPAPERS_HARVEST_SCHEDULE": "every 1s", "DAILYPAPERS_EMBEDDING_RUNTIME": "off",
                        "DAILYPAPERS_WORKER_HEARTBEAT": "1"}
    job_settings(postgres_url, tmp_path)
    engine = open_engine(postgres_url)
    worker = subprocess.Popen([sys.executable, "-c", "from dailypapers.cli import main; main()", "worker"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: feed_ids(engine) == {"1412.8544"}, "the feed", 90)
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    with engine.connect() as conn:
        assert set(conn.execute(select(papers.c.id)).scalars()) == HARVESTED
    engine.dispose()


# --- a submitted paper is found by meaning after one job cycle ---------------------------------------


def test_a_submission_defers_its_embedding_and_one_job_cycle_makes_it_findable(
        engine, db_url, tmp_path, recorded, models_dir):
    settings = job_settings(db_url, tmp_path)
    link_models(settings, models_dir)
    ada = add_user(engine, "ada")
    submitted = submit_paper(engine, "1605.08386", ada, fetch=FakeArxiv(recorded, "query_id_list-1605.08386.xml"),
                             after_ingest=partial(jobs.after_ingest, engine, settings, defer=True))
    assert submitted.fetched
    assert embedded(engine) == 0  # deferred: the request did not wait for the model
    if jobs.uses_queue(engine):
        assert [(j["task"], j["status"]) for j in queue.list_jobs(settings)] == [("embed", "todo")]
        one_cycle(settings)  # one cycle of a real worker, until the queue is empty
        # The embed job is done; a periodic task that fell due during the cycle may wait its turn.
        left = queue.list_jobs(settings)
        assert [j for j in left if j["task"] == "embed" or j["status"] != "todo"] == [], left
    else:
        Runner(engine, settings, partial(jobs.work.embedder_for, settings)).round()
    assert embedded(engine) == 1
    embedder = jobs.work.embedder_for(settings)
    with TestClient(create_app(settings, embedder=embedder)) as client:
        found = client.get("/api/papers/search", params={"q": "random walks on lattice points of polytopes"})
    assert "1605.08386" in [item["paper"]["id"] for item in found.json()]
    queue.close_all()


def test_the_runner_thread_embeds_a_submission_within_seconds(tmp_path, recorded, models_dir):
    settings = job_settings(f"sqlite:///{tmp_path / 'site.db'}", tmp_path, jobs_interval=3600)
    link_models(settings, models_dir)
    app = create_app(settings)
    with TestClient(app):
        engine = app.state.engine
        submit_paper(engine, "1605.08386", add_user(engine, "ada"),
                     fetch=FakeArxiv(recorded, "query_id_list-1605.08386.xml"),
                     after_ingest=partial(jobs.after_ingest, engine, settings, defer=True))
        wait_for(lambda: embedded(engine) == 1, "the embedding", 60)  # woken, not an hour later


# --- the commands -----------------------------------------------------------------------------------


def test_jobs_lists_the_queue_on_postgresql_and_explains_sqlite(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("DAILYPAPERS_DATABASE_URL", db_url)
    monkeypatch.setenv("DAILYPAPERS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DAILYPAPERS_HARVEST_SETS", "cs")
    runner = CliRunner()
    result = runner.invoke(cli, ["jobs"])
    assert result.exit_code == 0
    if not db_url.startswith("postgresql"):
        assert result.output.startswith("SQLite: the jobs run inside `dailypapers serve`")
        assert "the harvest of cs (03:00)" in result.output
        assert runner.invoke(cli, ["worker"]).output.startswith("error: a worker needs PostgreSQL")
        return
    assert result.output == "no jobs queued, running or failed\n"
    assert runner.invoke(cli, ["jobs", "run", "harvest"]).output.startswith("queued job ")
    assert runner.invoke(cli, ["jobs", "run", "harvest"]).output == "a harvest job is queued already\n"
    assert runner.invoke(cli, ["jobs", "run", "sleep"]).output.startswith("error: no job called 'sleep'")
    listed = runner.invoke(cli, ["jobs"]).output.splitlines()
    assert len(listed) == 1 and listed[0].split()[1:5] == ["harvest", "todo", "attempts", "0"]
    queue.close_all()


def test_stats_json_counts_embedded_papers(engine, db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("DAILYPAPERS_DATABASE_URL", db_url)
    monkeypatch.setenv("DAILYPAPERS_DATA_DIR", str(tmp_path))
    import json

    from dailypapers.ingest import ingest
    from dailypapers.domain import Paper

    ingest(engine, [("t", Paper(id=f"2501.0000{i}", title=f"Paper {i}", summary="s")) for i in (1, 2)])
    with engine.begin() as conn:
        pk = conn.execute(select(papers.c.pk).where(papers.c.id == "2501.00001")).scalar_one()
        import numpy as np

        from dailypapers.search.backends import backend_for

        vector = backend_for(engine).vector_value(np.ones(384, np.float32))
        conn.execute(paper_embeddings.insert().values(paper_pk=pk, model="m", seq=1, vector=vector))
    figures = json.loads(CliRunner().invoke(cli, ["stats", "--json"]).output)
    assert figures["papers"] == 2 and figures["embedded"] == 1


# --- PostgreSQL: retries, and the purge --------------------------------------------------------------


def test_a_failed_harvest_is_retried_later_with_back_off(postgres_url, tmp_path, server):
    """The endpoint answers 404 (the scripted server has no responses): the job fails and waits."""
    settings = job_settings(postgres_url, tmp_path, oai_base_url=server.url, harvest_sets=["cs"],
                            embedding_runtime="off")
    assert queue.defer(settings, "harvest") is not None
    started = datetime.now(timezone.utc)
    one_cycle(settings)  # runs it once; the retry is not due yet, so it stops
    [job] = [job for job in queue.list_jobs(settings) if job["task"] == "harvest"]
    assert job["status"] == "todo" and job["attempts"] == 1
    assert datetime.fromisoformat(job["scheduled_at"]) >= started + timedelta(seconds=queue.RETRY.exponential_wait)
    assert len(server.log) == 1
    queue.close_all()


def test_a_worker_purges_expired_rows(postgres_url, tmp_path):
    settings = job_settings(postgres_url, tmp_path, embedding_runtime="off")
    engine = open_engine(postgres_url)
    _expired_and_live_rows(engine)
    queue.defer(settings, "purge")
    one_cycle(settings)
    for table in (sessions, throttle_hits):
        assert count(engine, table) == 1, table.name
    queue.close_all()
    engine.dispose()


# --- a worker machine keeps no full-text index; a stalled job whose kind is queued again -------------


def test_a_worker_keeps_no_full_text_index_the_web_processes_keep_theirs(
        postgres_url, tmp_path, recorded, models_dir):
    settings = job_settings(postgres_url, tmp_path)
    link_models(settings, models_dir)
    engine = open_engine(postgres_url, searches=False)  # a submission's upkeep here indexes nothing either
    submit_paper(engine, "1605.08386", add_user(engine, "ada"),
                 fetch=FakeArxiv(recorded, "query_id_list-1605.08386.xml"),
                 after_ingest=partial(jobs.after_ingest, engine, settings, defer=True))
    one_cycle(settings)  # the embedding job, with its index upkeep
    assert embedded(engine) == 1
    assert not (tmp_path / "fulltext").exists()  # the worker built no index on this machine
    with TestClient(create_app(settings, embedder=jobs.work.embedder_for(settings))) as client:
        wait_for(lambda: (tmp_path / "fulltext").exists(), "the web process's index", 30)
        found = wait_for(lambda: client.get("/api/papers/search", params={"q": "lattice polytopes"}).json(),
                         "the paper by its words", 30)
    assert [item["paper"]["id"] for item in found][:1] == ["1605.08386"]
    engine.dispose()
    queue.close_all()


def test_a_stalled_job_whose_kind_is_queued_again_gives_way_to_the_queued_one(postgres_url, tmp_path):
    """The stalled-job check puts a job whose worker died back on the queue; when one of its kind
    waits already (a queueing lock allows one), the stalled one is marked failed and the waiting one
    does the work."""
    import asyncio

    settings = job_settings(postgres_url, tmp_path, embedding_runtime="off")
    app = queue.make_app(settings, pool_size=2)

    async def stall() -> int:  # a worker takes an embedding job, then dies without a word
        async with app.open_async():
            await app.configure_task("embed").defer_async()
            worker = await app.job_manager.register_worker()
            job = await app.job_manager.fetch_job(None, worker)
            await app.configure_task("embed", schedule_in={"hours": 1}).defer_async()  # the next one waits
            await app.configure_task("retry_stalled").defer_async()
            return job.id

    with ThreadPoolExecutor(1) as pool:  # asyncio.run in a thread of its own (see one_cycle)
        stalled = pool.submit(asyncio.run, stall()).result()
    engine = open_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour'"))
    one_cycle(settings)  # runs the stalled-job check (the waiting job is not due for an hour)
    jobs_left = {job["id"]: (job["task"], job["status"]) for job in queue.list_jobs(settings)}
    assert jobs_left.pop(stalled) == ("embed", "failed")
    assert list(jobs_left.values()) == [("embed", "todo")]
    engine.dispose()
