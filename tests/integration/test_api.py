"""One API suite, two transports: every test runs through LibraryClient and through a live
server on 127.0.0.1 driven by the official `openai` SDK (the `client` fixture)."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest

USER = [{"role": "user", "content": "the quick brown fox"}]


def is_http(client: Any) -> bool:
    return type(client).__module__.startswith("openai")


def test_models_list_and_retrieve(client: Any) -> None:
    ids = [m.id for m in client.models.list().data]
    assert ids[:2] == ["echo", "embedder"]
    model = client.models.retrieve("echo")
    assert (model.id, model.owned_by, model.object) == ("echo", "fake", "model")
    listed = client.models.retrieve("fake/other-upstream")
    assert listed.id == "fake/other-upstream"


def test_chat_completion(client: Any) -> None:
    resp = client.chat.completions.create(model="echo", messages=USER, max_tokens=3, seed=7)
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.content == "the quick brown"
    assert resp.choices[0].finish_reason == "length"
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (4, 3, 7)


def test_chat_completion_stop(client: Any) -> None:
    resp = client.chat.completions.create(model="echo", messages=USER, stop=[" brown"])
    assert resp.choices[0].message.content == "the quick"


def test_chat_streaming_with_usage(client: Any) -> None:
    stream = client.chat.completions.create(model="echo", messages=USER, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "the quick brown fox"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 8
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_chat_tools(client: Any) -> None:
    parameters = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tools = [{"type": "function",
              "function": {"name": "get_weather", "description": "weather", "parameters": parameters}}]
    resp = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "Paris"}],
                                          tools=tools, tool_choice="required")
    call = resp.choices[0].message.tool_calls[0]
    assert resp.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    follow_up = client.chat.completions.create(model="echo", tools=tools, tool_choice="none", messages=[
        {"role": "user", "content": "Paris"},
        {"role": "assistant", "tool_calls": [{"id": call.id, "type": "function",
                                              "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        {"role": "user", "content": "thanks"},
    ])
    assert follow_up.choices[0].message.content == "thanks"


def test_chat_tools_streaming(client: Any) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    chunks = list(client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "lookup"}],
                                                 tools=tools, stream=True))
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].function.name == "lookup" and deltas[0].function.arguments == "{}"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_response_format_json_schema(client: Any) -> None:
    resp = client.chat.completions.create(model="echo", messages=USER, response_format={
        "type": "json_schema", "json_schema": {"name": "echo", "schema": {"type": "object"}, "strict": True}})
    assert json.loads(resp.choices[0].message.content) == {"echo": "the quick brown fox"}


def test_completions(client: Any) -> None:
    resp = client.completions.create(model="echo", prompt="one two three", max_tokens=2)
    assert resp.object == "text_completion" and resp.choices[0].text == "one two"
    streamed = "".join(c.choices[0].text for c in client.completions.create(model="echo", prompt="a b", stream=True))
    assert streamed == "a b"


def test_embeddings_float_and_base64(client: Any) -> None:
    floats = client.embeddings.create(model="embedder", input=["hello", "world"], encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1]
    assert len(floats.data[0].embedding) == 16
    raw = client.embeddings.create(model="embedder", input="hello", encoding_format="base64", dimensions=16)
    vector = raw.data[0].embedding
    if isinstance(vector, str):  # LibraryClient returns the wire value; the openai SDK decodes base64 itself
        vector = list(struct.unpack("<16f", base64.b64decode(vector)))
    assert vector == pytest.approx(floats.data[0].embedding, rel=1e-6)


def test_unknown_model_is_not_found(client: Any) -> None:
    with pytest.raises(Exception) as err:
        client.chat.completions.create(model="gpt-nope", messages=USER)
    assert "Model 'gpt-nope' not found. Known models: echo, embedder" in str(err.value)
    if is_http(client):
        import openai

        assert isinstance(err.value, openai.NotFoundError)
        assert err.value.code == "model_not_found"


def test_invalid_request_names_the_field(client: Any) -> None:
    with pytest.raises(Exception) as err:
        client.chat.completions.create(model="echo", messages=USER, temperature=7)
    assert "'temperature'" in str(err.value)
    if is_http(client):
        import openai

        assert isinstance(err.value, openai.BadRequestError) and err.value.param == "temperature"


def test_register_and_delete_model(client: Any) -> None:
    body = {"model_id": "mine", "provider_model_id": "up-mine"}
    if is_http(client):
        created: dict[str, Any] = client.post("/models", body=body, cast_to=object)
        assert created["provider_model_id"] == "up-mine"
        assert client.chat.completions.create(model="mine", messages=USER).model == "mine"  # as the client named it
        assert client.models.delete("mine").deleted is True
    else:
        assert client.models.register(**body).provider_model_id == "up-mine"
        assert client.chat.completions.create(model="mine", messages=USER).model == "mine"  # as the client named it
        assert client.models.delete("mine").deleted is True
    assert "mine" not in [m.id for m in client.models.list().data]


def test_moderations(client: Any) -> None:
    resp = client.moderations.create(input=["hello", "something forbidden"])
    assert [r.flagged for r in resp.results] == [False, True]
    assert resp.model == "no-forbidden"


def test_run_shield(client: Any) -> None:
    body = {"shield_id": "no-forbidden", "messages": [{"role": "user", "content": "forbidden"}]}
    if is_http(client):
        out = client.post("/safety/run-shield", body=body, cast_to=object)
        assert out["violation"]["violation_level"] == "error"
    else:
        assert client.safety.run_shield(**body).violation.violation_level == "error"


def test_vector_store_lifecycle(client: Any) -> None:
    store = client.vector_stores.create(name="docs", metadata={"team": "a"})
    chunks = [{"content": "cats purr softly", "metadata": {"lang": "en", "n": 1}},
              {"content": "dogs bark loudly", "metadata": {"lang": "en", "n": 2}},
              {"content": "chats ronronnent cats", "metadata": {"lang": "fr", "n": 3}}]
    body = {"vector_store_id": store.id, "chunks": chunks}
    if is_http(client):
        client.post("/vector-io/insert", body=body, cast_to=object)
    else:
        client.vector_io.insert(**body)
    keyword = {"search_mode": "keyword"}
    found = client.vector_stores.search(store.id, query="cats", filters={"type": "eq", "key": "lang", "value": "en"},
                                        extra_body=keyword)
    assert [r.content[0].text for r in found.data] == ["cats purr softly"]
    found = client.vector_stores.search(store.id, query="cats", extra_body=keyword, filters={"type": "or", "filters": [
        {"type": "gte", "key": "n", "value": 3}, {"type": "eq", "key": "lang", "value": "en"}]})
    assert len(found.data) == 2
    renamed = client.vector_stores.update(store.id, name="renamed")
    assert client.vector_stores.retrieve(store.id).name == renamed.name == "renamed"
    assert store.id in [s.id for s in client.vector_stores.list().data]
    assert client.vector_stores.delete(store.id).deleted is True
    with pytest.raises(Exception, match="not found"):
        client.vector_stores.retrieve(store.id)
