"""`dailypapers serve`: uvicorn in one process, or in several that each accept their own connections.

uvicorn's own ``--workers`` shares one listening socket between its processes, and whichever
process wakes first accepts every pending connection: 16 kept-alive clients mostly ended up on one
worker while the other idled (measured: 57 searches/s with 16 clients against 112/s with 2). Here
each worker binds its own socket with SO_REUSEPORT, and the kernel spreads new connections evenly.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
from multiprocessing.connection import wait

APP = "dailypapers.web.app:create_app"
# httptools' C parser and uvloop (measured at 100k papers, 2 workers, 16 clients: static file
# 2,503 -> 2,965 requests/s, a paper page 871 -> 1,100 against h11 and asyncio's loop).
PROTOCOL = "dailypapers.web.protocol:NoDelayHttpToolsProtocol"


def _config(**options):  # noqa: ANN003, ANN202
    import uvicorn

    # Forwarded headers are believed only from DAILYPAPERS_TRUSTED_PROXIES, inside the app (security.py),
    # not from uvicorn's default of 127.0.0.1; and the Server header tells nobody what runs here.
    return uvicorn.Config(APP, factory=True, http=PROTOCOL, loop="uvloop", proxy_headers=False,
                          server_header=False, **options)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _worker(host: str, port: int, counts, me: int) -> None:  # noqa: ANN001
    import uvicorn

    from dailypapers.web.protocol import share_connection_counts

    share_connection_counts(counts, me)
    uvicorn.Server(_config()).run(sockets=[_listen(host, port)])


def serve(host: str, port: int, workers: int) -> None:
    """Serve until interrupted; with several workers, until one of them stops (then all stop)."""
    if workers <= 1 or not hasattr(socket, "SO_REUSEPORT"):
        import uvicorn

        uvicorn.Server(_config(host=host, port=port, workers=workers)).run()
        return
    _listen(host, port).close()  # the address is free (or fails here, with one clear error)
    spawn = multiprocessing.get_context("spawn")
    counts = spawn.RawArray("i", workers)  # open connections per worker (see protocol.py)
    processes = [spawn.Process(target=_worker, args=(host, port, counts, n), name=f"dailypapers-web-{n}")
                 for n in range(workers)]

    def stop(*_: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        for process in processes:
            process.start()
        wait([p.sentinel for p in processes])
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(30)
