"""OpenAI's Responses API through LibraryClient and through a live server with the openai SDK: create,
retrieve, delete, input items, streaming in OpenAI's order (checked against the SDK's own event types and
its stream helper), previous_response_id chains with function calls, max_output_tokens, structured
output, store, bad input, and state that survives a restart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import openresponses_types
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from stackkit import LibraryClient
from stackkit.testing.live_server import LiveServer
from tests.conftest import fake_stack_config

WEATHER = [{"type": "function", "name": "get_weather", "description": "weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


OPEN_EVENTS = {next(iter(cls.model_fields["type"].annotation)).value: cls  # each type is a one-member enum
               for name, cls in vars(openresponses_types).items() if name.endswith("StreamingEvent")}
OPEN_ITEMS = {"message", "function_call", "function_call_output"}  # what Open Responses defines (no MCP, files)


def _open_responses(data: dict[str, Any]) -> None:
    """Validate against `openresponses-types` too, where it defines the things in `data`."""
    response = data if data.get("object") == "response" else data.get("response")
    items = [*(response or {}).get("output", []), *([data["item"]] if "item" in data else [])]
    tools = (response or {}).get("tools", [])
    if any(i["type"] not in OPEN_ITEMS for i in items) or any(t["type"] != "function" for t in tools) or \
            data.get("type", "").startswith(("response.mcp", "response.file_search")):
        return
    if data.get("object") == "response":
        openresponses_types.ResponseResource.model_validate(data)
    elif data["type"] in OPEN_EVENTS:
        OPEN_EVENTS[data["type"]].model_validate(data)
    else:
        raise AssertionError(f"{data['type']} is not an Open Responses event")


def as_sdk(obj: Any) -> Any:
    """Any response or event, validated by the openai SDK's own types and by Open Responses' (where it
    defines them: it has no MCP or file_search items)."""
    data = obj if isinstance(obj, dict) else obj.model_dump(mode="json", exclude_none=False)
    _open_responses(data)
    return Response.model_validate(data) if data.get("object") == "response" else EVENTS.validate_python(data)


def test_create_retrieve_input_items_delete(client: Any) -> None:
    made = client.responses.create(model="echo", input="hello there friend", metadata={"k": "v"})
    as_sdk(made)
    assert made.status == "completed" and made.output[0].content[0].text == "hello there friend"
    assert made.usage.total_tokens > 0 and made.metadata == {"k": "v"}
    assert client.responses.retrieve(made.id).output[0].content[0].text == "hello there friend"
    items = client.responses.input_items.list(made.id)
    assert [i.type for i in items] == ["message"]
    client.responses.delete(made.id)  # the openai SDK returns None for it
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)


def test_stream_follows_openais_order(client: Any) -> None:
    events = list(client.responses.create(model="echo", input="one two three", stream=True))
    typed = [as_sdk(e) for e in events]
    assert [e.sequence_number for e in typed] == list(range(len(typed)))
    kinds = [e.type for e in typed]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert "".join(e.delta for e in typed if e.type == "response.output_text.delta") == "one two three"
    assert sum(k in ("response.completed", "response.incomplete", "response.failed") for k in kinds) == 1


def test_function_call_round_trip_with_previous_response_id(client: Any) -> None:
    first = client.responses.create(model="echo", input="what is the weather? use get_weather", tools=WEATHER)
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather" and json.loads(call.arguments)
    second = client.responses.create(model="echo", previous_response_id=first.id, tools=WEATHER, input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    assert second.status == "completed" and second.previous_response_id == first.id
    third = client.responses.create(model="echo", previous_response_id=second.id, input="and tomorrow")
    assert third.output[0].content[0].text == "and tomorrow"
    branch = client.responses.create(model="echo", previous_response_id=first.id, tools=WEATHER, input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "rain"}])  # branching from turn 1
    assert branch.id != second.id and branch.status == "completed"


def test_max_output_tokens_is_incomplete(client: Any) -> None:
    out = client.responses.create(model="echo", input="a b c d e f g h", max_output_tokens=3)
    assert out.status == "incomplete" and out.incomplete_details.reason == "max_output_tokens"
    assert out.output[0].content[0].text == "a b c"


def test_json_schema_output(client: Any) -> None:
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}}
    out = client.responses.create(model="echo", input="structured", text={
        "format": {"type": "json_schema", "name": "e", "schema": schema}})
    assert json.loads(out.output[0].content[0].text) == {"echo": "structured"}


def test_store_false_is_not_kept(client: Any) -> None:
    out = client.responses.create(model="echo", input="ephemeral", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(out.id)


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "x", "bogus": 1}, "bogus"),
    ({"input": [{"type": "message", "role": "robot", "content": "x"}]}, "input.0.role"),
    ({"input": [{"type": "web_search_call"}]}, "input.0.type"),
    ({"input": "x", "tool_choice": {"type": "function", "name": "f"}}, "tool_choice"),  # not among the tools
    ({"input": "x", "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []}}, "tool_choice"),
    ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"input": "x", "background": True, "store": False}, "background"),
    ({"input": "x", "truncation": "auto"}, "truncation"),
])
def test_bad_input_is_a_400_naming_the_field(client: Any, body: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        if isinstance(client, LibraryClient):
            client.responses.create(model="echo", **body)
        else:
            client.post("/responses", body={"model": "echo", **body}, cast_to=object)
    assert err.value.param == param


def test_an_unknown_previous_response_is_a_404(client: Any) -> None:
    with pytest.raises(openai.NotFoundError, match="resp_nope"):
        client.responses.create(model="echo", input="x", previous_response_id="resp_nope")


def test_sdk_stream_helper(tmp_path: Path) -> None:
    with LiveServer(fake_stack_config(tmp_path)) as server, \
            openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0) as sdk, \
            sdk.responses.stream(model="echo", input="helper checks the order") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert final.output_text == "helper checks the order" and kinds[-1] == "response.completed"


def test_responses_survive_a_restart(tmp_path: Path) -> None:
    with LibraryClient(fake_stack_config(tmp_path)) as client:
        made = client.responses.create(model="echo", input="kept across restarts")
    with LibraryClient(fake_stack_config(tmp_path)) as client:
        assert client.responses.retrieve(made.id).output[0].content[0].text == "kept across restarts"
        follow = client.responses.create(model="echo", input="next", previous_response_id=made.id)
        assert follow.status == "completed"


def test_conversations_crud_and_turns(client: Any) -> None:
    conv = client.conversations.create(metadata={"topic": "demo"},
                                       items=[{"type": "message", "role": "user", "content": "my name is Ada"}])
    assert conv.id.startswith("conv_") and conv.metadata == {"topic": "demo"}
    first = client.responses.create(model="echo", input="remember me", conversation=conv.id)
    second = client.responses.create(model="echo", input="who am I", conversation=conv.id)
    assert first.status == second.status == "completed"
    items = list(client.conversations.items.list(conv.id, order="asc"))
    texts = [(i.type, i.role) for i in items]
    assert texts == [("message", "user"), ("message", "user"), ("message", "assistant"), ("message", "user"),
                     ("message", "assistant")]
    added = client.conversations.items.create(conv.id, items=[{"type": "message", "role": "user", "content": "hi"}])
    item_id = added.data[0].id
    assert client.conversations.items.retrieve(item_id, conversation_id=conv.id).id == item_id
    client.conversations.items.delete(item_id, conversation_id=conv.id)
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(item_id, conversation_id=conv.id)
    assert client.conversations.update(conv.id, metadata={"topic": "changed"}).metadata == {"topic": "changed"}
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="echo", input="x", conversation=conv.id, previous_response_id=first.id)
    assert err.value.param == "conversation"
    client.conversations.delete(conv.id)
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conv.id)


def test_the_models_guardrails_apply_to_responses(tmp_path: Path) -> None:
    from tests.integration.test_guardrails import LEAK, stack_config

    with LibraryClient(stack_config()) as client:
        with pytest.raises(openai.BadRequestError, match="Blocked by guardrail 'pii'"):
            client.responses.create(model="guarded", input="mail me at a@b.io", guardrails=[])
        events = list(client.responses.create(model="redacted", input="please leak it", stream=True))
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert "bob@" not in text and "[EMAIL]" in text and LEAK.split("bob")[0] in text


def test_file_search_answers_with_citations(client: Any) -> None:
    import time

    doc = client.files.create(file=("cats.txt", b"Cats purr when they are happy and sleep most of the day."),
                              purpose="assistants")
    other = client.files.create(file=("tax.txt", b"The tax filing deadline is in April."), purpose="assistants")
    store = client.vector_stores.create(name="kb", file_ids=[doc.id, other.id])
    for _ in range(200):
        if client.vector_stores.retrieve(store.id).file_counts.completed == 2:
            break
        time.sleep(0.02)
    tools = [{"type": "file_search", "vector_store_ids": [store.id], "max_num_results": 1}]
    out = client.responses.create(model="echo", input="use file_search: why do cats purr", tools=tools,
                                  include=["file_search_call.results"])
    as_sdk(out)
    search, answer = out.output
    assert search.type == "file_search_call" and search.status == "completed" and search.queries
    assert [r.filename for r in search.results] == ["cats.txt"]
    assert answer.type == "message" and "Cats purr" in answer.content[0].text
    assert [(a.type, a.file_id) for a in answer.content[0].annotations] == [("file_citation", doc.id)]
    without = client.responses.create(model="echo", input="use file_search: cats", tools=tools)
    assert without.output[0].results is None  # results only when include asks for them
    events = [e.type for e in client.responses.create(model="echo", input="use file_search: cats", tools=tools,
                                                      stream=True)]
    assert events[2:7] == ["response.output_item.added", "response.file_search_call.in_progress",
                           "response.file_search_call.searching", "response.file_search_call.completed",
                           "response.output_item.done"]


def test_a_named_tool_choice_forces_that_tool(client: Any) -> None:
    out = client.responses.create(model="echo", input="no tool is named here", tools=WEATHER,
                                  tool_choice={"type": "function", "name": "get_weather"})
    assert out.output[0].type == "function_call" and out.output[0].name == "get_weather"
    plain = client.responses.create(model="echo", input="no tool is named here", tools=WEATHER)
    assert plain.output[0].type == "message"


CLOCK = [*WEATHER, {"type": "function", "name": "get_time", "parameters": {
    "type": "object", "properties": {"zone": {"type": "string"}}}}]


def test_allowed_tools_refuses_calls_outside_the_list(client: Any) -> None:
    only_time = {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "get_time"}]}
    out = client.responses.create(model="echo", input="use get_weather", tools=CLOCK, tool_choice=only_time)
    as_sdk(out)
    assert [o.type for o in out.output] == ["message"]  # the call was refused, not handed to the client
    assert "not allowed" in out.output[0].content[0].text and "get_time" in out.output[0].content[0].text
    allowed = client.responses.create(model="echo", input="get_time please", tools=CLOCK, tool_choice=only_time)
    assert [(o.type, o.name) for o in allowed.output] == [("function_call", "get_time")]
    forced = client.responses.create(model="echo", input="anything", tools=CLOCK, tool_choice={
        "type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "get_time"}]})
    assert forced.output[0].type == "function_call"
    for bad in ({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "nope"}]},
                {"type": "allowed_tools", "mode": "sometimes", "tools": [{"type": "function", "name": "get_time"}]},
                {"type": "mcp", "server_label": "absent"}):
        with pytest.raises(openai.BadRequestError) as err:
            client.responses.create(model="echo", input="x", tools=CLOCK, tool_choice=bad)
        assert err.value.param == "tool_choice"


def test_truncation_auto_keeps_a_long_chain_within_the_context(tmp_path: Path) -> None:
    import textwrap

    from stackkit.core.config import parse_config

    config = parse_config(textwrap.dedent(f"""
        providers:
          inference: [{{provider_id: fake, provider_type: inline::fake}}]
        registered_resources:
          models:
            - {{model_id: small, provider_id: fake, provider_model_id: fake-small, metadata: {{context_length: 600}}}}
            - {{model_id: unknown, provider_id: fake, provider_model_id: fake-unknown}}
        storage: {{backends: {{kv: {{type: sqlite, db_path: "{tmp_path}/kv.db"}}}}, stores: {{registry: kv}}}}
        """), env={})
    with LibraryClient(config) as client:
        previous: str | None = None
        sizes: list[int] = []
        for turn in range(12):
            out = client.responses.create(model="small", input=f"turn {turn} " + "lorem ipsum " * 30,
                                          previous_response_id=previous, truncation="auto", max_output_tokens=50)
            previous, sizes = out.id, [*sizes, out.usage.input_tokens]
            assert out.truncation == "auto"
        assert max(sizes) < 600 and sizes[-1] < sizes[0] * 4  # the model never saw the whole chain
        assert out.output[0].content[0].text.startswith("turn 11")
        whole = client.responses.create(model="small", input="and now", previous_response_id=previous)
        assert whole.usage.input_tokens > 600  # without truncation the fake model is sent everything
        with pytest.raises(openai.BadRequestError) as err:
            client.responses.create(model="unknown", input="x", truncation="auto")
        assert err.value.param == "truncation"
        with pytest.raises(openai.BadRequestError) as err:
            client.responses.create(model="small", input="x " * 3000, truncation="auto")
        assert err.value.code == "context_length_exceeded"
