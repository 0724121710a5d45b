"""Nothing is silently dropped: a field nobody on the path honours is a 400 naming it (and the closest known
one); remote OpenAI-compatible providers forward extras and their upstream's 400 comes back; local
providers reject what they do not do; bad embeddings, tool-call JSON and upstream bodies get the right
status; an over-limit chunked upload is a 413."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from stackkit import LibraryClient
from stackkit.core.config import parse_config
from stackkit.testing.live_server import LiveServer
from tests.conftest import fake_stack_config
from tests.echo_upstream import EchoUpstream

HI = [{"role": "user", "content": "hi"}]


def test_a_typo_names_the_field_it_meant(client: Any) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="echo", messages=HI, extra_body={"max_token": 5})
    assert err.value.param == "max_token" and "did you mean 'max_tokens'" in str(err.value)


def test_a_local_provider_rejects_unknown_fields(client: Any) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="echo", messages=HI, extra_body={"top_k": 5})
    assert err.value.param == "top_k" and "provider 'fake'" in str(err.value)


@pytest.mark.parametrize("bad", ["", [""], [], ["ok", ""]])
def test_empty_embedding_input_is_a_400(client: Any, bad: Any) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="embedder", input=bad)
    assert err.value.param == "input"


@pytest.mark.parametrize("embedding", [[0.1] * 3, [float("nan")] * 16, [float("inf")] + [0.0] * 15])
def test_ragged_or_non_finite_vectors_are_a_400(client: Any, embedding: list[float]) -> None:
    store = client.vector_stores.create(name="v")
    chunks = [{"content": "a", "embedding": [0.5] * 16}, {"content": "b", "embedding": embedding}]
    if isinstance(client, LibraryClient):
        with pytest.raises(openai.BadRequestError) as err:
            client.vector_io.insert(vector_store_id=store.id, chunks=chunks)
        assert err.value.param == "chunks.1.embedding"
        return
    # NaN and Infinity are not JSON: send them as Python's json module writes them
    import json

    body = json.dumps({"vector_store_id": store.id, "chunks": chunks})
    r = httpx.post(f"{client.base_url}vector-io/insert", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] in ("chunks.1.embedding", None)


def test_an_over_limit_chunked_upload_is_a_413(tmp_path: Path) -> None:
    config = fake_stack_config(tmp_path)
    config.providers["files"][0].config["max_file_bytes"] = 100_000  # type: ignore[index]
    with LiveServer(config) as server:
        def body() -> Iterator[bytes]:  # no content-length: chunked transfer encoding
            yield b"--b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n"
            yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\r\n"
            for _ in range(40):
                yield b"x" * 65536
            yield b"\r\n--b--\r\n"

        r = httpx.post(f"{server.base_url}/files", content=body(),
                       headers={"content-type": "multipart/form-data; boundary=b"}, timeout=30)
        assert r.status_code == 413, r.text
        assert "limit" in r.json()["error"]["message"]
        small = httpx.post(f"{server.base_url}/files", files={"file": ("a.txt", b"x" * 50_000)},
                           data={"purpose": "assistants"})
        assert small.status_code == 200  # over server.limits.max_request_bytes (64 KB), under the files limit


def test_remote_openai_forwards_extras_and_returns_the_upstreams_400() -> None:
    with EchoUpstream() as url:
        config = parse_config(textwrap.dedent(f"""
            providers:
              inference:
                - {{provider_id: up, provider_type: remote::openai, config: {{base_url: "{url}", api_key: "k"}}}}
            storage: {{backends: {{m: {{type: memory}}}}, stores: {{registry: m}}}}
            """), env={})
        with LibraryClient(config) as client:
            out = client.chat.completions.create(model="up/gpt-x", messages=HI, extra_body={"top_k": 3})
            assert out.choices[0].message.content == "Bearer k"
            with pytest.raises(openai.BadRequestError, match="upstream rejects 'bogus_field'"):
                client.chat.completions.create(model="up/gpt-x", messages=HI, extra_body={"bogus_field": 1})


def test_anthropic_rejects_what_it_cannot_do_and_bad_tool_json() -> None:
    from stackkit.apis.inference import ChatCompletionRequest
    from stackkit.errors import InvalidRequestError
    from stackkit.providers.remote.anthropic import AnthropicConfig, to_messages_request

    config = AnthropicConfig(api_key="k")  # type: ignore[arg-type]
    for field, value in (("n", 2), ("seed", 1), ("logprobs", True), ("presence_penalty", 0.5)):
        request = ChatCompletionRequest.model_validate({"model": "c", "messages": HI, field: value})
        with pytest.raises(InvalidRequestError) as err:
            to_messages_request(request, config)
        assert err.value.param == field
    broken = ChatCompletionRequest.model_validate({"model": "c", "messages": [
        *HI, {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function",
                                                   "function": {"name": "f", "arguments": "{not json"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "x"}]})
    with pytest.raises(InvalidRequestError, match="tool call 't1' are not valid JSON"):
        to_messages_request(broken, config)


def test_local_generation_rejects_what_it_cannot_guarantee() -> None:
    from stackkit.apis.inference import ChatCompletionRequest
    from stackkit.errors import InvalidRequestError
    from stackkit.providers.utils.local_chat import check_sampling

    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tools": tools, "tool_choice": "required"}, "tool_choice"),
        ({"tools": tools, "tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}, "response_format"),
        ({"n": 2}, "n"), ({"frequency_penalty": 1.0}, "frequency_penalty"),
    ]
    for extra, param in cases:
        with pytest.raises(InvalidRequestError) as err:
            check_sampling(ChatCompletionRequest.model_validate({"model": "m", "messages": HI, **extra}), "local")
        assert err.value.param == param


def test_a_malformed_upstream_body_is_a_502() -> None:
    with EchoUpstream() as url:
        config = parse_config(textwrap.dedent(f"""
            providers:
              inference:
                - {{provider_id: up, provider_type: remote::openai, config: {{base_url: "{url}", api_key: "k"}}}}
                - {{provider_id: claude, provider_type: remote::anthropic, config: {{base_url: "{url}", api_key: "k"}}}}
            storage: {{backends: {{m: {{type: memory}}}}, stores: {{registry: m}}}}
            """), env={})
        with LiveServer(config) as server, openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as sdk:
            for model, extra in (("up/gpt-x", {"echo_garbage": True}), ("claude/claude-x", None)):
                with pytest.raises(openai.InternalServerError) as err:
                    sdk.chat.completions.create(model=model, messages=HI, extra_body=extra)  # type: ignore[arg-type]
                assert err.value.status_code == 502, err.value
