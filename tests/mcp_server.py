"""A real MCP server (the `mcp` SDK's FastMCP, streamable HTTP) on 127.0.0.1 for the Responses tests."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import uvicorn
from mcp.server.fastmcp import FastMCP

from tests.chroma_server import free_port

CALLS: list[str] = []  # every tool call any test server ran, in order (servers run in the test process)
METHODS: list[str] = []  # every JSON-RPC method any test server was sent (initialize, tools/list, ...)
AUTHORIZATIONS: list[str] = []  # the Authorization header of each request that carried one


def counting(app: Any) -> Any:
    """The ASGI app, noting the JSON-RPC method of each request it is sent."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        auth = dict(scope["headers"]).get(b"authorization")
        if auth:
            AUTHORIZATIONS.append(auth.decode())
        messages = [await receive()]
        while messages[-1].get("more_body"):
            messages.append(await receive())
        body = b"".join(m.get("body", b"") for m in messages)
        for method in (b"initialize", b"tools/list", b"tools/call"):
            if b'"method":"' + method + b'"' in body.replace(b" ", b""):
                METHODS.append(method.decode())
        replay = iter(messages)

        async def receive_again() -> Any:
            return next(replay, None) or await receive()

        await app(scope, receive_again, send)

    return wrapped


def build() -> FastMCP:
    server = FastMCP("demo", host="127.0.0.1")

    @server.tool()
    def shout(text: str) -> str:
        """Say it louder."""
        CALLS.append("shout")
        return text.upper()

    @server.tool()
    def launch_codes(reason: str) -> str:
        """Never to be allowed."""
        CALLS.append("launch_codes")
        return "0000"

    @server.tool()
    def explode(reason: str) -> str:
        """Always fails."""
        raise RuntimeError("the tool broke on purpose")

    return server


class McpServer:
    """``with McpServer() as url:`` a streamable-HTTP MCP endpoint; `stop()` takes it down mid-test."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        app = counting(build().streamable_http_app())
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                   timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("the MCP server did not start")
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}/mcp"

    def stop(self) -> None:
        """Go down as a crashed server would: open connections (a client's SSE stream) are cut."""
        self.server.should_exit = self.server.force_exit = True
        self.thread.join(15)

    def __exit__(self, *exc: Any) -> None:
        self.stop()
