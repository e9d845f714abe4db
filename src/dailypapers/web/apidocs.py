"""/docs (Swagger UI) and /redoc from the files fastapi-offline ships: no CDN, so they work offline
and under a strict Content-Security-Policy. Their pages carry inline code, allowed by hash (Swagger's
start-up script) or by a looser style-src (ReDoc) on these pages only."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from dailypapers.web.security import CSP

ASSETS = "/static-docs"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def _allow_inline_scripts(page: HTMLResponse) -> HTMLResponse:
    """The site's CSP, plus the sha256 of each inline script of this very page."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()}'"
                      for code in _INLINE_SCRIPT.findall(page.body.decode()))
    page.headers["Content-Security-Policy"] = CSP.replace("script-src 'self'", f"script-src 'self' {hashes}")
    return page


def install(app: FastAPI) -> None:
    """Mount the assets and add the pages (create the app with docs_url=None, redoc_url=None)."""
    app.mount(ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets")
    title = app.title

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return _allow_inline_scripts(get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{title} API", oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg"))

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_redirect() -> HTMLResponse:
        return _allow_inline_scripts(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        page = get_redoc_html(openapi_url=app.openapi_url, title=f"{title} API",
                              redoc_js_url=f"{ASSETS}/redoc.standalone.js", with_google_fonts=False,
                              redoc_favicon_url="/static/favicon.svg")
        # ReDoc writes its styles at run time, searches in a blob: worker, and shows a logo from its
        # CDN: images from this site only, so the page makes no request elsewhere.
        page.headers["Content-Security-Policy"] = CSP.replace(
            "style-src 'self'", "style-src 'self' 'unsafe-inline'").replace(
            "img-src 'self' https: data:", "img-src 'self' data:") + "; worker-src 'self' blob:"
        return page
