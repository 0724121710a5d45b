"""Earlier turns' tool items become chat messages the model can read: every tool call is followed by its
result (chat APIs reject a call without one), whatever became of it."""

from __future__ import annotations

from typing import Any

from stackkit.core.turn_context import to_messages


def _call(name: str, ident: str, **extra: Any) -> dict[str, Any]:
    return {"type": "mcp_call", "id": ident, "server_label": "s", "name": name, "arguments": "{}", **extra}


def _ask(ident: str) -> dict[str, Any]:
    return {"type": "mcp_approval_request", "id": ident, "server_label": "s", "name": "go", "arguments": "{}"}


CONTEXT: list[dict[str, Any]] = [
    {"type": "message", "role": "user", "content": "hi"},
    {"type": "mcp_list_tools", "id": "l1", "server_label": "s", "tools": []},
    _call("shout", "c1", output="HI"),
    _call("explode", "c2", error="boom"),
    _ask("r1"),  # approved, and run in the next turn
    {"type": "mcp_approval_response", "id": "a1", "approval_request_id": "r1", "approve": True},
    _call("go", "c3", output="went", approval_request_id="r1"),
    _ask("r2"),  # declined
    {"type": "mcp_approval_response", "id": "a2", "approval_request_id": "r2", "approve": False},
    _ask("r3"),  # never answered
    {"type": "file_search_call", "id": "fs1", "queries": ["cats"], "status": "completed", "results": None},
    {"type": "function_call", "id": "f1", "call_id": "k1", "name": "f", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "k1", "output": "42"},
    {"type": "message", "role": "user", "content": "and now?"},
]


def test_every_call_is_answered_right_after_it() -> None:
    messages = to_messages(CONTEXT, "be brief")
    results: dict[str, str] = {}
    waiting: list[str] = []
    for message in messages:
        if message["role"] == "tool":
            assert message["tool_call_id"] == waiting.pop(0)
            results[message["tool_call_id"]] = message["content"]
        else:
            assert not waiting, f"calls {waiting} have no result before the next message"
            waiting = [c["id"] for c in message.get("tool_calls") or []]
    assert results == {"c1": "HI", "c2": "error: boom", "r1": "went", "r2": "Not run: the user declined this call.",
                       "r3": "Not run: waiting for the user's approval.", "fs1": "(the passages found were not kept)",
                       "k1": "42"}
    assert messages[0] == {"role": "system", "content": "be brief"} and messages[-1]["content"] == "and now?"


def _turn(n: int, words: int = 40) -> list[dict[str, Any]]:
    return [{"type": "message", "role": "user", "content": f"question {n} " + "w " * words},
            {"type": "function_call", "id": f"f{n}", "call_id": f"k{n}", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": f"k{n}", "output": "r " * words},
            {"type": "message", "role": "assistant", "content": f"answer {n}"}]


def test_truncation_drops_whole_old_turns_and_keeps_the_rest_valid() -> None:
    import pytest

    from stackkit.core.turn_context import truncate
    from stackkit.errors import InvalidRequestError

    system = {"type": "message", "role": "developer", "content": "rules"}
    now = {"type": "message", "role": "user", "content": "the question now"}
    context = [system, *[item for n in range(10) for item in _turn(n)], now]
    kept = truncate(context, keep=1, budget=300)
    assert kept[0] == system and kept[-1] == now and len(kept) < len(context)
    first_user = next(i for i in kept[1:] if i["type"] == "message")
    assert first_user["role"] == "user"  # it starts at a turn's beginning, never mid-turn
    assert {i["call_id"] for i in kept if i["type"] == "function_call"} == \
        {i["call_id"] for i in kept if i["type"] == "function_call_output"}
    assert "question 9" in kept[-5]["content"]  # the newest turns are the ones kept
    assert truncate(context, keep=1, budget=100_000) == context
    with pytest.raises(InvalidRequestError) as err:
        truncate([system, {"type": "message", "role": "user", "content": "x " * 2000}], keep=1, budget=100)
    assert err.value.code == "context_length_exceeded"
