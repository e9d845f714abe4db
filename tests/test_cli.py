"""The `dailypapers` command as a user runs it: a real process, a real database file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).with_name("dailypapers")


def run(args, data_dir, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DAILYPAPERS_")}
    environ |= {"DAILYPAPERS_DATA_DIR": str(data_dir), "DAILYPAPERS_REQUEST_DELAY": "0",
                "DAILYPAPERS_EMBEDDING_RUNTIME": "off"} | env
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=environ, timeout=120)


def test_init_sample_and_stats(tmp_path):
    assert run(["init"], tmp_path).stdout.startswith("database ready: sqlite:///")
    first = run(["ingest", "sample"], tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("98 inserted, 0 updated, 0 unchanged, 0 deleted, 0 rejected in ")
    again = run(["ingest", "sample"], tmp_path)
    assert again.stdout.startswith("0 inserted, 0 updated, 98 unchanged")
    stats = json.loads(run(["stats", "--json"], tmp_path).stdout)
    assert stats["papers"] == 98 and stats["daily_papers"] == 98 and stats["latest_daily_date"] == "2025-10-10"


def test_ingest_snapshot_reports_rejections_and_exits_3(tmp_path, recorded):
    lines = (recorded / "arxiv-snapshot" / "arxiv-metadata-oai-snapshot.first200.jsonl").read_bytes().splitlines()
    bad = json.loads(lines[1])
    bad["id"] = "../../etc/passwd"
    feed = tmp_path / "snap.jsonl"
    feed.write_bytes(b"\n".join([lines[0], json.dumps(bad).encode(), lines[2], b"{not json"]) + b"\n")
    result = run(["ingest", "snapshot", str(feed)], tmp_path)
    assert result.returncode == 3
    assert result.stdout.startswith("2 inserted, 0 updated, 0 unchanged, 0 deleted, 2 rejected in ")
    assert "rejected line 2: id: '../../etc/passwd' is not an arXiv identifier" in result.stderr
    assert "rejected line 4: json: " in result.stderr


@pytest.mark.parametrize("args, env, message", [
    (["ingest", "snapshot", "/nonexistent/file.jsonl"], {}, "error: /nonexistent/file.jsonl: no such file\n"),
    (["ingest", "oai", "--from", "last tuesday"], {},
     "error: --from 'last tuesday': expected a date like 2025-01-31\n"),
    (["ingest", "oai", "--from", "2025-01-02", "--until", "2025-01-01"], {}, "error: --until is before --from\n"),
    (["stats"], {"DAILYPAPERS_BATCH_SIZE": "lots"},
     "error: setting DAILYPAPERS_BATCH_SIZE: Input should be a valid integer, unable to parse string as an integer\n"),
    (["ingest", "arxiv", "../../etc/passwd"], {}, None),
])
def test_errors_are_one_line_without_a_traceback(tmp_path, args, env, message):
    result = run(args, tmp_path, **env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    if message is not None:
        assert result.stderr == message
    else:
        assert "'../../etc/passwd' is not an arXiv identifier" in result.stderr


def test_a_database_that_cannot_be_opened_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run(["stats"], tmp_path, DAILYPAPERS_DATABASE_URL=f"sqlite:///{blocker}/sub/x.db")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")


@pytest.mark.parametrize("command", [[], ["init"], ["stats"], ["serve"], ["ingest"], ["ingest", "snapshot"],
                                     ["ingest", "oai"], ["ingest", "arxiv"], ["ingest", "hf-daily"],
                                     ["ingest", "sample"]])
def test_help(tmp_path, command):
    result = run([*command, "--help"], tmp_path)
    assert result.returncode == 0 and "Usage: dailypapers" in result.stdout


def test_serve_with_two_workers_serves_and_stops_cleanly(tmp_path):
    """`serve --workers 2`: two processes, each with its own SO_REUSEPORT socket; SIGTERM stops both."""
    import signal
    import socket
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert run(["ingest", "sample"], tmp_path).returncode == 0
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DAILYPAPERS_")}
    environ |= {"DAILYPAPERS_DATA_DIR": str(tmp_path), "DAILYPAPERS_EMBEDDING_RUNTIME": "off",
                "DAILYPAPERS_MAIL_SCHEDULE": "off"}
    server = subprocess.Popen([str(BIN), "serve", "--port", str(port), "--workers", "2"], env=environ,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(base + "/api/stats", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert httpx.get(base + "/api/stats", timeout=5).json()["papers"] == 98
        clients = [httpx.Client(base_url=base, timeout=5) for _ in range(16)]
        for client in clients:
            client.get("/api/stats")
        assert all(c.get("/api/stats").status_code == 200 for c in clients)
        for client in clients:
            client.close()
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    assert output.count("Started server process") == 2, output
    assert output.count("Finished server process") == 2, output


def test_search_in_a_fresh_process_finds_papers_on_both_databases(db_url, engine, tmp_path):
    """A new process on a new machine has no full-text index of its own yet (PostgreSQL's text side
    lives per machine): `search` brings it up to date before searching, so the first search finds."""
    from importlib.resources import files

    from dailypapers.ingest import ingest
    from dailypapers.sources.hf_daily import parse_hf_json

    ingest(engine, parse_hf_json(files("dailypapers.sample").joinpath("papers.json").read_bytes()))
    out = run(["search", "glaucoma", "--json", "--text-only", "--limit", "1"], tmp_path / "fresh",
              DAILYPAPERS_DATABASE_URL=db_url)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["results"][0]["title"].startswith("Harvard Glaucoma Detection")
