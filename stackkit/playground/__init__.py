"""The browser playground, served by `stackkit run` at ``/playground/``: static files shipped in the
package (no build step, no Node), talking to the same ``/v1`` routes as any client.

The page is public (it holds no data); every API call it makes carries the key typed into its key field, so
the server's auth applies to it as to any client. A strict Content-Security-Policy allows only the page's
own scripts, styles and API: no inline script, no eval, no other origin, no frames, no form posts.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
PREFIX = "/playground"


def _assets() -> dict[str, tuple[bytes, str, str]]:
    """Every file under static/: name -> (content, content type, ETag)."""
    found = {}
    for entry in resources.files(__package__).joinpath("static").iterdir():
        suffix = entry.name[entry.name.rfind("."):]
        if entry.is_file() and suffix in _TYPES:
            body = entry.read_bytes()
            found[entry.name] = (body, _TYPES[suffix], '"' + hashlib.sha256(body).hexdigest()[:16] + '"')
    return found


def playground_routes() -> tuple[list[Route], frozenset[str]]:
    """The routes serving the playground, and their paths (public when the server has auth)."""
    assets = _assets()

    async def page(request: Request) -> Response:
        name = request.path_params.get("name", "index.html")
        if name not in assets:
            return Response(f"no file {name} in the playground", status_code=404, media_type="text/plain")
        body, media_type, etag = assets[name]
        headers = {"content-security-policy": CSP, "x-content-type-options": "nosniff",
                   "referrer-policy": "no-referrer", "cache-control": "no-cache", "etag": etag}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=media_type, headers=headers)

    async def to_slash(_: Request) -> Response:
        return RedirectResponse("playground/", status_code=308)  # relative: right when mounted under a prefix

    routes = [Route(PREFIX, to_slash, methods=["GET"]), Route(PREFIX + "/", page, methods=["GET"]),
              Route(PREFIX + "/{name}", page, methods=["GET"])]
    public = frozenset({PREFIX, PREFIX + "/", *(f"{PREFIX}/{name}" for name in assets)})
    return routes, public
