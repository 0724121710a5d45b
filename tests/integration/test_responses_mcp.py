"""MCP tools in Responses against a real FastMCP server on 127.0.0.1 (streamable HTTP): listing, calls,
allowed_tools, approvals (asked, approved, declined, filtered), a tool that fails and a server that is
down (errors on items, never a failed turn), and credentials that are never stored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.integration.test_responses import as_sdk
from tests.mcp_server import CALLS, METHODS, McpServer


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


def ask(client: Any, url: str, text: str = "please shout this", **extra: Any) -> Any:
    tools = [{"type": "mcp", "server_label": "demo", "server_url": url, **extra}]  # approval is OpenAI's default
    return client.responses.create(model="echo", input=text, tools=tools), tools


def test_a_call_waits_for_approval_then_runs(client: Any, mcp_url: str) -> None:
    CALLS.clear()
    first, tools = ask(client, mcp_url)
    as_sdk(first)
    _, request = first.output
    assert request.type == "mcp_approval_request" and request.name == "shout" and first.status == "completed"
    assert CALLS == []  # nothing ran before the approval
    second = client.responses.create(model="echo", previous_response_id=first.id, tools=tools, input=[
        {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}])
    as_sdk(second)
    call, answer = [o for o in second.output if o.type != "mcp_list_tools"]
    assert (call.type, call.approval_request_id, call.output) == ("mcp_call", request.id, "PLEASE SHOUT THIS")
    assert answer.content[0].text == "From the tools: PLEASE SHOUT THIS" and CALLS == ["shout"]
    with pytest.raises(openai.BadRequestError) as err:  # an approval is used once
        client.responses.create(model="echo", previous_response_id=second.id, tools=tools, input=[
            {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}])
    assert err.value.param == "input.0.approval_request_id" and CALLS == ["shout"]


def test_a_declined_call_never_runs_and_the_model_is_told(client: Any, mcp_url: str) -> None:
    CALLS.clear()
    first, tools = ask(client, mcp_url)
    second = client.responses.create(model="echo", previous_response_id=first.id, tools=tools, input=[
        {"type": "mcp_approval_response", "approval_request_id": first.output[1].id, "approve": False}])
    assert [o.type for o in second.output if o.type != "mcp_list_tools"] == ["message"]
    assert "declined" in second.output[-1].content[0].text and CALLS == []


def test_approval_filters_and_bad_answers(client: Any, mcp_url: str) -> None:
    CALLS.clear()
    out, tools = ask(client, mcp_url, "shout and launch_codes", require_approval={"never": {"tool_names": ["shout"]}})
    kinds = {o.type: o for o in out.output}
    assert kinds["mcp_call"].name == "shout" and kinds["mcp_approval_request"].name == "launch_codes"
    assert CALLS == ["shout"]
    for bad, param in (({"approval_request_id": "mcpr_nope", "approve": True}, "input.0.approval_request_id"),
                       ({"approval_request_id": kinds["mcp_approval_request"].id}, "input.0")):
        with pytest.raises(openai.BadRequestError) as err:
            client.responses.create(model="echo", previous_response_id=out.id, tools=tools,
                                    input=[{"type": "mcp_approval_response", **bad}])
        assert err.value.param == param
    with pytest.raises(openai.BadRequestError) as err:  # the approved call's server is no longer offered
        client.responses.create(model="echo", previous_response_id=out.id, input=[
            {"type": "mcp_approval_response", "approval_request_id": kinds["mcp_approval_request"].id,
             "approve": True}])
    assert err.value.param == "tools" and CALLS == ["shout"]


def test_approval_request_events(client: Any, mcp_url: str) -> None:
    tools = [{"type": "mcp", "server_label": "demo", "server_url": mcp_url}]
    events = [as_sdk(e) for e in client.responses.create(model="echo", input="shout", tools=tools, stream=True)]
    added = [e for e in events if e.type == "response.output_item.added"]
    assert added[-1].item.type == "mcp_approval_request" and events[-1].type == "response.completed"
    assert "response.mcp_call.in_progress" not in {e.type for e in events}


def test_credentials_are_never_stored(client: Any, mcp_url: str, tmp_path: Any) -> None:
    out = client.responses.create(model="echo", input="shout it", tools=mcp(
        mcp_url, authorization="sekrit-token", headers={"X-Api-Key": "hdr-secret"}))
    shown = client.responses.retrieve(out.id).tools[0]
    assert getattr(shown, "authorization", None) is None and shown.headers == {"X-Api-Key": "<redacted>"}
    assert out.output[1].output == "SHOUT IT"  # the credentials were used for the call
    stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*.db*") if p.is_file())
    assert b"sekrit-token" not in stored and b"hdr-secret" not in stored


def test_tool_lists_are_reused_and_sessions_pooled(client: Any, mcp_url: str) -> None:
    METHODS.clear()
    first = client.responses.create(model="echo", input="shout one", tools=mcp(mcp_url))
    second = client.responses.create(model="echo", input="shout two", tools=mcp(mcp_url),
                                     previous_response_id=first.id)
    assert [o.type for o in second.output] == ["mcp_call", "message"]  # no second listing
    assert second.output[0].output == "SHOUT TWO"
    third = client.responses.create(model="echo", input="shout three", previous_response_id=second.id,
                                    tools=mcp(mcp_url, allowed_tools=["shout"]))  # another definition: listed again
    assert third.output[0].type == "mcp_list_tools"
    assert METHODS.count("tools/list") == 2 and METHODS.count("tools/call") == 3
    assert METHODS.count("initialize") == 1  # one session for the server, kept between turns


def test_a_server_that_goes_down_mid_conversation_is_an_error_on_the_call(client: Any) -> None:
    server = McpServer()
    url = server.__enter__()
    try:
        first, tools = ask(client, url)  # listed; the call waits for approval
    finally:
        server.stop()
    second = client.responses.create(model="echo", previous_response_id=first.id, tools=tools, input=[
        {"type": "mcp_approval_response", "approval_request_id": first.output[1].id, "approve": True}])
    call = second.output[0]
    assert second.status == "completed" and call.type == "mcp_call" and call.error and call.output is None
    with McpServer(server.port) as again:  # back on the same address: the pool opens a fresh session
        out = client.responses.create(model="echo", input="shout back", tools=mcp(again))
        assert out.output[1].output == "SHOUT BACK"


def test_required_forces_one_call_then_lets_the_model_answer(client: Any, mcp_url: str) -> None:
    out = client.responses.create(model="echo", input="hello", tools=mcp(mcp_url, allowed_tools=["shout"]),
                                  tool_choice="required")
    assert [o.type for o in out.output] == ["mcp_list_tools", "mcp_call", "message"] and out.status == "completed"
