"""`dailypapers serve`: uvicorn in one process, or in N that each accept their own connections.

uvicorn's own ``--workers`` shares one listening socket between its processes, and whichever
process wakes first accepts every pending connection: 16 kept-alive clients mostly ended up on one
worker while the other idled (measured: 57 searches/s with 16 clients against 112/s with 2). Here
each worker binds its own socket with SO_REUSEPORT, and the kernel spreads new connections between
them. Where SO_REUSEPORT is missing, several workers are refused with the reason (one per port
behind a reverse proxy does the same).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
from multiprocessing.connection import wait

APP = "dailypapers.web.app:create_app"


class CannotServe(Exception):
    """Why the site cannot be served as asked: one line for the operator."""


def _config(host: str, port: int):  # noqa: ANN202
    import uvicorn

    # httptools' C parser and uvloop (measured at 100k papers, 2 workers, 16 clients: static file
    # 2,503 -> 2,965 requests/s, a paper page 871 -> 1,100 against h11 and asyncio's loop).
    # Forwarded headers are believed only from DAILYPAPERS_TRUSTED_PROXIES, inside the app (security.py),
    # not from uvicorn's default of 127.0.0.1; and the Server header tells nobody what runs here.
    return uvicorn.Config(APP, factory=True, host=host, port=port, http="httptools", loop="uvloop",
                          proxy_headers=False, server_header=False)


def _listen(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """The listening socket. Nagle's algorithm needs nothing here: uvloop turns it off on every TCP
    connection it accepts (asyncio's loop did not on a socket made here, whose ``proto`` reads 0: a
    kept-alive response then waited 40 ms for the client's delayed ACK; with uvloop, measured: no wait)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


def _stop_with_parent() -> None:
    """A worker whose `serve` was killed (SIGKILL: no chance to stop it) shuts down too, instead of
    serving on, orphaned, with the old code."""
    wait([multiprocessing.parent_process().sentinel])
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown


def _worker(host: str, port: int) -> None:
    import uvicorn

    threading.Thread(target=_stop_with_parent, daemon=True).start()
    uvicorn.Server(_config(host, port)).run(sockets=[_listen(host, port, reuse_port=True)])


def serve(host: str, port: int, workers: int) -> None:
    """Serve until interrupted; with several workers, until one of them stops (then all stop).
    Raises CannotServe (before anything started) when it cannot serve as asked."""
    if workers < 1:
        raise CannotServe(f"--workers must be at least 1, not {workers}")
    several = workers > 1
    if several and not hasattr(socket, "SO_REUSEPORT"):
        raise CannotServe(f"--workers {workers} needs SO_REUSEPORT, which this system lacks: run one "
                          "`dailypapers serve` per port behind a reverse proxy instead")
    try:
        sock = _listen(host, port, reuse_port=several)
    except OSError as exc:  # the address is taken, or SO_REUSEPORT is refused
        raise CannotServe(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    config = _config(host, port)  # sets up uvicorn's logging in this process too
    address = f"[{host}]" if ":" in host else host
    logging.getLogger("uvicorn.error").info("Serving on http://%s:%d with %d worker process%s "
                                            "(Press CTRL+C to quit)", address, port, workers,
                                            "es" if several else "")
    if not several:
        import uvicorn

        with sock:
            uvicorn.Server(config).run(sockets=[sock])
        return
    sock.close()  # the address is free; each worker binds its own socket to it
    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=_worker, args=(host, port), name=f"dailypapers-web-{n}")
                 for n in range(workers)]

    def stop(*_: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    failed = None
    try:
        for process in processes:
            process.start()
        stopped = wait([p.sentinel for p in processes])
        for process in processes:
            if process.sentinel in stopped:
                process.join()  # its exit code is known once it is reaped, not when the sentinel fires
        failed = next((p for p in processes if p.sentinel in stopped and p.exitcode), None)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(30)
    if failed is not None:
        raise CannotServe(f"worker {failed.name} stopped with exit code {failed.exitcode}; "
                          "the others were stopped too (its error is above)")
