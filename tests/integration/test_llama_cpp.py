"""inline::llama-cpp on the real packaged model (SmolLM2-135M-Instruct, GGUF) through llama-cpp-python: chat
with the GGUF's template, streaming equal to the whole answer, stop strings, seeds, max_tokens, usage,
completions; the 20 JSON schemas and forced tool calls enforced by GBNF grammars; 8 concurrent requests
decoded together in one context; a client that leaves frees its sequence; a prompt over the context is a
clear 400."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import pytest
import pytest_asyncio

from stackkit import AsyncLibraryClient
from stackkit.core.config import parse_config
from tests.integration.test_smollm2 import (
    NAME,
    SCHEMAS,
    _obj,
    auto_calls_when_asked_and_answers_after_the_result,
    complete_json_within_any_budget,
)

pytest.importorskip("llama_cpp", reason="inline::llama-cpp needs llama-cpp-python: pip install 'stackkit[llama-cpp]'")
pytestmark = [pytest.mark.asyncio(loop_scope="module")]
MODEL = "smollm2-135m-instruct"
# SmolLM2's template adds its own system prompt when there is none; under llama.cpp's Q4 arithmetic that one
# sends greedy decoding off into French (llama-cpp-python's own create_chat_completion answers the same), so
# these prompts bring a plain one.
SYSTEM: Any = {"role": "system", "content": "You are a helpful assistant."}
FRANCE: Any = [SYSTEM, {"role": "user", "content": "What is the capital of France?"}]
WEATHER_ARGS = _obj({"city": NAME, "unit": {"enum": ["C", "F"]}})
WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                                             "parameters": WEATHER_ARGS}},
           {"type": "function", "function": {"name": "get_time", "description": "Current time",
                                             "parameters": _obj({"zone": NAME})}}]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def llama() -> AsyncIterator[AsyncLibraryClient]:
    config = parse_config(textwrap.dedent(f"""
        providers:
          inference:
            - {{provider_id: cpp, provider_type: inline::llama-cpp, config: {{model: {MODEL}, max_sequences: 8,
                n_ctx: 1024}}}}
        registered_resources:
          models: [{{model_id: {MODEL}, provider_id: cpp}}]
        storage: {{backends: {{m: {{type: memory}}}}, stores: {{registry: m}}}}
        """), env={})
    async with AsyncLibraryClient(config) as client:
        await client.wait_ready(120)
        yield client


def _engine(client: AsyncLibraryClient) -> Any:
    assert client.stack is not None
    provider = next(p.impl for p in client.stack.providers if p.provider_id == "cpp")
    return provider.loading._future.result()


async def test_chat_stream_stop_seed_and_usage(llama: AsyncLibraryClient) -> None:
    whole = await llama.chat.completions.create(model=MODEL, messages=FRANCE, temperature=0)
    text = whole.choices[0].message.content
    assert "Paris" in text and whole.choices[0].finish_reason == "stop"
    assert whole.usage.prompt_tokens > 10 and whole.usage.completion_tokens > 3
    pieces = [c async for c in await llama.chat.completions.create(model=MODEL, messages=FRANCE, temperature=0,
                                                                   stream=True)]
    assert "".join(c.choices[0].delta.content or "" for c in pieces if c.choices) == text
    cut = await llama.chat.completions.create(model=MODEL, messages=FRANCE, temperature=0, stop=["Paris"])
    assert "Paris" not in cut.choices[0].message.content and cut.choices[0].finish_reason == "stop"
    story: Any = [SYSTEM, {"role": "user", "content": "Write a long story about a dragon."}]
    short = await llama.chat.completions.create(model=MODEL, messages=story, temperature=0, max_tokens=5)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 5
    seeded = [await llama.chat.completions.create(model=MODEL, messages=story, temperature=1.0, seed=seed,
                                                  max_tokens=24) for seed in (7, 7, 8)]
    texts = [s.choices[0].message.content for s in seeded]
    assert texts[0] == texts[1] and texts[0] != texts[2]
    plain = await llama.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=4,
                                           temperature=0)
    assert plain.choices[0].text.strip() and plain.usage.completion_tokens <= 4


async def test_twenty_schemas_each_answered_with_valid_json(llama: AsyncLibraryClient) -> None:
    async def answer(prompt: str, schema: dict[str, Any]) -> None:
        out = await llama.chat.completions.create(
            model=MODEL, temperature=0, max_tokens=200, messages=[{"role": "user", "content": prompt}],
            response_format={"type": "json_schema", "json_schema": {"name": "out", "schema": schema}})
        jsonschema.validate(json.loads(out.choices[0].message.content), schema)

    await asyncio.gather(*(answer(prompt, schema) for prompt, schema in SCHEMAS))
    obj = await llama.chat.completions.create(model=MODEL, messages=FRANCE, temperature=0, max_tokens=60,
                                              response_format={"type": "json_object"})
    assert isinstance(json.loads(obj.choices[0].message.content), dict)


async def test_json_is_complete_within_any_token_budget(llama: AsyncLibraryClient) -> None:
    await complete_json_within_any_budget(llama)


async def test_a_schema_llama_cpp_cannot_parse_is_a_400_not_a_crash(llama: AsyncLibraryClient) -> None:
    import openai

    value = {"$defs": {"value": {"anyOf": [{"type": "string", "maxLength": 8}, {"type": "array", "items": {
        "$ref": "#/$defs/value"}}]}}, "type": "object", "properties": {"a": {"$ref": "#/$defs/value"}}}
    # its converter names the rule "value-" but refers to "value": a grammar llama.cpp cannot parse
    with pytest.raises(openai.BadRequestError, match="rename \\$defs"):
        await llama.chat.completions.create(model=MODEL, messages=FRANCE, response_format={
            "type": "json_schema", "json_schema": {"name": "v", "schema": value}})
    out = await llama.chat.completions.create(model=MODEL, messages=FRANCE, temperature=0)
    assert "Paris" in out.choices[0].message.content


async def test_auto_tool_choice_calls_when_asked(llama: AsyncLibraryClient) -> None:
    await auto_calls_when_asked_and_answers_after_the_result(llama)


async def test_a_forced_tool_call_is_a_real_call(llama: AsyncLibraryClient) -> None:
    for choice in ("required", {"type": "function", "function": {"name": "get_weather"}}):
        out = await llama.chat.completions.create(
            model=MODEL, temperature=0, max_tokens=80, tools=WEATHER, tool_choice=choice,
            messages=[{"role": "user", "content": "How is the weather in Lyon?"}])
        (call,) = out.choices[0].message.tool_calls
        assert out.choices[0].finish_reason == "tool_calls"
        if choice != "required":
            assert call.function.name == "get_weather"
        if call.function.name == "get_weather":
            jsonschema.validate(json.loads(call.function.arguments), WEATHER_ARGS)


async def test_eight_concurrent_requests_are_decoded_together(llama: AsyncLibraryClient) -> None:
    engine = _engine(llama)
    engine.max_batch_seen = 0
    story: Any = [SYSTEM, {"role": "user", "content": "Write a long story about a dragon."}]
    outs = await asyncio.gather(*(llama.chat.completions.create(model=MODEL, messages=story, temperature=0,
                                                                max_tokens=32) for _ in range(8)))
    assert engine.max_batch_seen >= 6  # sequences shared llama_decode calls
    assert len({o.choices[0].message.content for o in outs}) == 1  # same greedy answer, whatever the batch


async def test_a_client_that_leaves_frees_its_sequence(llama: AsyncLibraryClient) -> None:
    engine = _engine(llama)
    story: Any = [SYSTEM, {"role": "user", "content": "Write a long story about a dragon."}]
    for _ in range(10):  # more than the 8 slots: each left stream must have given its slot back
        stream = await llama.chat.completions.create(model=MODEL, messages=story, stream=True, max_tokens=400)
        async for _chunk in stream:
            break
        await stream.close()
    deadline = asyncio.get_running_loop().time() + 10
    while len(engine.free) < 8:
        assert asyncio.get_running_loop().time() < deadline, "a sequence was never freed"
        await asyncio.sleep(0.05)
    out = await llama.chat.completions.create(model=MODEL, messages=FRANCE, temperature=0)
    assert "Paris" in out.choices[0].message.content


async def test_a_prompt_over_the_context_is_a_clear_400(llama: AsyncLibraryClient) -> None:
    import openai

    with pytest.raises(openai.BadRequestError, match="context of 1024 tokens"):
        await llama.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "word " * 2000}])


async def test_small_models_get_16_bit_weights_converted_once_and_as_stored_keeps_the_file(
        llama: AsyncLibraryClient) -> None:
    """By default (weights: auto) a small GGUF is served re-written with 16-bit weights (what llama.cpp batches
    fastest on CPU, with unquantized activations): converted once into the model cache. `as-stored` serves the
    4-bit file itself; its activations are quantized to 8 bits, and without a system prompt SmolLM2 then
    answers the France question in broken French where the 16-bit weights answer "Paris"."""
    from stackkit.providers.inline.llama_cpp import _cpu_has_bf16
    from stackkit.providers.utils.model_cache import fetch, resolve

    source = resolve(MODEL)
    assert source.converted is not None
    kind = "bf16" if _cpu_has_bf16() else "f16"
    converted = source.converted.with_name(f"{source.converted.name}-{kind}.gguf")
    engine = _engine(llama)
    assert engine.path == str(converted) and kind.upper() in engine.description()
    assert converted.stat().st_size > 2.5 * 98_000_000  # 16 bits a weight, not 4.5
    bare: Any = [{"role": "user", "content": "What is the capital of France?"}]
    out = await llama.chat.completions.create(model=MODEL, messages=bare, temperature=0, max_tokens=20)
    assert "Paris" in out.choices[0].message.content
    config = parse_config(textwrap.dedent(f"""
        providers:
          inference:
            - {{provider_id: cpp, provider_type: inline::llama-cpp, config: {{model: {MODEL}, weights: as-stored,
                n_ctx: 512, max_sequences: 2}}}}
        registered_resources:
          models: [{{model_id: {MODEL}, provider_id: cpp}}]
        storage: {{backends: {{m: {{type: memory}}}}, stores: {{registry: m}}}}
        """), env={})
    async with AsyncLibraryClient(config) as client:
        await client.wait_ready(120)
        assert _engine(client).path == str(fetch(MODEL)) and "Q4_1" in _engine(client).description()
        out = await client.chat.completions.create(model=MODEL, messages=FRANCE, temperature=0)
        assert "Paris" in out.choices[0].message.content


async def test_a_cached_prompt_prefix_is_not_prefilled_again_and_answers_the_same(llama: AsyncLibraryClient) -> None:
    engine = _engine(llama)
    first = await llama.chat.completions.create(model=MODEL, messages=FRANCE, temperature=0)
    story: Any = [SYSTEM, {"role": "user", "content": "Write a long story about a dragon."}]
    await asyncio.gather(*(llama.chat.completions.create(model=MODEL, messages=story, temperature=0, max_tokens=8)
                           for _ in range(8)))  # every slot now caches the story's prompt
    before = engine.reused
    again = await llama.chat.completions.create(model=MODEL, messages=FRANCE, temperature=0)
    assert again.choices[0].message.content == first.choices[0].message.content
    shared_system_prompt = engine.reused - before
    assert 5 <= shared_system_prompt < again.usage.prompt_tokens - 1  # the system prompt, not the question
    turn: Any = [*FRANCE, {"role": "assistant", "content": first.choices[0].message.content},
                 {"role": "user", "content": "And of Italy?"}]
    before = engine.reused
    follow = await llama.chat.completions.create(model=MODEL, messages=turn, temperature=0, max_tokens=20)
    assert engine.reused - before >= again.usage.prompt_tokens  # the whole first turn came from the cache
    assert follow.choices[0].message.content


async def test_n_choices_and_a_clear_400_for_logprobs(llama: AsyncLibraryClient) -> None:
    import openai

    story: Any = [SYSTEM, {"role": "user", "content": "Write a story about a dragon."}]
    kwargs: Any = {"model": MODEL, "messages": story, "temperature": 1.0, "max_tokens": 8, "seed": 5, "n": 3}
    first, again = [await llama.chat.completions.create(**kwargs) for _ in range(2)]
    assert [c.message.content for c in again.choices] == [c.message.content for c in first.choices]
    assert len({c.message.content for c in first.choices}) >= 2 and first.usage.completion_tokens == 24
    with pytest.raises(openai.BadRequestError, match="inline::transformers, which does") as err:
        await llama.chat.completions.create(model=MODEL, messages=FRANCE, logprobs=True)
    assert err.value.param == "logprobs"
