"""inline::transformers and inline::sentence-transformers, on real models loaded by the real provider
code: a tiny random Llama/GPT-2 the tests build (tokenizer trained with `tokenizers`, a chat template),
and the packaged all-MiniLM-L6-v2."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from stackkit import AsyncLibraryClient
from stackkit.apis.datatypes import Api
from stackkit.core.config import RunConfig, parse_config
from stackkit.errors import ConfigError, InvalidRequestError
from stackkit.testing.tiny_model import build_tiny_model

pytestmark = [pytest.mark.asyncio(loop_scope="module")]
HI = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-gpt2", arch="gpt2")


def local_config(model: Path, extra: str = "") -> RunConfig:
    return parse_config(textwrap.dedent(f"""
        providers:
          inference:
            - provider_id: local
              provider_type: inline::transformers
              config: {{model: "{model}", max_batch_size: 8{extra}}}
            - provider_id: st
              provider_type: inline::sentence-transformers
        registered_resources:
          models:
            - {{model_id: tiny, provider_id: local, provider_model_id: {model.name}}}
            - {{model_id: minilm, provider_id: st, provider_model_id: all-MiniLM-L6-v2, model_type: embedding}}
        storage: {{backends: {{m: {{type: memory}}}}, stores: {{registry: m}}}}
        """), env={})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def local(tiny_llama: Path) -> AsyncIterator[AsyncLibraryClient]:
    async with AsyncLibraryClient(local_config(tiny_llama)) as client:
        yield client


def provider(client: AsyncLibraryClient, pid: str) -> Any:
    assert client.stack is not None
    return client.stack.tables[Api.inference].providers[pid]


async def test_chat_greedy_stream_matches_whole(local: Any) -> None:
    whole = await local.chat.completions.create(model="tiny", messages=HI, max_tokens=12, temperature=0)
    assert whole.usage.completion_tokens <= 12 and whole.usage.prompt_tokens > 3
    assert whole.choices[0].finish_reason in ("length", "stop")
    stream = await local.chat.completions.create(model="tiny", messages=HI, max_tokens=12, temperature=0,
                                                 stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].usage == whole.usage


async def test_max_tokens_and_seed(local: Any) -> None:
    out = await local.chat.completions.create(model="tiny", messages=HI, max_tokens=5, temperature=0)
    assert out.usage.completion_tokens <= 5
    if out.usage.completion_tokens == 5:
        assert out.choices[0].finish_reason == "length"
    a = await local.chat.completions.create(model="tiny", messages=HI, max_tokens=16, seed=7, temperature=1.2)
    b = await local.chat.completions.create(model="tiny", messages=HI, max_tokens=16, seed=7, temperature=1.2)
    assert a.choices[0].message.content == b.choices[0].message.content


async def test_stop_strings_cut_the_output(local: Any) -> None:
    whole = await local.chat.completions.create(model="tiny", messages=HI, max_tokens=24, temperature=0)
    text = whole.choices[0].message.content
    stop = text[len(text) // 2: len(text) // 2 + 2]
    if not stop.strip():
        pytest.skip("the random model's output has no usable stop string")
    cut = await local.chat.completions.create(model="tiny", messages=HI, max_tokens=24, temperature=0, stop=[stop])
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


async def test_concurrent_requests_are_batched_and_match_sequential(local: Any) -> None:
    prompts = [[{"role": "user", "content": "word " * (i + 1)}] for i in range(8)]
    engine = (await provider(local, "local").loading.get()).engine
    engine.max_batch_seen = 0
    together = await asyncio.gather(*(local.chat.completions.create(model="tiny", messages=p, max_tokens=20,
                                                                    temperature=0) for p in prompts))
    assert engine.max_batch_seen >= 4, "requests that arrive together must be decoded together"
    alone = [await local.chat.completions.create(model="tiny", messages=p, max_tokens=20, temperature=0)
             for p in prompts]
    assert [r.choices[0].message.content for r in together] == [r.choices[0].message.content for r in alone]


async def test_abandoned_stream_leaves_the_batch(local: Any) -> None:
    engine = (await provider(local, "local").loading.get()).engine
    stream = await local.chat.completions.create(model="tiny", messages=HI, max_tokens=200, temperature=0,
                                                 stream=True)
    async for _ in stream:
        break
    await stream.aclose()
    for _ in range(100):
        if not engine.active:
            break
        await asyncio.sleep(0.01)
    assert engine.active == []


async def test_prompt_over_the_context_is_a_400_naming_the_excess(local: Any) -> None:
    long = [{"role": "user", "content": "stackkit serves models " * 200}]
    with pytest.raises(InvalidRequestError) as err:
        await local.chat.completions.create(model="tiny", messages=long)
    assert err.value.status_code == 400
    assert "over this model's context of 256 tokens by" in str(err.value)


async def test_tools_are_rendered_into_the_prompt(local: Any) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    plain = await local.chat.completions.create(model="tiny", messages=HI, max_tokens=1, temperature=0)
    with_tools = await local.chat.completions.create(model="tiny", messages=HI, max_tokens=1, temperature=0,
                                                     tools=tools)
    assert with_tools.usage.prompt_tokens > plain.usage.prompt_tokens + 10


async def test_completions_and_gpt2(tiny_gpt2: Path) -> None:
    async with AsyncLibraryClient(local_config(tiny_gpt2)) as client:
        out = await client.completions.create(model="tiny", prompt="The quick brown", max_tokens=6, temperature=0)
        assert out.usage.completion_tokens <= 6 and out.choices[0].text is not None
        echoed = await client.completions.create(model="tiny", prompt="The quick", max_tokens=3, temperature=0,
                                                 echo=True)
        assert echoed.choices[0].text.startswith("The quick")


async def test_missing_model_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        async with AsyncLibraryClient(local_config(tmp_path / "nope")):
            pass


# ---- sentence-transformers -------------------------------------------------------------------


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_minilm_embeddings(local: Any) -> None:
    out = await local.embeddings.create(model="minilm", input=["a cat sits on the mat", "a kitten on a rug",
                                                               "quarterly tax filing deadline"])
    vectors = [d.embedding for d in out.data]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(abs(math.sqrt(cosine(v, v)) - 1) < 1e-4 for v in vectors)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2
    assert out.usage.prompt_tokens > 10


async def test_minilm_dimensions_and_base64(local: Any) -> None:
    full = (await local.embeddings.create(model="minilm", input="hello")).data[0].embedding
    small = (await local.embeddings.create(model="minilm", input="hello", dimensions=64)).data[0].embedding
    assert len(small) == 64 and abs(math.sqrt(cosine(small, small)) - 1) < 1e-4
    raw = (await local.embeddings.create(model="minilm", input="hello", encoding_format="base64")).data[0].embedding
    assert list(struct.unpack("<384f", base64.b64decode(raw))) == pytest.approx(full, abs=1e-6)
    with pytest.raises(InvalidRequestError, match="larger than the model's 384"):
        await local.embeddings.create(model="minilm", input="hello", dimensions=1000)


async def test_concurrent_embedding_requests_share_encode_calls(local: Any) -> None:
    st = provider(local, "st")
    before = st.encode_calls
    results = await asyncio.gather(*(local.embeddings.create(model="minilm", input=f"sentence {i}")
                                     for i in range(32)))
    assert len(results) == 32
    assert st.encode_calls - before < 32 / 4


async def test_a_stream_never_read_leaves_the_batch(local: Any) -> None:
    engine = (await provider(local, "local").loading.get()).engine
    closed = await local.chat.completions.create(model="tiny", messages=HI, max_tokens=500, stream=True)
    await closed.aclose()  # never iterated
    dropped = await local.chat.completions.create(model="tiny", messages=HI, max_tokens=500, stream=True)
    del dropped  # never iterated, never closed
    import gc

    gc.collect()
    for _ in range(300):
        if not engine.active and engine.pending.empty():
            break
        await asyncio.sleep(0.01)
    assert engine.active == [] and engine.pending.empty()


async def test_one_thread_owns_the_tokenizer(local: Any) -> None:
    """Fast tokenizers are not thread-safe ("Already borrowed"): every call must come from one thread."""
    import threading

    st = provider(local, "st")
    model = await st.loading.get()
    tokenizer = model.model.tokenizer
    original = type(tokenizer)
    threads: set[str] = set()

    def record(self: Any, *args: Any, **kwargs: Any) -> Any:
        threads.add(threading.current_thread().name)
        return original.__call__(self, *args, **kwargs)

    tokenizer.__class__ = type("Recording", (original,), {"__call__": record})
    try:
        texts = [("word " * (1 + (i * 37) % 200)).strip() for i in range(48)]
        for _ in range(3):
            out = await asyncio.gather(*(local.embeddings.create(model="minilm", input=[t, t[:5]]) for t in texts))
            assert all(o.usage.prompt_tokens > 0 for o in out)
    finally:
        tokenizer.__class__ = original
    assert len(threads) == 1 and next(iter(threads)).startswith("sentence-transformers"), threads


# ---- constrained decoding ------------------------------------------------------------------------

PERSON = {"type": "object", "additionalProperties": False, "required": ["name", "age", "tags", "address"],
          "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer", "minimum": 0,
                                                                                 "maximum": 120},
                         "tags": {"type": "array", "maxItems": 3, "items": {"enum": ["a", "b", "c"]}},
                         "address": {"type": "object", "additionalProperties": False, "required": ["zip"],
                                     "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}}}}}


async def test_random_weights_still_answer_schema_valid_json(local: Any) -> None:
    """A model of random weights, left alone, emits noise; constrained, every answer validates."""
    import jsonschema

    other = {"type": "object", "required": ["ok"], "additionalProperties": False,
             "properties": {"ok": {"type": "boolean"}}}
    formats: list[dict[str, Any]] = [{"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}},
                                     {"type": "json_schema", "json_schema": {"name": "o", "schema": other}}] * 3
    free = local.chat.completions.create(model="tiny", messages=HI, max_tokens=40, temperature=1.0, seed=1)
    answers = await asyncio.gather(free, *(local.chat.completions.create(
        model="tiny", messages=HI, max_tokens=200, temperature=1.0, seed=i, response_format=f)
        for i, f in enumerate(formats)))  # decoded in one batch, each row with its own grammar
    for answer, fmt in zip(answers[1:], formats, strict=True):
        assert answer.choices[0].finish_reason == "stop", answer
        jsonschema.validate(json.loads(answer.choices[0].message.content), fmt["json_schema"]["schema"])
    with pytest.raises(json.JSONDecodeError):
        json.loads(answers[0].choices[0].message.content)  # the unconstrained row in the same batch stays free
    loose = await local.chat.completions.create(model="tiny", messages=HI, max_tokens=100, temperature=0,
                                                response_format={"type": "json_object"})
    text = loose.choices[0].message.content  # an object; random weights may never close its first string,
    assert text.startswith('{"') and (loose.choices[0].finish_reason == "length"  # and then it says so
                                      or isinstance(json.loads(text), dict))


async def test_a_forced_tool_call_is_always_a_valid_call(local: Any) -> None:
    import jsonschema

    # small schemas: the tools are rendered into the prompt, and this model's context is 256 tokens
    weather = {"type": "object", "required": ["city"], "properties": {"city": {"enum": ["Paris", "Rome"]}}}
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": weather}},
             {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]
    for choice in ("required", {"type": "function", "function": {"name": "get_weather"}},
                   {"type": "function", "function": {"name": "get_time"}}):
        for temperature in (0.0, 0.8):  # sampled calls are as valid as greedy ones
            out = await local.chat.completions.create(model="tiny", messages=HI, max_tokens=60, seed=3,
                                                      temperature=temperature, tools=tools, tool_choice=choice)
            assert out.choices[0].message.tool_calls, out  # (the 224-token prompt leaves 32 for the call)
            (call,) = out.choices[0].message.tool_calls
            assert out.choices[0].finish_reason == "tool_calls"
            if call.function.name == "get_weather":
                jsonschema.validate(json.loads(call.function.arguments), {**weather, "additionalProperties": False})
            else:
                assert choice != tools[0] and json.loads(call.function.arguments) == {}


async def test_an_unenforceable_schema_is_a_400(local: Any) -> None:
    bad = {"type": "json_schema", "json_schema": {"name": "b", "schema": {"type": "object", "properties": {
        "x": {"$ref": "#/definitions/missing"}}, "required": ["x"]}}}
    with pytest.raises(InvalidRequestError) as err:
        await local.chat.completions.create(model="tiny", messages=HI, response_format=bad)
    assert err.value.param == "response_format"
