"""The openai-agents SDK, unchanged, against a live stackkit server: Runner.run with a function tool,
Runner.run_streamed, auto_previous_response_id, and an OpenAIConversationsSession."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai import AsyncOpenAI

from stackkit.testing.live_server import LiveServer
from tests.conftest import fake_stack_config

agents = pytest.importorskip("agents")


@agents.function_tool  # type: ignore[untyped-decorator]
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


async def test_openai_agents_runs_against_stackkit(tmp_path: Path) -> None:
    agents.set_tracing_disabled(True)
    with LiveServer(fake_stack_config(tmp_path)) as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="none", max_retries=0)
        model = agents.OpenAIResponsesModel(model="echo", openai_client=client)
        agent = agents.Agent(name="helper", instructions="Be brief.", tools=[get_weather], model=model)

        ran = await agents.Runner.run(agent, "use get_weather for Rome")
        assert ran.final_output == "From the tools: sunny in use get_weather for Rome"  # the tool ran locally

        streamed = agents.Runner.run_streamed(agent, "hello streamed world")
        kinds = {event.type async for event in streamed.stream_events()}
        assert streamed.final_output == "hello streamed world" and "raw_response_event" in kinds

        chained = await agents.Runner.run(agent, "use get_weather for Oslo", auto_previous_response_id=True)
        assert chained.final_output.endswith("Oslo") and chained.last_response_id.startswith("resp_")
        stored = await client.responses.retrieve(chained.last_response_id)
        assert stored.output_text == chained.final_output

        session = agents.OpenAIConversationsSession(openai_client=client)
        first = await agents.Runner.run(agent, "first message", session=session)
        second = await agents.Runner.run(agent, "second message", session=session)
        assert (first.final_output, second.final_output) == ("first message", "second message")
        assert len(await session.get_items()) == 4
        await client.close()
