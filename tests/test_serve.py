"""Stateless web workers: the similar-papers cache follows the database it reads and its embeddings,
and `dailypapers serve --workers N` starts N processes or says why not."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from importlib.resources import files
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from dailypapers.config import get_settings
from dailypapers.ingest import ingest
from dailypapers.search.vectors import embed_backlog, exact_search
from dailypapers.sources.hf_daily import parse_hf_json
from dailypapers.store.db import migrate, open_engine
from dailypapers.store.schema import paper_embeddings, papers
from dailypapers.web.app import create_app


class SeededEmbedder:
    """A stand-in model: each text's vector is random but fixed by the text and the seed (so two
    databases embedded with two seeds have different neighbours); ``near`` maps a text to a copy of
    another one's vector."""

    name, dim = "seeded", 384

    def __init__(self, seed: int = 0) -> None:
        self.seed, self.near = seed, {}

    def vector(self, text: str) -> np.ndarray:
        digest = hashlib.sha256(f"{self.seed}:{self.near.get(text, text)}".encode()).digest()
        v = np.random.default_rng(int.from_bytes(digest[:8], "little")).standard_normal(self.dim)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def embed(self, texts, batch_size: int = 64) -> np.ndarray:  # noqa: ANN001, ARG002
        return np.stack([self.vector(t) for t in texts])


def fill(engine, seed: int = 0) -> SeededEmbedder:  # noqa: ANN001
    ingest(engine, parse_hf_json(files("dailypapers.sample").joinpath("papers.json").read_bytes()))
    embedder = SeededEmbedder(seed)
    assert embed_backlog(engine, embedder) == 98
    return embedder


def app_on(url: str, data_dir) -> TestClient:  # noqa: ANN001
    settings = get_settings(database_url=url, data_dir=data_dir, base_url="http://testserver",
                            embedding_runtime="off", mail_schedule="off")
    return TestClient(create_app(settings, embedder=None), raise_server_exceptions=False)


def similar_on_page(client: TestClient, paper_id: str) -> list[str]:
    page = client.get(f"/papers/{paper_id}")
    assert page.status_code == 200
    section = page.text.partition('<ul class="similar">')[2].partition("</ul>")[0]
    return re.findall(r'href="/papers/([^"]+)"', section)


def expected_similar(engine, paper_id: str) -> list[str]:  # noqa: ANN001
    """The five nearest papers by the stored vectors, read exactly (not through the page's cache)."""
    from dailypapers.search.vectors import stored_vectors

    with engine.connect() as conn:
        pk = conn.execute(select(papers.c.pk).where(papers.c.id == paper_id)).scalar_one()
        vector = stored_vectors(conn, [pk])[pk]
        hits = [p for p, _ in exact_search(engine, vector, limit=6) if p != pk][:5]
        ids = dict(conn.execute(select(papers.c.pk, papers.c.id).where(papers.c.pk.in_(hits))).all())
    return [ids[p] for p in hits]


def paper_ids(engine) -> list[tuple[int, str, str]]:  # noqa: ANN001
    from dailypapers.search.embedder import paper_text

    with engine.connect() as conn:
        rows = conn.execute(select(papers.c.pk, papers.c.id, papers.c.title, papers.c.summary)
                            .order_by(papers.c.pk)).all()
    return [(r.pk, r.id, paper_text(r.title, r.summary)) for r in rows]


def test_similar_papers_change_as_soon_as_an_embedding_is_replaced_or_added(engine, db_url, tmp_path):
    embedder = fill(engine)
    (_, viewed, viewed_text), (far_pk, far_id, far_text), *_ = paper_ids(engine)
    with app_on(db_url, tmp_path) as client:
        before = similar_on_page(client, viewed)
        assert before == expected_similar(engine, viewed) and far_id not in before
        assert similar_on_page(client, viewed) == before  # served again (from the cache)

        # The far paper is embedded anew, now right beside the viewed one: the next view shows it.
        with engine.begin() as conn:
            conn.execute(delete(paper_embeddings).where(paper_embeddings.c.paper_pk == far_pk))
        embedder.near[far_text] = viewed_text
        assert embed_backlog(engine, embedder, only=[far_pk]) == 1
        after = similar_on_page(client, viewed)
        assert after[0] == far_id and after == expected_similar(engine, viewed)

        # A new paper, embedded beside the viewed one, shows at once too.
        new = {"paper": {"id": "2510.99999", "title": "A paper just submitted", "summary": "Its abstract.",
                         "authors": [], "publishedAt": "2025-10-09T00:00:00.000Z"}}
        ingest(engine, parse_hf_json(json.dumps([new]).encode()))
        new_pk, _, new_text = next(p for p in paper_ids(engine) if p[1] == "2510.99999")
        embedder.near[new_text] = viewed_text
        assert embed_backlog(engine, embedder, only=[new_pk]) == 1
        latest = similar_on_page(client, viewed)
        assert set(latest[:2]) == {far_id, "2510.99999"} and latest == expected_similar(engine, viewed)


def test_two_apps_on_two_databases_in_one_process_keep_their_own_similar_papers(engine, db_url, tmp_path):
    fill(engine, seed=1)
    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    other = open_engine(other_url)
    migrate(other)
    fill(other, seed=2)  # the same papers, under the same pks and seqs, with other vectors
    try:
        (_, viewed, _), *_ = paper_ids(engine)
        (_, same_id, _), *_ = paper_ids(other)
        assert viewed == same_id
        with app_on(db_url, tmp_path / "one") as one, app_on(other_url, tmp_path / "two") as two:
            first, second = similar_on_page(one, viewed), similar_on_page(two, viewed)
            assert first == expected_similar(engine, viewed) and second == expected_similar(other, viewed)
            assert first != second
            assert similar_on_page(one, viewed) == first and similar_on_page(two, viewed) == second
    finally:
        other.dispose()


