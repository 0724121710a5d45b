"""LangChain's ChatOpenAI on the Responses API against a live stackkit server, unchanged: invoke, stream,
tool calls answered with a ToolMessage, and a conversation chained by previous_response_id."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stackkit.testing.live_server import LiveServer
from tests.conftest import fake_stack_config

langchain_openai = pytest.importorskip("langchain_openai")


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[Any]:
    with LiveServer(fake_stack_config(tmp_path)) as server:
        factory = lambda **extra: langchain_openai.ChatOpenAI(  # noqa: E731
            model="echo", base_url=server.base_url, api_key="none", use_responses_api=True, max_retries=0,
            timeout=10, **extra)
        factory.base_url = server.base_url  # type: ignore[attr-defined]
        yield factory


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def test_invoke_and_stream(chat: Any) -> None:
    reply = chat().invoke("hello from langchain")
    assert reply.text == "hello from langchain" and reply.response_metadata["id"].startswith("resp_")
    assert reply.usage_metadata["total_tokens"] > 0
    pieces = list(chat().stream("one two three four"))
    assert len(pieces) > 2
    assert "".join(p.text for p in pieces) == "one two three four"


def test_tools_round_trip(chat: Any) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage

    model = chat().bind_tools([get_weather])
    question = HumanMessage("use get_weather for Paris")
    first = model.invoke([question])
    (call,) = first.tool_calls
    assert call["name"] == "get_weather" and "city" in call["args"]
    answer = model.invoke([question, first, ToolMessage(get_weather("Paris"), tool_call_id=call["id"])])
    assert answer.text == "From the tools: sunny in Paris" and not answer.tool_calls


def test_previous_response_id_chains(chat: Any) -> None:
    from langchain_core.messages import HumanMessage

    model = chat(use_previous_response_id=True)
    first = model.invoke([HumanMessage("first turn")])
    second = model.invoke([HumanMessage("first turn"), first, HumanMessage("second turn")])
    assert second.text == "second turn" and second.response_metadata["id"] != first.response_metadata["id"]
    import openai

    with openai.OpenAI(base_url=chat.base_url, api_key="none") as sdk:  # stackkit kept the chain
        stored = sdk.responses.retrieve(second.response_metadata["id"])
        assert stored.previous_response_id == first.response_metadata["id"]
        sent = sdk.responses.input_items.list(stored.id).data
        parts = [i.model_dump(exclude_none=True)["content"] for i in sent]
        assert parts == [[{"type": "input_text", "text": "second turn"}]]  # the rest came from the stored chain
