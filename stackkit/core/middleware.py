"""The ASGI middleware on the hot path: request id, body size limit and access log (auth is in
core/auth.py).

Raw ASGI (no BaseHTTPMiddleware) so it adds microseconds, not milliseconds.
"""

from __future__ import annotations

import logging
import os
import time

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stackkit.errors import RequestTooLargeError

access_log = logging.getLogger("stackkit.access")


class GatewayMiddleware:
    """Request ids, the body size limit (uploads get the files provider's own limit) and the access log."""

    def __init__(self, app: ASGIApp, max_request_bytes: int, access_log: bool = True, upload_limit: int = 0,
                 upload_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.access_log = access_log
        self.upload_limit = max(upload_limit, max_request_bytes)
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = b""
        length = -1
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value[:128]
            elif name == b"content-length":
                length = int(value) if value.isdigit() else -1
        if not request_id:
            request_id = os.urandom(12).hex().encode()
        status = 0
        limit = self.upload_limit if scope["path"] in self.upload_paths else self.max_request_bytes

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        if length > limit:
            await self._too_large(send_with_id, limit)
        else:
            received = 0

            async def receive_limited() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise RequestTooLargeError(_too_large_text(limit))
                return message

            await self.app(scope, receive_limited, send_with_id)
        if self.access_log and access_log.isEnabledFor(logging.INFO):
            who = scope.get("stackkit.principal")
            trace_id = scope.get("stackkit.trace_id")
            access_log.info(orjson.dumps({
                "method": scope["method"], "path": scope["path"], "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 3), "request_id": request_id.decode(),
                **({"principal": who} if who else {}), **({"trace_id": trace_id} if trace_id else {}),
            }).decode())

    @staticmethod
    async def _too_large(send: Send, limit: int) -> None:
        body = orjson.dumps(RequestTooLargeError(_too_large_text(limit)).to_openai_body())
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _too_large_text(limit: int) -> str:
    return (f"The request body is larger than this server's limit of {limit} bytes "
            "(server.limits.max_request_bytes in run.yaml).")
