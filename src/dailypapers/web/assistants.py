"""/mcp: the MCP tools (dailypapers.assistants) over streamable HTTP, on the site itself."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from dailypapers.assistants import build
from dailypapers.config import Settings

PATH = "/mcp"


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """The SDK checks Host and Origin again (security.Edge did first): the same hosts, so it agrees."""
    hosts = [f"[{h}]" if ":" in h else h for h in sorted(settings.hosts)]
    origins = [f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(allowed_hosts=hosts + [f"{h}:*" for h in hosts],
                                     allowed_origins=origins + [f"{o}:*" for o in origins])


def install(app: FastAPI, settings: Settings, engine, embedder) -> None:  # noqa: ANN001
    """Route /mcp to the SDK's app, and run its session manager during the app's lifespan.

    Stateless and JSON: every request stands alone (no session to find again), so any worker
    process can answer it. A session manager runs only once: each lifespan makes a fresh one."""
    server = build(engine, embedder=embedder, base_url=settings.base_url)
    endpoint = _Endpoint()
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        endpoint.app = server.streamable_http_app(  # its one route is PATH too
            streamable_http_path=PATH, stateless_http=True, json_response=True,
            transport_security=transport_security(settings))
        try:
            async with server.session_manager.run(), inner(app) as state:
                yield state
        finally:
            endpoint.app = None

    app.router.lifespan_context = lifespan
    app.router.add_route(PATH, endpoint, include_in_schema=False)


class _Endpoint:
    """An ASGI app (Starlette calls an endpoint that is no function as one): the SDK's, while running."""

    app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:  # a server always runs the lifespan; only a test client may not
            response = JSONResponse({"error": "The MCP endpoint runs only while the site runs."}, 503)
            return await response(scope, receive, send)
        await self.app(scope, receive, send)
