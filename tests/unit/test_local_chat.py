"""Local models' chat: tool calls parsed from their output (Hermes `<tool_call>` blocks or one bare JSON
object), and prompts: a chat template that renders no tools still gets them, as a system message in the
`<tool_call>` format the parser reads; a template that renders tools is left alone."""

from __future__ import annotations

from typing import Any

import pytest

from stackkit.apis.inference import ChatCompletionRequest
from stackkit.providers.utils.local_chat import parse_tool_calls, render_prompt

CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "weather in a city",
                                           "parameters": CITY}}]


class Template:
    """A tokenizer whose chat template renders tools or not."""

    chat_template = "yes"

    def __init__(self, renders_tools: bool) -> None:
        self.renders_tools = renders_tools

    def apply_chat_template(self, messages: list[dict[str, Any]], tools: Any = None, **_: Any) -> str:
        shown = f"[tools {tools}]" if tools and self.renders_tools else ""
        return shown + "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


def request(**extra: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}], **extra})


def test_a_template_without_tools_gets_them_as_a_system_message() -> None:
    prompt = render_prompt(Template(renders_tools=False), request(tools=TOOLS))
    assert prompt.startswith("<system>Be brief.\n\nYou can call these functions:\n{\"name\": \"get_weather\"")
    assert "<tool_call>" in prompt and prompt.count("<system>") == 1
    assert render_prompt(Template(renders_tools=False), request(tools=TOOLS, tool_choice="none")) == \
        "<system>Be brief.<user>Weather in Paris?<assistant>"


def test_a_template_with_tools_is_left_alone() -> None:
    prompt = render_prompt(Template(renders_tools=True), request(tools=TOOLS))
    assert prompt.startswith("[tools ") and "You can call" not in prompt


def test_the_fallback_format_is_what_the_parser_reads() -> None:
    rest, calls = parse_tool_calls('<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
                                   {"get_weather"})
    assert rest == "" and calls[0].function.name == "get_weather" and '"Paris"' in calls[0].function.arguments


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


def test_open_strings_are_bounded_to_fit_the_budget_and_bounded_ones_left_alone() -> None:
    from stackkit.providers.utils.local_chat import CHARS_PER_TOKEN, fitted

    schema = {"type": "object", "properties": {
        "a": {"type": "string"}, "b": {"type": "array", "items": {"type": "string"}},
        "code": {"type": "string", "pattern": "^[0-9]{5}$"}, "kind": {"type": "string", "enum": ["x", "y"]},
        "short": {"type": "string", "maxLength": 3}}}
    for budget in (64, 256, 2048):
        out = fitted(schema, budget)["properties"]
        cap = out["a"]["maxLength"]
        assert out["b"]["items"]["maxLength"] == cap and cap * 5 <= budget * CHARS_PER_TOKEN  # a + 4 items
        assert out["code"] == schema["properties"]["code"] and out["kind"] == schema["properties"]["kind"]  # type: ignore[index]
        assert out["short"] == {"type": "string", "maxLength": 3}
    assert fitted(schema, 2048)["properties"]["a"]["maxLength"] > fitted(schema, 256)["properties"]["a"]["maxLength"]
