"""MCP tools in Responses against a real FastMCP server on 127.0.0.1 (streamable HTTP): listing, calls,
allowed_tools, a tool that fails and a server that is down (errors on items, never a failed turn)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.integration.test_responses import as_sdk
from tests.mcp_server import McpServer


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with McpServer() as url:
        yield url


def mcp(url: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"type": "mcp", "server_label": "demo", "server_url": url, "require_approval": "never", **extra}]


def test_lists_and_calls_a_tool(client: Any, mcp_url: str) -> None:
    out = client.responses.create(model="echo", input="please shout this", tools=mcp(mcp_url))
    as_sdk(out)
    listing, call, answer = out.output
    assert listing.type == "mcp_list_tools" and {t.name for t in listing.tools} == {"shout", "launch_codes",
                                                                                      "explode"}
    assert (call.type, call.name, call.output, call.error) == ("mcp_call", "shout", "PLEASE SHOUT THIS", None)
    assert answer.content[0].text == "From the tools: PLEASE SHOUT THIS"


def test_allowed_tools_limit_what_the_model_sees(client: Any, mcp_url: str) -> None:
    out = client.responses.create(model="echo", input="launch_codes now", tools=mcp(mcp_url, allowed_tools=["shout"]))
    listing, answer = out.output
    assert [t.name for t in listing.tools] == ["shout"] and answer.type == "message"  # no call to a hidden tool


def test_a_failing_tool_is_an_error_on_its_call(client: Any, mcp_url: str) -> None:
    out = client.responses.create(model="echo", input="explode please", tools=mcp(mcp_url))
    call = out.output[1]
    assert out.status == "completed" and call.type == "mcp_call" and "broke on purpose" in call.error


def test_streamed_mcp_events(client: Any, mcp_url: str) -> None:
    events = [as_sdk(e) for e in client.responses.create(model="echo", input="shout it", tools=mcp(mcp_url),
                                                           stream=True)]
    kinds = [e.type for e in events]
    assert kinds[2:6] == ["response.output_item.added", "response.mcp_list_tools.in_progress",
                          "response.mcp_list_tools.completed", "response.output_item.done"]
    assert "response.mcp_call.completed" in kinds and kinds[-1] == "response.completed"


def test_a_server_that_is_down_is_an_error_on_the_listing(client: Any) -> None:
    server = McpServer()
    url = server.__enter__()
    server.stop()
    out = client.responses.create(model="echo", input="shout it", tools=mcp(url))
    assert out.status == "completed" and out.output[0].type == "mcp_list_tools" and out.output[0].error


def test_approval_flows_are_refused_until_supported(client: Any, mcp_url: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="echo", input="x", tools=mcp(mcp_url, require_approval="always"))
    assert err.value.param and err.value.param.startswith("tools")
