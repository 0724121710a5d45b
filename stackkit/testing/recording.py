"""Record and replay provider HTTP traffic, on vcrpy, at the httpx layer.

Cassettes are YAML: JSON bodies are stored parsed (readable, diff-able), streams are stored
whole, auth headers are removed. Requests match on method, scheme, path, query and JSON body
(not host or port, so a cassette recorded against a server on a random port replays anywhere).

vcrpy patches httpx's built-in transports; stackkit's providers use aiohttp's transport under
httpx, so the same vcrpy stub is applied to it here. vcrpy patches aiohttp too: under httpx's
aiohttp transport that would record each request twice, so aiohttp itself is left unpatched.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import orjson
import yaml

SCRUBBED_HEADERS = (
    "authorization", "x-api-key", "api-key", "openai-organization", "cookie", "x-stackkit-provider-data", "host",
)


class RecordMode(enum.StrEnum):
    replay = "replay"  # never touch the network; an unrecorded request fails and names the cassette
    record = "record"  # re-record the cassette from scratch against the real service
    record_if_missing = "record-if-missing"  # record only when the cassette does not exist yet
    live = "live"  # no cassette at all


_VCR_MODES = {RecordMode.replay: "none", RecordMode.record: "all", RecordMode.record_if_missing: "once"}


def _parsed(text: Any) -> Any:
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError:
            return None
    if not isinstance(text, str) or not text.lstrip().startswith(("{", "[")):
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


class _JSONBodyYAML:
    """vcrpy serializer: YAML with JSON request and response bodies stored as parsed data."""

    @staticmethod
    def serialize(data: dict[str, Any]) -> str:
        for interaction in data.get("interactions", []):
            request, response = interaction["request"], interaction["response"]
            parsed = _parsed(request.get("body"))
            if parsed is not None:
                request["body"] = {"json": parsed}
            body = response.get("body") or {}
            parsed = _parsed(body.get("string"))
            if parsed is not None:
                response["body"] = {"json": parsed}
            elif isinstance(body.get("string"), bytes):
                body["string"] = body["string"].decode("utf-8", "replace")
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120, default_flow_style=None)

    @staticmethod
    def deserialize(text: str) -> dict[str, Any]:
        data: dict[str, Any] = yaml.safe_load(text) or {}
        for interaction in data.get("interactions", []):
            request, response = interaction["request"], interaction["response"]
            if isinstance(request.get("body"), dict) and "json" in request["body"]:
                request["body"] = orjson.dumps(request["body"]["json"]).decode()
            body = response.get("body") or {}
            if "json" in body:
                response["body"] = {"string": orjson.dumps(body["json"]).decode()}
        return data


def _json_body_matcher(r1: Any, r2: Any) -> None:
    a, b = _parsed(r1.body), _parsed(r2.body)
    if a is None or b is None:
        assert (r1.body or b"") == (r2.body or b""), "bodies differ"
    else:
        assert a == b, f"JSON bodies differ: {a!r} != {b!r}"


def _drop_response_cookies(response: dict[str, Any]) -> dict[str, Any]:
    headers = response.get("headers") or {}
    for name in list(headers):
        if name.lower() in ("set-cookie", "date"):
            del headers[name]
    return response


def build_vcr(mode: RecordMode) -> Any:
    import vcr

    recorder = vcr.VCR(
        record_mode=_VCR_MODES[mode],
        match_on=("method", "scheme", "path", "query", "json_body"),
        filter_headers=list(SCRUBBED_HEADERS),
        before_record_response=_drop_response_cookies,
        serializer="stackkit-yaml",
        decode_compressed_response=True,
    )
    recorder.register_serializer("stackkit-yaml", _JSONBodyYAML)
    recorder.register_matcher("json_body", _json_body_matcher)
    return recorder


class _EventStream(httpx.AsyncByteStream):
    """A replayed stream delivered one SSE event at a time, yielding to the loop in between, as a real
    server's would arrive (so consumers that stop early, and cancellation, are exercised)."""

    def __init__(self, body: bytes) -> None:
        self.events = [part + b"\n\n" for part in body.split(b"\n\n") if part]

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for event in self.events:
            await asyncio.sleep(0)
            yield event

    async def aclose(self) -> None:
        return None


def _replaying(stub: Any, misses: list[str]) -> Any:
    """`stub`, noting every request the cassette has no answer for (even when the code under test
    catches the error: a caught miss must still fail the test) and replaying streams event by event."""
    from vcr.errors import CannotOverwriteExistingCassetteException

    async def handle(self: Any, request: httpx.Request) -> httpx.Response:
        try:
            response: httpx.Response = await stub(self, request)
        except CannotOverwriteExistingCassetteException:
            misses.append(f"{request.method} {request.url.path}")
            raise
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            body = b"".join([part async for part in response.stream])  # type: ignore[union-attr]
            response.stream = _EventStream(body)
        return response

    return handle


@contextlib.contextmanager
def recording(path: str | Path, mode: RecordMode | str) -> Iterator[Any]:
    """Record or replay the HTTP traffic inside the block into/from the cassette at `path`. In replay
    mode the cassette's ``stackkit_misses`` lists the requests it had no recording for."""
    import aiohttp
    from httpx_aiohttp import AiohttpTransport
    from vcr.stubs import httpx_stubs

    mode = RecordMode(mode)
    path = Path(path)
    if mode is RecordMode.live:
        yield None
        return
    if mode is RecordMode.record and path.exists():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    aiohttp_request = aiohttp.ClientSession._request
    with build_vcr(mode).use_cassette(str(path)) as cassette:
        cassette.stackkit_misses = []
        stub = httpx_stubs.vcr_handle_async_request(cassette, AiohttpTransport.handle_async_request, httpx)
        if mode is RecordMode.replay:
            stub = _replaying(stub, cassette.stackkit_misses)
        with mock.patch.object(AiohttpTransport, "handle_async_request", stub), \
                mock.patch.object(aiohttp.ClientSession, "_request", aiohttp_request):
            yield cassette
