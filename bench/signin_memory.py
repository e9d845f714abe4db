"""Peak memory of one web worker under N parallel sign-ins with the real argon2 parameters.

    python bench/signin_memory.py [--signins 50] [--json]

Creates N accounts (one real argon2id hash, 64 MiB, shared by all), serves them with
`dailypapers serve --workers 1` in its own process, opens the sign-in form once per client, then
posts all N sign-ins at once, each from its own 127.0.0.x address (so the per-address sign-in
back-off does not turn any away before its hash). Samples the worker's RSS every 10 ms and reads its
high-water mark (VmHWM) at the end; the baseline is the same worker's RSS just before the burst.
Argon2 runs at most accounts.HASHES_AT_ONCE at a time per worker; a sign-in that waits longer than
accounts.HASH_WAIT seconds for a slot gets the form back with "busy, try again" (429).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import httpx
import psutil
from argon2 import PasswordHasher
from sqlalchemy import insert

PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(workdir: Path, n: int) -> str:
    from dailypapers.store.db import migrate, open_engine
    from dailypapers.store.schema import users

    url = f"sqlite:///{workdir / 'signin.db'}"
    engine = open_engine(url)
    migrate(engine)
    hashed = PasswordHasher().hash(PASSWORD)  # the library's defaults, as accounts.py uses
    with engine.begin() as conn:
        conn.execute(insert(users), [dict(username=f"user{i}", email=f"user{i}@example.org", password_hash=hashed,
                                          is_admin=False, created_at=datetime(2026, 1, 1)) for i in range(n)])
    engine.dispose()
    return url


def mib(n: int) -> float:
    return round(n / 2**20, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signins", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dailypapers-signin-"))
    url = prepare(workdir, args.signins)
    port = free_port()
    env = os.environ | {"DAILYPAPERS_DATABASE_URL": url, "DAILYPAPERS_DATA_DIR": str(workdir),
                        "DAILYPAPERS_MAIL_SCHEDULE": "off", "DAILYPAPERS_EMBEDDING_RUNTIME": "off",
                        "DAILYPAPERS_BASE_URL": f"http://127.0.0.1:{port}"}
    server = subprocess.Popen([str(Path(sys.executable).with_name("dailypapers")), "serve", "--port", str(port),
                               "--workers", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/login", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        worker = psutil.Process(server.pid)
        # One browser per sign-in, each from its own loopback address, holding its form's CSRF token.
        clients = []
        for i in range(args.signins):
            client = httpx.Client(base_url=base, timeout=120,
                                  transport=httpx.HTTPTransport(local_address=f"127.0.0.{2 + i % 250}"))
            page = client.get("/login").text
            token = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
            clients.append((client, token))
        time.sleep(0.5)
        baseline = worker.memory_info().rss
        peak, sampling = [baseline], threading.Event()

        def sample() -> None:
            while not sampling.wait(0.01):
                peak[0] = max(peak[0], worker.memory_info().rss)

        sampler = threading.Thread(target=sample)
        sampler.start()
        barrier = threading.Barrier(args.signins)
        results: list[tuple[int, float]] = []

        def sign_in(i: int) -> None:
            client, token = clients[i]
            barrier.wait()
            started = time.perf_counter()
            response = client.post("/login", data={"email": f"user{i}@example.org", "password": PASSWORD,
                                                   "csrf_token": token}, follow_redirects=False)
            results.append((response.status_code, time.perf_counter() - started))

        started = time.perf_counter()
        threads = [threading.Thread(target=sign_in, args=(i,)) for i in range(args.signins)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        sampling.set()
        sampler.join()
        with open(f"/proc/{server.pid}/status") as status:
            hwm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
        for client, _ in clients:
            client.close()
    finally:
        server.terminate()
        server.wait(20)
    statuses = Counter(code for code, _ in results)
    figures = {"signins": args.signins, "signed_in": statuses.get(303, 0), "busy_429": statuses.get(429, 0),
               "other": sum(v for k, v in statuses.items() if k not in (303, 429)),
               "baseline_rss_mib": mib(baseline), "peak_rss_mib": mib(peak[0]), "vmhwm_mib": mib(hwm),
               "seconds": round(elapsed, 2), "slowest_s": round(max(t for _, t in results), 2),
               "argon2": "m=65536,t=3,p=4"}
    print(f"{args.signins} parallel sign-ins: {figures['signed_in']} signed in, {figures['busy_429']} told busy "
          f"(429), {figures['other']} other, in {figures['seconds']} s")
    print(f"worker RSS: {figures['baseline_rss_mib']} MiB before, peak {figures['peak_rss_mib']} MiB "
          f"(high-water mark {figures['vmhwm_mib']} MiB)")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
