"""Prompts for local models: a chat template that renders no tools still gets them, as a system message in
the `<tool_call>` format the parser reads; a template that renders tools is left alone."""

from __future__ import annotations

from typing import Any

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
