"""OpenAI's wire format where clients care: streamed tool calls through the openai SDK's own stream
helper, no nulls OpenAI omits, content parts OpenAI accepts, and the model named as the client named it.
The upstream is a real HTTP server that streams exactly as OpenAI does (tests/echo_upstream.py)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from stackkit.core.config import parse_config
from stackkit.testing.live_server import LiveServer
from tests.echo_upstream import EchoUpstream

CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER: Any = [{"type": "function", "function": {"name": "get_weather", "description": "weather in a city",
                                             "parameters": CITY}}]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with EchoUpstream() as url:
        config = parse_config(textwrap.dedent(f"""
            providers:
              inference:
                - {{provider_id: up, provider_type: remote::openai, config: {{base_url: "{url}", api_key: "sk-x"}}}}
            registered_resources:
              models: [{{model_id: fast, provider_id: up, provider_model_id: gpt-x}}]
            storage: {{backends: {{m: {{type: memory}}}}, stores: {{registry: m}}}}
            """), env={})
        with LiveServer(config) as live:
            yield live.base_url


def test_sdk_stream_helper_assembles_a_streamed_tool_call(server: str) -> None:
    with openai.OpenAI(base_url=server, api_key="none", max_retries=0) as sdk, sdk.chat.completions.stream(
            model="fast", messages=[{"role": "user", "content": "weather in Paris?"}], tools=WEATHER) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls is not None
    call = calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    assert final.choices[0].finish_reason == "tool_calls" and final.model == "fast"
    assert "tool_calls.function.arguments.done" in events


def test_streamed_chunks_leave_out_what_openai_leaves_out(server: str) -> None:
    body = {"model": "fast", "stream": True, "tools": WEATHER, "messages": [{"role": "user", "content": "hi"}]}
    lines = [line for line in httpx.post(f"{server}/chat/completions", json=body, timeout=10).text.splitlines()
             if line.startswith("data: {")]
    chunks = [json.loads(line[6:]) for line in lines]
    assert chunks and all(c["model"] == "fast" for c in chunks)
    for chunk in chunks:
        assert "usage" not in chunk
        delta = chunk["choices"][0]["delta"]
        assert None not in delta.values(), delta
        for call in delta.get("tool_calls", []):
            assert None not in call.values() and None not in call.get("function", {}).values(), call
    continuations = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[2:-1]]
    assert continuations and all(set(c) == {"index", "function"} for c in continuations)


@pytest.mark.parametrize("part", [
    {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
])
def test_content_parts_openai_accepts_are_passed_on(server: str, part: dict[str, Any]) -> None:
    with openai.OpenAI(base_url=server, api_key="none", max_retries=0) as sdk:
        out = sdk.chat.completions.create(model="fast", messages=[
            {"role": "user", "content": [{"type": "text", "text": "what is this?"}, part]}])  # type: ignore[misc, list-item]
    assert out.choices[0].message.content == "Bearer sk-x"


def test_a_bad_content_part_names_the_field(server: str) -> None:
    with openai.OpenAI(base_url=server, api_key="none", max_retries=0) as sdk, \
            pytest.raises(openai.BadRequestError) as err:
        sdk.chat.completions.create(model="fast", messages=[
            {"role": "user", "content": [{"type": "text"}]}])  # type: ignore[misc, list-item, typeddict-item]
    assert err.value.param == "messages.0.content.0.text"


def test_models_named_by_provider_come_back_under_that_name(server: str) -> None:
    with openai.OpenAI(base_url=server, api_key="none", max_retries=0) as sdk:
        assert sdk.chat.completions.create(model="up/gpt-x", messages=[{"role": "user", "content": "hi"}]
                                           ).model == "up/gpt-x"
