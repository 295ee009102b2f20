"""The ask page: `GET /ask`, plain HTML and a little JavaScript (no build step), served as files.

The page holds no data: it asks the ask API (`POST /v1/workspaces/{id}/ask`, and the suggestions
and history beside it) with the workspace's bearer token, which the person types in and the tab
keeps in sessionStorage. A strict Content-Security-Policy lets the page run only its own script and
reach only this server; the script writes every answer as text, never as HTML. docs/ask.md.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

STATIC = Path(__file__).parent / "static"
FILES = {"ask.js": "text/javascript; charset=utf-8", "ask.css": "text/css; charset=utf-8", "ask.svg": "image/svg+xml"}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def page(_: Request) -> Response:
    return FileResponse(STATIC / "ask.html", media_type="text/html; charset=utf-8", headers=HEADERS)


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in FILES:  # only the page's own files, never a path into the package
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(STATIC / name, media_type=FILES[name], headers=HEADERS)


async def home(_: Request) -> Response:
    return RedirectResponse("/ask")


routes = [Route("/", home, methods=["GET"]), Route("/ask", page, methods=["GET"]),
          Route("/ask/{name}", asset, methods=["GET"])]
