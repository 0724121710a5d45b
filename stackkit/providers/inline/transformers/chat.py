"""Chat templating and tool-call parsing for local models."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from stackkit.apis.inference import (
    AssistantMessage,
    ChatCompletionRequest,
    FunctionCall,
    ToolCall,
    ToolMessage,
    content_text,
)
from stackkit.errors import InvalidRequestError

_TOOL_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)


def template_messages(request: ChatCompletionRequest) -> list[dict[str, Any]]:
    """The request's messages as the dicts Hugging Face chat templates expect."""
    out: list[dict[str, Any]] = []
    for m in request.messages:
        role = "system" if m.role == "developer" else m.role
        item: dict[str, Any] = {"role": role, "content": content_text(m.content)}
        if isinstance(m, AssistantMessage) and m.tool_calls:
            item["tool_calls"] = [{"id": c.id, "type": "function", "function": {
                "name": c.function.name, "arguments": _loads(c.function.arguments)}} for c in m.tool_calls]
        if isinstance(m, ToolMessage):
            item["tool_call_id"] = m.tool_call_id
        out.append(item)
    return out


def _loads(arguments: str) -> Any:
    try:
        return json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return arguments


def render_prompt(tokenizer: Any, request: ChatCompletionRequest) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise InvalidRequestError(
            "This model's tokenizer has no chat template; use /v1/completions, or set chat_template in the "
            "provider config.", param="messages")
    tools = [t.function.model_dump(exclude_none=True) for t in request.tools or []] if request.tool_choice != "none" else []
    wrapped = [{"type": "function", "function": t} for t in tools] or None
    try:
        text = tokenizer.apply_chat_template(template_messages(request), tools=wrapped, add_generation_prompt=True,
                                             tokenize=False)
    except Exception as exc:  # noqa: BLE001 - template errors are the caller's messages not fitting it
        raise InvalidRequestError(f"The model's chat template rejected these messages: {exc}",
                                  param="messages") from exc
    return str(text)


def parse_tool_calls(text: str, tool_names: set[str]) -> tuple[str, list[ToolCall]]:
    """Tool calls in a generation: ``<tool_call>{...}</tool_call>`` blocks (Hermes/Qwen style), or the
    whole output as one ``{"name": ..., "arguments"|"parameters": {...}}`` object (Llama 3 style)."""
    candidates = [m.group(1) for m in _TOOL_CALL.finditer(text)]
    rest = _TOOL_CALL.sub("", text).strip() if candidates else text
    if not candidates and text.strip().startswith("{"):
        candidates, rest = [text.strip()], ""
    calls = []
    for raw in candidates:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            return text, []
        name = data.get("name") if isinstance(data, dict) else None
        if name not in tool_names:
            return text, []
        arguments = data.get("arguments", data.get("parameters", {}))
        calls.append(ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", function=FunctionCall(
            name=name, arguments=arguments if isinstance(arguments, str) else json.dumps(arguments))))
    return rest, calls
