"""What a Responses turn works from: the request's input as items, those items as chat messages, the
tools the model is offered (and which of them the server runs), usage sums and event numbering."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from stackkit.apis.agents import (
    CreateResponseRequest,
    FileSearchTool,
    McpListToolsItem,
    McpTool,
    ResponseEvent,
    ResponseUsage,
)
from stackkit.core.tools import FILE_SEARCH, FILE_SEARCH_FUNCTION, list_mcp_tools, mcp_functions
from stackkit.errors import InvalidRequestError


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def item_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    raise InvalidRequestError("A message's content must be a string or a list of text parts.", param="input")


def input_items(request: CreateResponseRequest) -> list[dict[str, Any]]:
    """The request's input as items, each with an id (a string input is one user message)."""
    if isinstance(request.input, str):
        return [{"id": new_id("msg"), "type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": request.input}]}]
    items = []
    for i, item in enumerate(request.input):
        kind = item.get("type", "message")
        if kind not in ("message", "function_call", "function_call_output"):
            raise InvalidRequestError(f"input[{i}]: items of type '{kind}' are not supported yet; send messages, "
                                      "function_call and function_call_output items.", param=f"input.{i}.type")
        if kind == "message" and item.get("role") not in ("user", "system", "developer", "assistant"):
            raise InvalidRequestError(f"input[{i}].role must be user, system, developer or assistant; use one.",
                                      param=f"input.{i}.role")
        if kind == "function_call_output" and not isinstance(item.get("call_id"), str):
            raise InvalidRequestError(f"input[{i}] needs the call_id of the function call it answers.",
                                      param=f"input.{i}.call_id")
        items.append({"id": item.get("id") or new_id("msg" if kind == "message" else "fc"), **item, "type": kind})
    return items


def to_messages(context: list[dict[str, Any]], instructions: str | None) -> list[dict[str, Any]]:
    """Chat messages for a context of Responses items (function calls and their outputs kept)."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": instructions}] if instructions else []
    for item in context:
        kind = item["type"]
        if kind == "message":
            messages.append({"role": item["role"], "content": item_text(item["content"])})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            if messages and messages[-1]["role"] == "assistant" and "tool_calls" in messages[-1]:
                messages[-1]["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": str(item.get("output", ""))})
    return messages


@dataclass
class TurnTools:
    """The tools of one turn: what the model is offered, and which of them the server runs."""

    functions: list[dict[str, Any]] = field(default_factory=list)
    file_search: FileSearchTool | None = None
    mcp: dict[str, McpTool] = field(default_factory=dict)  # tool name -> the server it came from
    listings: list[McpListToolsItem] = field(default_factory=list)

    @property
    def server_names(self) -> set[str]:
        return {*self.mcp, *([FILE_SEARCH] if self.file_search is not None else [])}


async def turn_tools(request: CreateResponseRequest) -> TurnTools:
    tools = TurnTools()
    for tool in request.tools:
        if isinstance(tool, FileSearchTool):
            tools.file_search = tool
            tools.functions.append(FILE_SEARCH_FUNCTION)
        elif isinstance(tool, McpTool):
            listing = await list_mcp_tools(tool)
            tools.listings.append(listing)
            tools.mcp.update({t.name: tool for t in listing.tools})
            tools.functions += mcp_functions([(tool, listing)])
        else:
            tools.functions.append({"type": "function",
                                    "function": tool.model_dump(exclude={"type"}, exclude_none=True)})
    return tools


MAX_TOOL_CALLS = 8  # server-side tool calls in one response unless max_tool_calls says otherwise


def add_usage(total: ResponseUsage, step: ResponseUsage) -> ResponseUsage:
    return ResponseUsage(input_tokens=total.input_tokens + step.input_tokens,
                         output_tokens=total.output_tokens + step.output_tokens,
                         total_tokens=total.total_tokens + step.total_tokens)


class Events:
    """Numbers events from 0, in the order they are made."""

    def __init__(self) -> None:
        self.sequence = 0

    def __call__(self, type_: str, **fields: Any) -> ResponseEvent:
        event = ResponseEvent(type=type_, sequence_number=self.sequence, **fields)
        self.sequence += 1
        return event
