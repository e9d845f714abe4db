"""The edge of the site: which Host it answers to, which proxies it believes, the security headers
of every response, cross-site refusal of unsafe methods, and tokens kept out of the access log.

Plain ASGI middleware (no BaseHTTPMiddleware): it runs on every static file too, and costs little.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dailypapers.config import Settings

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
       "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Paths whose rest is a secret (the token of a mail link): never written to a log.
SECRET_PATH = re.compile(r"^(/reset|/verify|/unsubscribe|/subscriptions/(?:manage|confirm))/.+", re.S)


def headers(settings: Settings) -> dict[str, str]:
    """The headers every response gets (a route may set its own Content-Security-Policy)."""
    values = {
        "Content-Security-Policy": CSP,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if settings.base_url and settings.base_url.startswith("https://"):
        values["Strict-Transport-Security"] = "max-age=31536000"
    return values


def redact(path: str) -> str:
    """/reset/<token>?x=y -> /reset/[redacted], and the same for every other mail-link path."""
    return SECRET_PATH.sub(r"\1/[redacted]", path)


def _origin(url: str) -> str | None:
    """scheme://host[:port], without the default port; None for what is no URL ("null", garbage)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


class Edge:
    """Refuse unknown Hosts (400) and cross-site unsafe requests (403); add the security headers."""

    def __init__(self, app: ASGIApp, settings: Settings, refuse: Callable[[Request, int, str], Response]):
        self.app = app
        self.hosts = settings.hosts
        self.site = _origin(settings.base_url) if settings.base_url else None
        self.headers = [(name.lower().encode(), value.encode()) for name, value in headers(settings).items()]
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    header for header in self.headers if header[0] not in present]
            await send(message)

        request = Request(scope)
        problem = self.check(request)
        if problem:
            response = self.refuse(request, *problem)
            return await response(scope, receive, send_with_headers)
        await self.app(scope, receive, send_with_headers)

    def check(self, request: Request) -> tuple[int, str] | None:
        host = _host(request.headers.get("host", ""))
        if host not in self.hosts:
            return 400, ("This site does not answer to that host name (the Host header); "
                         "use the site's own address.")
        if request.method in UNSAFE and not request.scope["path"].startswith("/unsubscribe/"):
            # One-click unsubscribe (RFC 8058) comes from mail providers, on the authority of its
            # token alone: it uses no cookie, so no other site can borrow one through it.
            claimed = request.headers.get("origin") or request.headers.get("referer")
            if claimed is not None:
                own = {self.site, _origin(f"{request.scope['scheme']}://{request.headers['host']}")} - {None}
                if _origin(claimed) not in own:
                    return 403, "Cross-site request refused: this request did not come from this site."
        return None


def _host(value: str) -> str:
    """The host name of a Host header, lower-case, without port or IPv6 brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    return value.rpartition(":")[0] if value.count(":") == 1 else value


class RedactTokens(logging.Filter):
    """For the "uvicorn.access" logger: the request path is its third argument."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact(args[2]), *args[3:])
        return True


def redact_access_log() -> None:
    """Install the filter once per process (create_app may run several times)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())
