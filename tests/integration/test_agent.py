"""`stackkit.Agent`: Python functions as tools (schemas from type hints, run locally), the loop until the
model answers, sessions as conversations; sync and async, in-process and against a live server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from stackkit import Agent, AsyncLibraryClient, LibraryClient
from stackkit.agent import function_tool
from stackkit.errors import AgentLoopError
from stackkit.testing.live_server import LiveServer
from tests.conftest import fake_stack_config

RAN: list[tuple[str, Any]] = []


def get_weather(city: str, unit: str = "C") -> str:
    """The weather in a city.

    Longer notes the model does not need."""
    RAN.append(("get_weather", city))
    return f"sunny in {city}"


def add(a: int, b: int = 1) -> int:
    """Add two integers."""
    RAN.append(("add", a))
    return a + b


def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError("kaboom")


async def slow_echo(text: str) -> dict[str, str]:
    """Echo, asynchronously."""
    RAN.append(("slow_echo", text))
    return {"echo": text}


def test_schemas_come_from_type_hints() -> None:
    tool = function_tool(get_weather)
    assert tool == {"type": "function", "name": "get_weather", "description": "The weather in a city.",
                    "parameters": {"type": "object", "required": ["city"], "properties": {
                        "city": {"type": "string"}, "unit": {"type": "string", "default": "C"}}}}


def test_functions_run_locally_until_the_model_answers(tmp_path: Path) -> None:
    RAN.clear()
    with LibraryClient(fake_stack_config(tmp_path)) as client:
        agent = Agent(client, model="echo", instructions="be brief", tools=[get_weather, add, explode])
        result = agent.run("use get_weather please")
        assert RAN == [("get_weather", "use get_weather please")]
        assert result.output_text == "From the tools: sunny in use get_weather please"
        assert [r.output[0].type for r in result.responses] == ["function_call", "message"]
        bad = agent.run("call add now")  # the fake sends text where an int is due: validated, the model told
        assert bad.output_text.startswith("From the tools: error: the arguments do not fit add")
        assert ("add", "call add now") not in RAN
        boom = agent.run("explode it")
        assert boom.output_text == "From the tools: error: RuntimeError: kaboom"
        with pytest.raises(AgentLoopError):
            Agent(client, model="echo", tools=[get_weather], max_turns=1).run("get_weather again")


def test_a_session_is_a_conversation(tmp_path: Path) -> None:
    with LibraryClient(fake_stack_config(tmp_path)) as client:
        agent = Agent(client, model="echo", tools=[get_weather])
        chat = agent.session()
        agent.run("first: get_weather", session=chat)
        second = agent.run("second message", session=chat)
        assert second.response.conversation.id == chat.conversation_id
        items = client.conversations.items.list(chat.conversation_id, order="asc", limit=100).data
        kinds = [i.type for i in items]
        assert kinds[:4] == ["message", "function_call", "function_call_output", "message"]
        assert items[-1].content[0].text == "second message"


async def test_async_agent_with_async_functions(tmp_path: Path) -> None:
    RAN.clear()
    async with AsyncLibraryClient(fake_stack_config(tmp_path)) as client:
        agent = Agent(client, model="echo", tools=[slow_echo])
        result = await agent.arun("slow_echo this")
        assert RAN == [("slow_echo", "slow_echo this")]
        assert result.output_text == 'From the tools: {"echo": "slow_echo this"}'


def test_the_same_agent_against_a_live_server(tmp_path: Path) -> None:
    with LiveServer(fake_stack_config(tmp_path)) as server, openai.OpenAI(base_url=server.base_url,
                                                                          api_key="none") as sdk:
        result = Agent(sdk, model="echo", tools=[get_weather]).run("get_weather over http")
        assert result.output_text == "From the tools: sunny in get_weather over http"
