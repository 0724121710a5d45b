"""Tool-call parsing for local models' output."""

from __future__ import annotations

from typing import Any

import pytest

from stackkit.providers.utils.local_chat import parse_tool_calls


@pytest.mark.parametrize(("text", "content", "calls"), [
    ('<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>', "",
     [("get_weather", {"city": "Paris"})]),
    ('Sure.<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{"name": "b", "arguments": {"x": 1}}'
     "</tool_call>", "Sure.", [("a", {}), ("b", {"x": 1})]),
    ('{"name": "get_weather", "parameters": {"city": "Oslo"}}', "", [("get_weather", {"city": "Oslo"})]),
    ('{"name": "unknown_tool", "arguments": {}}', '{"name": "unknown_tool", "arguments": {}}', []),
    ("<tool_call>{not json}</tool_call>", "<tool_call>{not json}</tool_call>", []),
    ("just text", "just text", []),
])
def test_tool_call_parsing(text: str, content: str, calls: list[tuple[str, dict[str, Any]]]) -> None:
    import json

    rest, parsed = parse_tool_calls(text, {"get_weather", "a", "b"})
    assert rest == content
    assert [(c.function.name, json.loads(c.function.arguments)) for c in parsed] == calls
