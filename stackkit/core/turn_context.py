"""What a Responses turn works from: the request's input as items, those items as chat messages, the
tools the model is offered (and which of them the server runs), usage sums and event numbering."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from stackkit.apis.agents import (
    CreateResponseRequest,
    FileSearchTool,
    McpCallItem,
    McpListToolsItem,
    McpTool,
    ResponseEvent,
    ResponseUsage,
)
from stackkit.core.conversations import stored_item
from stackkit.core.tools import FILE_SEARCH, FILE_SEARCH_FUNCTION, McpSessions, list_mcp_tools, mcp_functions
from stackkit.errors import InvalidRequestError


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def item_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    raise InvalidRequestError("A message's content must be a string or a list of text parts.", param="input")


INPUT_KINDS = ("message", "function_call", "function_call_output", "mcp_approval_response",
               # earlier output items, sent back by clients that keep the state themselves
               "mcp_call", "mcp_list_tools", "mcp_approval_request", "file_search_call")
_PREFIX = {"message": "msg", "function_call": "fc", "mcp_approval_response": "mcpa"}


def input_items(request: CreateResponseRequest) -> list[dict[str, Any]]:
    """The request's input as items, each with an id (a string input is one user message)."""
    if isinstance(request.input, str):
        return [{"id": new_id("msg"), "type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": request.input}]}]
    items = []
    for i, item in enumerate(request.input):
        kind = item.get("type", "message")
        if kind not in INPUT_KINDS:
            raise InvalidRequestError(f"input[{i}]: items of type '{kind}' are not supported yet; send one of "
                                      f"{', '.join(INPUT_KINDS)}.", param=f"input.{i}.type")
        if kind == "message" and item.get("role") not in ("user", "system", "developer", "assistant"):
            raise InvalidRequestError(f"input[{i}].role must be user, system, developer or assistant; use one.",
                                      param=f"input.{i}.role")
        if kind == "function_call_output" and not isinstance(item.get("call_id"), str):
            raise InvalidRequestError(f"input[{i}] needs the call_id of the function call it answers.",
                                      param=f"input.{i}.call_id")
        if kind == "mcp_approval_response" and not (isinstance(item.get("approval_request_id"), str)
                                                    and isinstance(item.get("approve"), bool)):
            raise InvalidRequestError(f"input[{i}]: send approval_request_id (the mcp_approval_request's id) and "
                                      "approve (true or false).", param=f"input.{i}")
        items.append(stored_item({"id": item.get("id") or new_id(_PREFIX.get(kind, "item")), **item, "type": kind}))
    return items


def _assistant_call(messages: list[dict[str, Any]], call_id: str, name: str, arguments: str) -> None:
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    if messages and messages[-1]["role"] == "assistant" and "tool_calls" in messages[-1]:
        messages[-1]["tool_calls"].append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _approval_outcomes(context: list[dict[str, Any]]) -> dict[str, str]:
    """What became of each MCP approval request: the call's output, a refusal, or still waiting."""
    outcomes = {i["id"]: "Not run: waiting for the user's approval." for i in context
                if i["type"] == "mcp_approval_request"}
    for item in context:
        if item["type"] == "mcp_approval_response" and not item["approve"]:
            outcomes[item["approval_request_id"]] = "Not run: the user declined this call."
        elif item["type"] == "mcp_call" and item.get("approval_request_id"):
            outcomes[item["approval_request_id"]] = _mcp_result(item)
    return outcomes


def _mcp_result(item: dict[str, Any]) -> str:
    return f"error: {item['error']}" if item.get("error") else str(item.get("output") or "")


def to_messages(context: list[dict[str, Any]], instructions: str | None) -> list[dict[str, Any]]:
    """Chat messages for a context of Responses items: every tool call of every turn is kept with its result
    (function calls, MCP calls, approvals, file searches), so later turns see what earlier ones did."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": instructions}] if instructions else []
    outcomes = _approval_outcomes(context)
    for item in context:
        kind = item["type"]
        if kind == "message":
            messages.append({"role": item["role"], "content": item_text(item["content"])})
        elif kind == "function_call":
            _assistant_call(messages, item["call_id"], item["name"], item["arguments"])
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": str(item.get("output", ""))})
        elif kind == "mcp_approval_request":  # the call and what became of it, together
            _assistant_call(messages, item["id"], item["name"], item["arguments"])
            messages.append({"role": "tool", "tool_call_id": item["id"], "content": outcomes[item["id"]]})
        elif kind == "mcp_call" and not item.get("approval_request_id"):
            _assistant_call(messages, item["id"], item["name"], item["arguments"])
            messages.append({"role": "tool", "tool_call_id": item["id"], "content": _mcp_result(item)})
        elif kind == "file_search_call":
            found = "\n\n".join(str(r.get("text", "")) for r in item.get("results") or []) or \
                "(the passages found were not kept)"
            _assistant_call(messages, item["id"], "file_search", json.dumps({"query": " ".join(item["queries"])}))
            messages.append({"role": "tool", "tool_call_id": item["id"], "content": found})
    return messages


@dataclass
class TurnTools:
    """The tools of one turn: what the model is offered, and which of them the server runs."""

    functions: list[dict[str, Any]] = field(default_factory=list)
    file_search: FileSearchTool | None = None
    mcp: dict[str, McpTool] = field(default_factory=dict)  # tool name -> the server it came from
    listings: list[McpListToolsItem] = field(default_factory=list)
    chat_choice: Any = "auto"  # the tool_choice the model is sent
    allowed: set[str] | None = None  # names the model may call this turn (None: all); others are refused
    approved: list[McpCallItem] = field(default_factory=list)  # calls the client approved, run before the model
    awaiting_approval: bool = False  # a call this turn needs the client's approval: the turn ends

    @property
    def server_names(self) -> set[str]:
        return {*self.mcp, *([FILE_SEARCH] if self.file_search is not None else [])}

    @property
    def names(self) -> list[str]:
        return [f["function"]["name"] for f in self.functions]

    def refused(self) -> set[str]:
        """Offered names the model may not call this turn (allowed_tools)."""
        return set() if self.allowed is None else set(self.names) - self.allowed


async def turn_tools(request: CreateResponseRequest, sessions: McpSessions,
                     reuse: dict[str, McpListToolsItem] | None = None) -> TurnTools:
    """The turn's tools; an MCP server whose listing is in `reuse` (by label) is not listed again."""
    tools = TurnTools()
    for tool in request.tools:
        if isinstance(tool, FileSearchTool):
            tools.file_search = tool
            tools.functions.append(FILE_SEARCH_FUNCTION)
        elif isinstance(tool, McpTool):
            reused = (reuse or {}).get(tool.server_label)
            listing = reused or await list_mcp_tools(tool, sessions)
            if reused is None:
                tools.listings.append(listing)
            tools.mcp.update({t.name: tool for t in listing.tools})
            tools.functions += mcp_functions([(tool, listing)])
        else:
            tools.functions.append({"type": "function",
                                    "function": tool.model_dump(exclude={"type"}, exclude_none=True)})
    tools.chat_choice, tools.allowed = _tool_choice(request.tool_choice, tools)
    return tools


