"""The dashboard web app: FastAPI routes rendered with Jinja2 templates, Plotly figures drawn by the bundled plotly.js.

``create_app(root)`` builds the app over one dataset root; ``serve(app, sock)`` runs it with uvicorn on an already
bound socket (`human3r dashboard` binds 127.0.0.1 unless told otherwise). The pages are in `dashboards.pages`.

Security: the app only reads through the catalog's read-only connection (`dashboards.snapshot`) and the source
videos the catalog names (`dashboards.media`); static files are a fixed list read once at start, so no URL maps to a
path on disk. Every id and number in a URL is validated (a bad one is a 400/404 page that says why). Responses carry
a Content-Security-Policy allowing this origin only (plotly.js's 3D traces need ``'unsafe-eval'``), and requests
whose Host header is not this machine's are refused when bound to loopback (no DNS rebinding).
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import ipaddress
import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from dashboards.queries import FramePeople
from dashboards.snapshot import Snapshot
from storage.fs import Root, open_root

HERE = Path(__file__).resolve().parent
ASSETS = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}  # under dashboards/static
CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")


@functools.cache
def _plotly_js() -> tuple[bytes, str]:
    """plotly.js as shipped inside the plotly Python package (no CDN), and its ETag."""
    from plotly.offline import get_plotlyjs

    body = get_plotlyjs().encode()
    return body, hashlib.sha256(body).hexdigest()[:16]


def _fmt_int(value) -> str:
    return "" if value is None else f"{int(value):,}"


def _fmt_num(value, digits: int = 2) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _fmt_time(value) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _fmt_epoch(value: float) -> str:
    return _fmt_time(datetime.datetime.fromtimestamp(value, datetime.UTC))


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters.update(thousands=_fmt_int, num=_fmt_num, when=_fmt_time, epoch=_fmt_epoch)
    return templates


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def create_app(root: str | os.PathLike | Root, *, host: str = "127.0.0.1", refresh_s: float = 30.0,
               sql_timeout_s: float = 10.0, sql_max_rows: int = 1000, csv_max_rows: int = 100_000) -> FastAPI:
    """The dashboard over the dataset at `root` (opened now: a missing or wrong dataset raises StorageError)."""
    from dashboards import pages

    dataset = root if isinstance(root, Root) else open_root(root)
    app = FastAPI(title="Human3R dataset", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.snapshot = Snapshot(dataset, refresh_s=refresh_s)
    app.state.frame_people = FramePeople()
    app.state.templates = make_templates()
    app.state.limits = {"sql_timeout_s": sql_timeout_s, "sql_max_rows": sql_max_rows, "csv_max_rows": csv_max_rows}
    app.state.assets = {name: (HERE / "static" / name).read_bytes() for name in ASSETS}
    if _loopback(host):
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"])

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update({"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                                 "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"})
        return response

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js(request: Request) -> Response:
        body, etag = _plotly_js()
        headers = {"ETag": f'"{etag}"', "Cache-Control": "public, max-age=86400"}
        if request.headers.get("if-none-match") == f'"{etag}"':
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="text/javascript", headers=headers)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in ASSETS:
            raise StarletteHTTPException(404, f"no static file {name!r}")
        return Response(app.state.assets[name], media_type=ASSETS[name],
                        headers={"Cache-Control": "public, max-age=300"})

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException):
        return _error(request, exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    def validation_error(request: Request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
        return _error(request, 400, "bad request parameter: " + "; ".join(parts))

    app.include_router(pages.router)
    return app


def _error(request: Request, status: int, message: str):
    """The error as the caller reads it: JSON for /api, plain text for images and CSV, else a page."""
    path = request.url.path
    if path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    if path.endswith((".jpg", ".csv", ".js", ".css")):
        return PlainTextResponse(message, status_code=status)
    templates = request.app.state.templates
    return templates.TemplateResponse(request, "error.html", {"status": status, "message": message,
                                                              "snapshot": request.app.state.snapshot},
                                      status_code=status)


def serve(app: FastAPI, sock, *, log_level: str = "warning") -> None:
    """Run `app` with uvicorn on a bound socket until interrupted (Ctrl-C)."""
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=log_level in ("info", "debug"),
                            timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])

