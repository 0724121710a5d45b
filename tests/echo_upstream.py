"""A real OpenAI-compatible HTTP server for tests that need to see what a provider sends upstream:
its chat completions answer with the request's Authorization header as the content (streamed in
OpenAI's exact wire format when asked, tool calls included) and note any ``traceparent`` header in
``SEEN_TRACEPARENT``, and its moderations endpoint records the Authorization header of every call in
``SEEN_AUTH``."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

SEEN_AUTH: list[str] = []
SEEN_TRACEPARENT: list[str] = []  # the W3C trace context of each chat completion request, when it had one


def _sse(events: list[dict[str, Any]]) -> StreamingResponse:
    async def body() -> Any:
        for event in events:
            yield f"data: {json.dumps(event, separators=(',', ':'))}\n\n"
            await asyncio.sleep(0)
        yield "data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream")


def _stream_events(body: dict[str, Any], text: str) -> list[dict[str, Any]]:
    """A stream as OpenAI sends it: nulls only where OpenAI sends them; tool-call continuation deltas
    carry only the index and an arguments fragment."""
    head = {"id": "chatcmpl-echo", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
            "system_fingerprint": "fp_echo"}

    def event(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    events = [event({"role": "assistant", "content": "", "refusal": None})]
    if body.get("tools"):
        name = body["tools"][0]["function"]["name"]
        events[0]["choices"][0]["delta"]["content"] = None
        events.append(event({"tool_calls": [{"index": 0, "id": "call_echo", "type": "function",
                                             "function": {"name": name, "arguments": ""}}]}))
        for part in ('{"ci', 'ty": "Pa', 'ris"}'):
            events.append(event({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
        events.append(event({}, "tool_calls"))
    else:
        step = int(body.get("echo_chunk_chars", 3))
        events += [event({"content": text[i:i + step]}) for i in range(0, len(text), step)]
        events.append(event({}, "stop"))
    return events


async def messages(request: Request) -> Response:
    """Anthropic's Messages endpoint answering with a body that is not a message (a proxy's error page)."""
    return Response(b"<html>upstream proxy error</html>", media_type="text/html")


async def moderations(request: Request) -> JSONResponse:
    SEEN_AUTH.append(request.headers.get("authorization", "<none>"))
    body = await request.json()
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    return JSONResponse({"id": "modr-echo", "model": body.get("model", "m"), "results": [
        {"flagged": "forbidden" in text, "categories": {"violence": "forbidden" in text},
         "category_scores": {"violence": float("forbidden" in text)}} for text in inputs]})


async def chat(request: Request) -> Response:
    if "traceparent" in request.headers:
        SEEN_TRACEPARENT.append(request.headers["traceparent"])
    body = await request.json()
    if "bogus_field" in body:  # as OpenAI answers a field it does not know
        return JSONResponse({"error": {"message": "upstream rejects 'bogus_field': Unrecognized request argument",
                                       "type": "invalid_request_error", "param": "bogus_field", "code": None}},
                            status_code=400)
    if body.get("echo_garbage"):
        return Response(b"<html>bad gateway page</html>", media_type="text/html")
    if body.get("stream"):
        text = body["messages"][-1]["content"] if body.get("echo_user") else \
            request.headers.get("authorization", "<none>")
        return _sse(_stream_events(body, text))
    return JSONResponse({"id": "chatcmpl-echo", "object": "chat.completion", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop", "message": {
                             "role": "assistant", "content": request.headers.get("authorization", "<none>")}}]})


async def models(request: Request) -> JSONResponse:
    return JSONResponse({"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "echo"}
                                                    for m in ("gpt-allowed", "gpt-hidden", "text-embed-3")]})


class EchoUpstream:
    def __init__(self) -> None:
        app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models),
                                Route("/v1/moderations", moderations, methods=["POST"]),
                                Route("/v1/messages", messages, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("echo upstream did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)