# --- `dailypapers serve --workers N` ---------------------------------------------------------------------

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dailypapers(tmp_path, *args, prelude: str = ""):  # noqa: ANN001, ANN002
    """`dailypapers ARGS` in a process of its own, its data in tmp_path, its output kept;
    ``prelude`` runs first (to take something away from the standard library)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAILYPAPERS_")}
    env |= {"PYTHONPATH": str(SRC), "DAILYPAPERS_DATA_DIR": str(tmp_path),
            "DAILYPAPERS_EMBEDDING_RUNTIME": "off", "DAILYPAPERS_MAIL_SCHEDULE": "off"}
    code = f"{prelude}\nfrom dailypapers.cli import main; main()"
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its workers too can be killed as a group


def kill_all(process) -> str:  # noqa: ANN001
    """Kill the command and every process it started (they hold its output open); its output."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return process.communicate(timeout=30)[0]


def wait_until_up(url: str, process) -> None:  # noqa: ANN001
    deadline = time.monotonic() + 180  # two workers importing everything on a busy machine
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(kill_all(process))
        try:
            if httpx.get(url + "/static/favicon.svg", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    pytest.fail(kill_all(process))


def workers_of(pid: int) -> list[int]:
    """The worker processes `serve` started (not multiprocessing's resource tracker)."""
    children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def connections_served(pid: int, port: int) -> int:
    """How many established TCP connections to ``port`` this process holds (read from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            count += local_port == port and state == "01" and inode in inodes  # 01: ESTABLISHED
    return count


NO_REUSEPORT = "import socket\ndel socket.SO_REUSEPORT"


def test_several_workers_where_so_reuseport_is_missing_are_refused_with_the_reason(tmp_path):
    port = free_port()
    process = dailypapers(tmp_path, "serve", "--port", str(port), "--workers", "2", prelude=NO_REUSEPORT)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert out.strip().splitlines() == ["error: --workers 2 needs SO_REUSEPORT, which this system lacks: "
                                        "run one `dailypapers serve` per port behind a reverse proxy instead"]


def test_one_worker_needs_no_so_reuseport(tmp_path):
    port = free_port()
    process = dailypapers(tmp_path, "serve", "--port", str(port), prelude=NO_REUSEPORT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}", process)
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        try:
            out, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            out = kill_all(process)
    assert f"Serving on http://127.0.0.1:{port} with 1 worker process (Press CTRL+C to quit)" in out
    assert out.count("Started server process") == 1 and "Finished server process" in out, out


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_line(tmp_path, workers):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        process = dailypapers(tmp_path, "serve", "--port", str(port), "--workers", workers)
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert out.strip().splitlines() == [f"error: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_no_workers_is_refused(tmp_path):
    process = dailypapers(tmp_path, "serve", "--workers", "0")
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "Invalid value for '--workers': Input should be greater than or equal to 1" in out


def test_two_workers_are_two_processes_that_each_answer(tmp_path):
    """`serve --workers 2` starts two processes, and connections are answered by both; when one
    worker dies, the other is stopped and the command says so."""
    port = free_port()
    process = dailypapers(tmp_path, "serve", "--port", str(port), "--workers", "2")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        workers = workers_of(process.pid)
        assert len(workers) == 2
        # Nagle's algorithm is off: kept-alive responses do not wait 40 ms for the client's delayed ACK.
        with httpx.Client(base_url=url, timeout=10) as client:
            timings = []
            for _ in range(40):
                started = time.perf_counter()
                assert client.get("/static/app.css").status_code == 200
                timings.append(time.perf_counter() - started)
            assert sorted(timings)[20] < 0.030, timings
        clients = [httpx.Client(base_url=url, timeout=10) for _ in range(16)]  # kept-alive connections
        try:
            assert all(c.get("/").status_code == 200 for c in clients)
            served = [connections_served(pid, port) for pid in workers]
            assert sum(served) == 16 and min(served) >= 1, served  # all 16 on one: 1 chance in 32,768
        finally:
            for client in clients:
                client.close()
        os.kill(workers[0], signal.SIGKILL)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.returncode is None:
            kill_all(process)
    assert process.returncode == 1, out
    assert f"Serving on http://127.0.0.1:{port} with 2 worker processes" in out
    assert out.count("Started server process") == 2, out
    assert out.strip().splitlines()[-1] == ("error: worker dailypapers-web-0 stopped with exit code -9; "
                                            "the others were stopped too (its error is above)")
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers[1:])


def test_workers_stop_when_serve_is_killed(tmp_path):
    """SIGKILL leaves `serve` no chance to stop its workers: they notice and stop by themselves."""
    port = free_port()
    process = dailypapers(tmp_path, "serve", "--port", str(port), "--workers", "2")
    try:
        wait_until_up(f"http://127.0.0.1:{port}", process)
        workers = workers_of(process.pid)
        assert len(workers) == 2
        process.kill()
        out, _ = process.communicate(timeout=60)  # the output ends when the workers are gone
        assert out.count("Finished server process") == 2, out
    finally:
        if process.returncode is None:
            kill_all(process)
