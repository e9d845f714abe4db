"""uvicorn's HTTP/1.1 protocol (httptools' C parser) with Nagle's algorithm off on every connection,
and kept-alive connections balanced between the worker processes.

Nagle: with ``--workers`` above 1, uvicorn hands the listening socket to its worker processes, and
the sockets accepted there no longer look like TCP to asyncio (their ``proto`` reads 0), so asyncio
leaves TCP_NODELAY unset. A response written in two parts (headers, then body) then waits for the
client's delayed ACK: 40 ms per request on a kept-alive connection (measured: a static file took
44 ms instead of 2 ms, which capped 16 clients at ~360 requests/s).

Balance: the kernel places each new connection on a worker by a hash of its addresses (SO_REUSEPORT,
see serve.py), so 16 connections often split 11 to 5, and those on the busier worker wait twice as
long (measured: search p50 53 ms, p95 133 ms). A worker holding more than its share of the open
connections answers with ``Connection: close``; the client reconnects and lands anew, until the
split is even. The closing connection leaves the count when the response is decided, not when the
socket closes: counted until then, it made the next responses close connections too, and the
reconnections kept the split flapping (16 clients: ~80 reconnections a second; a worker sometimes
queued 12 searches; p95 115-125 ms, then 81-91 ms).
"""

from __future__ import annotations

import socket

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_open_connections = None  # per worker process, in memory all of them share (set by serve.py)
_me = 0


def share_connection_counts(counts, me: int) -> None:  # noqa: ANN001 - a multiprocessing RawArray
    global _open_connections, _me
    _open_connections, _me = counts, me


def _over_share() -> bool:
    if _open_connections is None:
        return False
    counts = list(_open_connections)
    return counts[_me] > -(-sum(counts) // len(counts))


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    counted = False  # this connection is in this worker's count of open connections

    def connection_made(self, transport) -> None:  # noqa: ANN001
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if _open_connections is not None:
            _open_connections[_me] += 1  # only this process writes its own count
            self.counted = True
        super().connection_made(transport)

    def _uncount(self) -> None:
        if self.counted:
            _open_connections[_me] -= 1
            self.counted = False

    def connection_lost(self, exc: Exception | None) -> None:
        self._uncount()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.cycle is not None and self.counted and _over_share():
            self.cycle.keep_alive = False  # this response says Connection: close
            self._uncount()  # now: the next responses must not close connections on its account
