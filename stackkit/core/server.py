"""The HTTP server: a Starlette app generated from the route table, served by uvicorn.

Starlette rather than FastAPI (which is built on it): the routes come from our route table and the
OpenAPI document is generated from it too, so FastAPI's features went unused, while importing it cost
about a quarter of the 1 s start-up budget and its extra middleware layers ran on every request.

Handlers are thin: read the body, validate it into the route's request type (as the
LibraryClient does), call the implementation, write the response. Streams are SSE in
OpenAI's exact format; a client that disconnects cancels the provider's work. Every error
is OpenAI's ``{"error": {...}}`` body with the right status, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import logging
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route as HTTPRoute
from starlette.types import Receive, Scope, Send

from stackkit.apis.datatypes import Api, Route
from stackkit.apis.protocols import route_table
from stackkit.core.api_keys import StoredKeys
from stackkit.core.auth import AuthMiddleware, JwtVerifier
from stackkit.core.config import RunConfig, load_config
from stackkit.core.dispatch import build_request, build_request_json, wants_stream
from stackkit.core.middleware import GatewayMiddleware
from stackkit.core.openapi import openapi_spec
from stackkit.core.request_context import PROVIDER_DATA_HEADER, Principal, parse_provider_data, provider_data
from stackkit.core.response_cache import cache_status
from stackkit.core.stack import Stack, version
from stackkit.core.streams import aclose
from stackkit.errors import InvalidRequestError, ProviderUnavailableError, StackkitError

log = logging.getLogger("stackkit.server")
_NESTED_PARAM = re.compile(r"(\w+)\[([^\]]+)\]")
_JSON = "application/json"
_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no")]


def to_json(model: BaseModel) -> bytes:
    return model.__pydantic_serializer__.to_json(model)


def error_response(exc: StackkitError) -> Response:
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["retry-after"] = str(int(retry_after + 0.999))
    return Response(orjson.dumps(exc.to_openai_body()), status_code=exc.status_code, media_type=_JSON,
                    headers=headers)


def internal_error(exc: BaseException, where: str) -> StackkitError:
    log.error("unexpected error in %s", where, exc_info=exc)
    return StackkitError(f"Internal error in {where}: {type(exc).__name__}. The server log has the details.")


class SSEResponse(Response):
    """Server-sent events in OpenAI's format. A client disconnect cancels the stream at once, and the
    stream is closed (its upstream connection or batch slot released) however the response ends,
    even when the client left before the first byte. Every step runs in `context`, the request's."""

    def __init__(self, stream: AsyncIterator[BaseModel], where: str, context: contextvars.Context,
                 framing: str = "data", extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.framing = framing
        self.start_headers = [*_SSE_HEADERS, *(extra_headers or [])]
        self.status_code = 200
        self.background = None
        self.stream = stream
        self.where = where
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        writer = loop.create_task(self._write(send), context=self.context)
        watcher = loop.create_task(self._wait_disconnect(receive))
        try:
            await asyncio.wait((writer, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (writer, watcher):
                if not task.done():
                    task.cancel()
            await asyncio.gather(writer, watcher, return_exceptions=True)
            await loop.create_task(aclose(self.stream), context=self.context)

    @staticmethod
    async def _wait_disconnect(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def _write(self, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.start_headers})
            events = self.framing == "event"
            async for chunk in self.stream:
                head = b"event: " + chunk.type.encode() + b"\ndata: " if events else b"data: "  # type: ignore[attr-defined]
                await send({"type": "http.response.body", "body": head + to_json(chunk) + b"\n\n", "more_body": True})
            tail = b"data: [DONE]\n\n"
        except StackkitError as exc:
            tail = b"data: " + orjson.dumps(exc.to_openai_body()) + b"\n\n"
        except OSError:  # the client is gone: nothing more to send
            return
        except Exception as exc:  # noqa: BLE001 - becomes the stream's final error event
            tail = b"data: " + orjson.dumps(internal_error(exc, self.where).to_openai_body()) + b"\n\n"
        await send({"type": "http.response.body", "body": tail, "more_body": False})


Endpoint = Callable[[Request], Awaitable[Response]]


async def _read_multipart(route: Route, http: Request) -> BaseModel:
    try:
        form = await http.form()
    except StackkitError:
        raise  # the body is over the size limit: a 413
    except Exception as exc:  # noqa: BLE001 - a malformed multipart body is the client's error
        raise InvalidRequestError(f"Could not read the multipart form: {exc}. Send multipart/form-data with a "
                                  "`file` field.") from None
    try:
        data: dict[str, Any] = {}
        for key, value in form.multi_items():
            if isinstance(value, str):  # `a[b]` fields (the openai SDK's nested values) become {"a": {"b": ...}}
                outer, _, inner = key.partition("[")
                if inner.endswith("]"):
                    data.setdefault(outer, {})[inner[:-1]] = value
                else:
                    data[key] = value
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidRequestError("Missing required parameter 'file'; send the file as a multipart "
                                      "field named `file`.", param="file")
        data["file"] = await upload.read()
        data["filename"] = upload.filename or "upload"
    finally:
        await form.close()
    data.update(http.path_params)
    return build_request(route, data)


async def _read_request(route: Route, http: Request) -> BaseModel:
    if route.body == "multipart":
        return await _read_multipart(route, http)
    if route.method == "GET" or route.method == "DELETE":
        data: dict[str, Any] = {}
        for key, value in http.query_params.multi_items():
            nested = _NESTED_PARAM.fullmatch(key)  # metadata[key]=value, as the openai SDK sends a dict
            if nested is not None:
                data.setdefault(nested[1], {})[nested[2]] = value
            else:
                data[key] = value
        data.update(http.path_params)
        return build_request(route, data)
    body = await http.body()
    if not route.path_params:
        return build_request_json(route, body or b"{}")
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}. Send a JSON object.",
                                  code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("The request body must be a JSON object; send {...} with the operation's fields.")
    data.update(http.path_params)
    return build_request(route, data)


def make_endpoint(route: Route, method: Callable[[Any], Awaitable[Any]]) -> Endpoint:
    where = f"{route.method} {route.path}"

    async def endpoint(http: Request) -> Response:
        token = None
        try:
            raw = http.headers.get(PROVIDER_DATA_HEADER)
            if raw is not None:
                token = provider_data.set(parse_provider_data(raw))
            request = await _read_request(route, http)
            result = await method(request)
            cached = cache_status.get()
            headers = {"x-stackkit-cache": cached} if cached is not None else None
            if wants_stream(route, request):
                return SSEResponse(result, where, contextvars.copy_context(), route.framing,
                                   [(b"x-stackkit-cache", cached.encode())] if cached is not None else None)
            if isinstance(result, bytes):
                return Response(result, media_type="application/octet-stream", headers=headers)
            return Response(to_json(result), media_type=_JSON, headers=headers)
        except StackkitError as exc:
            return error_response(exc)
        except Exception as exc:  # noqa: BLE001 - never a bare 500 with a traceback
            return error_response(internal_error(exc, where))
        finally:
            if token is not None:
                provider_data.reset(token)

    endpoint.__name__ = route.name
    return endpoint


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        err: StackkitError = StackkitError(
            f"No route {request.method} {request.url.path}. GET /v1/inspect/routes lists every route.")
        err.status_code, err.error_type = 404, "not_found_error"
    else:
        err = StackkitError(f"{exc.detail} ({request.method} {request.url.path})")
        err.status_code, err.error_type = exc.status_code, "invalid_request_error"
    return error_response(err)


def create_app(stack: Stack) -> Starlette:
    """The ASGI app serving `stack`, generated from the route table."""
    served = set(stack.served_apis())
    routes = [r for r in route_table() if r.api in served]
    http_routes = []
    for route in routes:
        assert route.api is not None
        http_routes.append(HTTPRoute(route.path, make_endpoint(route, stack.operation(route)),
                                     methods=[route.method], name=route.name))
    spec_body = orjson.dumps(openapi_spec(routes, version()))

    async def openapi(_: Request) -> Response:
        return Response(spec_body, media_type=_JSON)

    http_routes += [HTTPRoute("/openapi.json", openapi, methods=["GET"]),
                    HTTPRoute("/docs", _docs_page, methods=["GET"])]
    server = stack.config.server
    public = {"/v1/health"}
    if server.playground:
        from stackkit.playground import playground_routes

        page_routes, page_paths = playground_routes()
        http_routes += page_routes
        public |= page_paths
    files = next((p for p in stack.providers if p.api is Api.files), None)
    upload_limit = max(server.limits.max_request_bytes, int(getattr(files.config, "max_file_bytes", 0)) + 2**20
                       if files is not None else 0)
    middleware = [Middleware(GatewayMiddleware, max_request_bytes=server.limits.max_request_bytes,
                             access_log=server.access_log, upload_limit=upload_limit,
                             upload_paths=frozenset(r.path for r in routes if r.body == "multipart"))]
    if server.auth is not None:
        keys = {k.digest(): Principal(k.principal, k.attributes) for k in server.auth.api_keys}
        verifier = JwtVerifier(server.auth.oidc) if server.auth.oidc is not None else None
        stored = StoredKeys(stack.kvstore) if server.auth.stored_keys else None
        middleware.append(Middleware(AuthMiddleware, keys=keys, public=frozenset(public), verifier=verifier,
                                     stored=stored))
    if stack.telemetry is not None:
        from stackkit.core.telemetry import TelemetryMiddleware

        middleware.insert(1, Middleware(TelemetryMiddleware, telemetry=stack.telemetry))  # inside the access log
        if stack.telemetry.registry is not None:
            http_routes.append(HTTPRoute("/metrics", _metrics_endpoint(stack.telemetry), methods=["GET"]))
    if server.cors is not None:
        from starlette.middleware.cors import CORSMiddleware

        middleware.insert(0, Middleware(CORSMiddleware, allow_origins=server.cors.allow_origins,
                                        allow_methods=server.cors.allow_methods,
                                        allow_headers=server.cors.allow_headers,
                                        allow_credentials=server.cors.allow_credentials))
    app = Starlette(routes=http_routes, middleware=middleware,
                    exception_handlers={StarletteHTTPException: _http_error})
    app.state.stack = stack
    return app


class StackApp:
    """A stackkit server as an ASGI app that builds its stack in a lifespan, so it runs under any ASGI
    server or inside another application. In a FastAPI (or Starlette) app::

        stack = StackApp("run.yaml")
        app = FastAPI(lifespan=stack.lifespan)   # mounted apps get no lifespan of their own
        app.mount("/ai", stack)                  # OpenAI-compatible at /ai/v1/...

    Run alone (``uvicorn module:stack``) it handles its own lifespan events.
    """

    def __init__(self, config: RunConfig | str | os.PathLike[str]) -> None:
        self.config = config
        self.stack: Stack | None = None
        self._app: Starlette | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, _: object = None) -> AsyncIterator[None]:
        self.stack = await Stack.create(self.config)
        try:
            self._app = create_app(self.stack)
            self.stack.start()
            yield
        finally:
            self._app = None
            stack, self.stack = self.stack, None
            await stack.shutdown()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._serve_lifespan(receive, send)
        elif self._app is None:
            error = ProviderUnavailableError("The stack is not started: run StackApp.lifespan in your app's "
                                             "lifespan (FastAPI(lifespan=stack.lifespan)).")
            await error_response(error)(scope, receive, send)
        else:
            await self._app(scope, receive, send)

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        manager = self.lifespan()
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await manager.__aenter__()
                except Exception as exc:  # noqa: BLE001 - reported to the server, which stops
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await manager.__aexit__(None, None, None)
                await send({"type": "lifespan.shutdown.complete"})
                return


_DOCS = """<!doctype html><html><head><title>stackkit API</title><meta charset="utf-8">
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});</script></body></html>"""


async def _docs_page(request: Request) -> Response:
    return HTMLResponse(_DOCS)


def _metrics_endpoint(telemetry: Any) -> Callable[[Request], Awaitable[Response]]:
    async def metrics(_: Request) -> Response:
        return Response(telemetry.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return metrics


def _banner(stack: Stack, host: str, port: int) -> str:
    lines = [f"stackkit {version()} serving '{stack.config.distro_name}' at http://{host}:{port}/v1"]
    for p in stack.providers:
        lines.append(f"  {p.api.value:<10} {p.provider_id} ({p.spec.provider_type})")
    if not any(p.api is Api.inference for p in stack.providers):
        lines.append("  inference  no provider enabled")
    table = stack.tables.get(Api.inference)
    models = [r.identifier for r in table.all()] if table is not None else []
    if models:
        lines.append(f"  models: {', '.join(models)}")
    for hint in stack.config.disabled_hints:
        lines.append(f"  off: {hint}")
    lines.append(f'  OpenAI SDK: OpenAI(base_url="http://{host}:{port}/v1", api_key="none")')
    if stack.config.server.playground:
        lines.append(f"  playground: http://{host}:{port}/playground/")
    return "\n".join(lines)


def configure_logging() -> None:
    level = os.environ.get("STACKKIT_LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("stackkit")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


async def serve_async(config: RunConfig, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    host = host or config.server.host
    port = config.server.port if port is None else port
    sock = _bind(host, port)  # before the stack: a taken port is one clear line, not a traceback
    stack = await Stack.create(config)
    try:
        app = create_app(stack)
        uv_config = uvicorn.Config(app, host=host, port=port, loop="none", http="httptools", lifespan="off",
                                   access_log=False, log_level="warning", timeout_graceful_shutdown=10,
                                   server_header=False)
        server = uvicorn.Server(uv_config)
        stack.start()
        if stack.state_lock is not None:
            stack.state_lock.announce(f"http://{host}:{port}/v1")
        print(_banner(stack, host, port), file=sys.stderr, flush=True)
        # uvicorn handles SIGINT/SIGTERM gracefully, then re-raises the signal with the previous handler:
        # make that handler a no-op so the providers below are shut down and the exit is clean.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: None)
        await server.serve(sockets=[sock])
        print("stackkit: shut down cleanly", file=sys.stderr, flush=True)
    finally:
        await stack.shutdown()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        taken = exc.errno == errno.EADDRINUSE
        raise StackkitError(f"port {port} on {host} is already in use (another server?); pick another with --port"
                            if taken else f"cannot listen on {host}:{port}: {exc.strerror}; check --host and --port"
                            ) from None
    sock.set_inheritable(True)
    return sock


def serve(distro_or_file: str, host: str | None = None, port: int | None = None) -> None:
    """`stackkit run`: load the config, build the stack and serve it until SIGINT/SIGTERM."""
    configure_logging()
    config = load_config(distro_or_file)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve_async(config, host, port))
    else:
        uvloop.run(serve_async(config, host, port))
