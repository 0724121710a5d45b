"""The record/replay plugin is honest: a request with no recording fails the test even when the code
under test catches the error; replayed streams arrive event by event; tests that do not record cannot
reach beyond this machine. The cassettes here are recorded against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import httpx
import pytest

from stackkit.testing.recording import recording
from tests.echo_upstream import EchoUpstream

STREAM = {"model": "m", "stream": True, "echo_user": True, "echo_chunk_chars": 4,
          "messages": [{"role": "user", "content": "one two three four five six"}]}


async def _post(url: str, body: dict[str, object]) -> list[bytes]:
    from httpx_aiohttp import AiohttpTransport

    async with httpx.AsyncClient(transport=AiohttpTransport()) as client, \
            client.stream("POST", f"{url}/chat/completions", json=body) as response:
        return [part async for part in response.aiter_raw()]


async def test_replayed_streams_arrive_event_by_event(tmp_path: Path) -> None:
    cassette = tmp_path / "stream.yaml"
    with EchoUpstream() as url:
        with recording(cassette, "record"):
            live = await _post(url, STREAM)
    with recording(cassette, "replay") as replayed:
        parts = await _post("http://127.0.0.1:9/v1", STREAM)  # nothing listens there: this is the cassette
    assert b"".join(parts) == b"".join(live)
    events = b"".join(live).count(b"\n\n")
    assert events > 5 and len(parts) == events and not replayed.stackkit_misses


async def test_a_miss_is_noted_even_when_caught(tmp_path: Path) -> None:
    cassette = tmp_path / "one.yaml"
    with EchoUpstream() as url:
        with recording(cassette, "record"):
            await _post(url, STREAM)
    with recording(cassette, "replay") as replayed:
        try:
            await _post("http://127.0.0.1:9/v1", {**STREAM, "messages": [{"role": "user", "content": "other"}]})
        except Exception:  # noqa: BLE001 - as a provider's model refresh or health check would
            pass
    assert replayed.stackkit_misses == ["POST /v1/chat/completions"]


def test_the_plugin_fails_a_test_whose_miss_was_caught(pytester: pytest.Pytester) -> None:
    (pytester.path / "tests" / "cassettes" / "test_inner").mkdir(parents=True)
    (pytester.path / "tests" / "cassettes" / "test_inner" / "test_swallows.yaml").write_text(
        "interactions: []\nversion: 1\n")
    pytester.makepyfile(test_inner=textwrap.dedent("""
        import httpx
        from httpx_aiohttp import AiohttpTransport

        async def test_swallows(cassette):
            try:
                async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
                    await client.get("http://127.0.0.1:9/v1/models")
            except Exception:
                pass
        """))
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret != 0
    result.assert_outcomes(passed=1, errors=1)  # the test body passed; the cassette's check failed it
    result.stdout.fnmatch_lines(["*1 request(s) had no recording*GET /v1/models*"])


def test_tests_that_do_not_record_cannot_leave_this_machine() -> None:
    assert socket.socket.connect.__qualname__.startswith("_stackkit_network_guard"), "the guard is not on"
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError, match="not on this machine"):
        sock.connect(("203.0.113.7", 9))  # refused by the guard before any packet is sent
    with pytest.raises(ConnectionRefusedError, match="not on this machine"):
        socket.getaddrinfo("api.openai.com", 443)
    with socket.socket() as server:  # this machine stays reachable
        server.bind(("127.0.0.1", 0))
        server.listen()
        socket.create_connection(server.getsockname(), timeout=2).close()
