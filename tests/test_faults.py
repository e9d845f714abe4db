"""Faults (issue 13, part 5): two web processes and two workers on one PostgreSQL; a worker is
killed (SIGKILL) in the middle of an embedding batch, and in the middle of a harvest page. The other
worker finishes the job — the killed worker's heartbeat stops, the stalled-job check puts the job
back on the queue — with nothing lost and nothing done twice: every paper embedded exactly once,
every harvested page fetched once (but the one being fetched), every record and feed entry once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from importlib.resources import files
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from test_jobs import HARVESTED, PAGE3_IDS, OaiReplay, feed_ids, models_dir, three_pages, wait_for  # noqa: F401

from dailypapers.config import get_settings
from dailypapers.jobs import queue
from dailypapers.store.db import migrate, open_engine
from dailypapers.store.schema import paper_embeddings, papers
from live import free_port

SRC = Path(__file__).resolve().parents[1] / "src"
PAPERS = 24  # of the bundled sample: embedded 3 per batch, a dozen seconds on a loaded 2-core machine



class Site:
    """Two `dailypapers serve` and two `dailypapers worker` processes on one PostgreSQL."""

    def __init__(self, postgres_url: str, home: Path, endpoint: str):
        self.home = home
        self.env = os.environ | {
            "PYTHONPATH": str(SRC), "DAILYPAPERS_DATABASE_URL": postgres_url, "DAILYPAPERS_DATA_DIR": str(home),
            "DAILYPAPERS_OAI_BASE_URL": endpoint, "DAILYPAPERS_REQUEST_DELAY": "0",
            "DAILYPAPERS_HARVEST_SETS": "cs", "DAILYPAPERS_HARVEST_SCHEDULE": "03:00",  # deferred by hand here
            "DAILYPAPERS_JOBS_INTERVAL": "3600", "DAILYPAPERS_WORKER_HEARTBEAT": "1",
            "DAILYPAPERS_EMBED_BATCH_SIZE": "3", "DAILYPAPERS_BATCH_SIZE": "1", "DAILYPAPERS_MAIL_SCHEDULE": "off",
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.webs = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
        for n, url in enumerate(self.webs):
            self.start(f"web{n}", "serve", "--port", url.rpartition(":")[2])
        for name in ("worker0", "worker1"):
            self.start(name, "worker")
        for url in self.webs:
            wait_for(lambda: self.answers(url), f"{url} to answer", 60)

    def start(self, name: str, *command: str) -> None:
        log = open(self.home / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-c", "from dailypapers.cli import main; main()", *command],
            env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def queue_empty(self) -> bool:
        settings = get_settings(database_url=self.env["DAILYPAPERS_DATABASE_URL"], data_dir=self.home)
        return queue.list_jobs(settings) == []

    def answers(self, url: str) -> bool:
        try:
            return httpx.get(url + "/api/stats", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def cli(self, *command: str) -> str:
        done = subprocess.run([sys.executable, "-c", "from dailypapers.cli import main; main()", *command],
                              env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def log(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text()

    def running(self, line: str) -> str | None:
        """The worker whose log has ``line`` (it took the job)."""
        return next((name for name in ("worker0", "worker1") if line in self.log(name)), None)

    def kill(self, name: str) -> None:
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 5  # a worker finishes its job first: not worth waiting for here
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def warm_models(tmp_path, models_dir) -> Path:
    """The data folder of the site's processes, with the ONNX model converted beforehand."""
    (tmp_path / "models").symlink_to(models_dir, target_is_directory=True)
    return tmp_path


@pytest.fixture
def site(postgres_url, warm_models, recorded):
    engine = open_engine(postgres_url)
    migrate(engine)
    pages, tokens = three_pages(recorded)
    endpoint = OaiReplay(pages, tokens)
    site = Site(postgres_url, warm_models, endpoint.url)
    site.engine, site.endpoint = engine, endpoint
    yield site
    site.stop()
    endpoint.close()
    engine.dispose()


def count(engine, table) -> int:  # noqa: ANN001
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_a_worker_killed_in_the_middle_of_an_embedding_batch(site):
    engine = site.engine
    first = json.loads(files("dailypapers.sample").joinpath("papers.json").read_bytes())[:PAPERS]
    (site.home / "papers.json").write_text(json.dumps(first))
    site.cli("ingest", "--no-embed", "hf-daily", str(site.home / "papers.json"))  # embedding left to the jobs
    assert count(engine, papers) == PAPERS
    line = "embedding job in process"
    victim = wait_for(lambda: site.running(line), "a worker to take the embedding job")
    wait_for(lambda: count(engine, paper_embeddings) >= 3, "the first batches", 60)
    site.kill(victim)
    time.sleep(1)  # a COMMIT the victim sent before it died still lands
    done_by_victim = count(engine, paper_embeddings)
    assert done_by_victim < PAPERS, "the job ended before the kill: nothing was interrupted"
    survivor = {"worker0": "worker1", "worker1": "worker0"}[victim]
    wait_for(lambda: count(engine, paper_embeddings) == PAPERS, "the survivor to finish", 90)

    def embedded_by_survivor() -> int:  # in one job or several (a periodic one may take the rest)
        return sum(int(n) for n in re.findall(r"embedded (\d+) papers", site.log(survivor)))

    wait_for(lambda: embedded_by_survivor() == PAPERS - done_by_victim, "the survivor's report", 30)
    assert "lost its worker: it runs again" in site.log(survivor)
    with engine.connect() as conn:  # every paper once: one row each, no paper embedded twice
        assert conn.execute(select(func.count(func.distinct(paper_embeddings.c.paper_pk)))).scalar_one() == PAPERS
    wait_for(site.queue_empty, "an empty queue", 30)
    assert site.cli("jobs") == "no jobs queued, running or failed\n"
    for url in site.webs:  # both web processes find the papers by meaning now
        found = httpx.get(url + "/api/papers/search", params={"q": "robots learning to grasp objects"}).json()
        assert len(found) > 0


def test_a_worker_killed_in_the_middle_of_a_harvest_page(site):
    engine, endpoint = site.engine, site.endpoint
    endpoint.slow[3] = 120.0  # the first request of page 3 hangs: the worker is in the middle of it
    assert site.cli("jobs", "run", "harvest").startswith("queued job ")
    wait_for(lambda: endpoint.log == [1, 2, 3], "the harvest to reach page 3", 60)
    victim = wait_for(lambda: site.running("harvest job in process"), "the harvesting worker")
    assert count(engine, papers) == len(HARVESTED)  # pages 1 and 2 are committed
    site.kill(victim)
    survivor = {"worker0": "worker1", "worker1": "worker0"}[victim]
    wait_for(lambda: count(engine, papers) == len(HARVESTED) + PAGE3_IDS, "the survivor's harvest", 90)
    assert endpoint.log == [1, 2, 3, 3]  # resumed from the checkpoint: pages 1 and 2 not fetched again
    assert "(resuming)" in site.log(survivor)
    assert feed_ids(engine) == {"1412.8544"}
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(papers)
                            .where(papers.c.submitted_on_daily_at.is_not(None))).scalar_one() == 1
    wait_for(site.queue_empty, "an empty queue", 60)
    assert site.cli("jobs") == "no jobs queued, running or failed\n"
    assert re.search(r"harvest of cs: ", site.log(survivor))