def _choice_names(choice: dict[str, Any], tools: TurnTools) -> set[str]:
    """The offered tool names a tool_choice entry stands for (a 400 when it stands for none)."""
    kind = choice.get("type")
    if kind == "function" and isinstance(choice.get("name"), str):
        names = {choice["name"]}
    elif kind == "mcp" and isinstance(choice.get("server_label"), str):
        servers = {n for n, t in tools.mcp.items() if t.server_label == choice["server_label"]}
        names = {choice["name"]} & servers if isinstance(choice.get("name"), str) else servers
    elif kind == "file_search":
        names = {FILE_SEARCH}
    else:
        raise InvalidRequestError('a tool_choice entry is {"type": "function", "name": ...}, {"type": "mcp", '
                                  '"server_label": ..., "name": ...} or {"type": "file_search"}; use one of those.',
                                  param="tool_choice")
    if not names or not names <= set(tools.names):
        offered = ", ".join(sorted(tools.names)) or "none"
        raise InvalidRequestError(f"tool_choice names {choice}, which is not among the tools ({offered}); name one "
                                  "of them.", param="tool_choice")
    return names


def _tool_choice(choice: Any, tools: TurnTools) -> tuple[Any, set[str] | None]:
    """(the tool_choice for the model, the names it may call): none/auto/required, one named tool, or
    allowed_tools (every tool stays offered; calls of the others are refused and the model is told)."""
    if isinstance(choice, str):
        return choice, None
    if choice.get("type") == "allowed_tools":
        entries, mode = choice.get("tools"), choice.get("mode", "auto")
        if mode not in ("auto", "required") or not isinstance(entries, list) or not entries:
            raise InvalidRequestError('allowed_tools needs mode "auto" or "required" and a non-empty tools list; '
                                      "send both.", param="tool_choice")
        allowed = set().union(*(_choice_names(e if isinstance(e, dict) else {}, tools) for e in entries))
        if mode == "required" and len(allowed) == 1:  # chat APIs can force one named tool, not a subset
            return {"type": "function", "function": {"name": next(iter(allowed))}}, allowed
        return mode, allowed
    names = _choice_names(choice, tools)
    if len(names) == 1:
        return {"type": "function", "function": {"name": next(iter(names))}}, names
    return "required", names  # any tool of one MCP server


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


def _estimated_tokens(item: dict[str, Any]) -> int:
    """A deliberately generous token estimate (about 3 characters a token, plus framing)."""
    return len(json.dumps(item, ensure_ascii=False)) // 3 + 4


def truncate(context: list[dict[str, Any]], keep: int, budget: int) -> list[dict[str, Any]]:
    """truncation=auto: the context without its oldest turns (a turn starts at a user message and keeps its
    tool calls with their results) until its estimated size fits `budget` tokens. System and developer
    messages and the last `keep` items (this request's input) always stay; if those alone do not fit, a 400."""
    pinned = [i for i in context[:-keep or None] if i["type"] == "message" and i["role"] in ("system", "developer")]
    older = [i for i in context[:-keep or None] if i not in pinned]
    recent = context[len(context) - keep:] if keep else []
    fixed = sum(_estimated_tokens(i) for i in [*pinned, *recent])
    if fixed > budget:
        raise InvalidRequestError(f"This request's input is about {fixed} tokens (estimated), more than the "
                                  f"{budget} the model's context leaves for it; shorten the input or lower "
                                  "max_output_tokens.", param="input", code="context_length_exceeded")
    starts = [n for n, i in enumerate(older) if i["type"] == "message" and i["role"] == "user"] + [len(older)]
    sizes = [_estimated_tokens(i) for i in older]
    for start in [0, *starts]:  # drop whole turns from the oldest until the rest fits
        if fixed + sum(sizes[start:]) <= budget:
            return [*pinned, *older[start:], *recent]
    return [*pinned, *recent]
