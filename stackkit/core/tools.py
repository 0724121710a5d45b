"""Server-side tools of the Responses engine: the model calls them like functions, the server runs them.

`file_search` searches stackkit's vector stores (hybrid search over the stores a request names), returns
the passages to the model, and the answer cites the files they came from. `mcp` tools are listed from,
and called on, a remote MCP server over streamable HTTP with the `mcp` SDK; a failing server or tool is
an `error` on its item, never a failed turn. Each server gets one session, held open by its own task and
shared by every turn (bounded by timeouts, closed when idle, reopened once when the server dropped it).
Across turns: an approved call runs at the start of the next turn, a server's tool list is reused while
its definition is unchanged, and a tool is shown and stored without its credentials.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx

from stackkit.apis.agents import (
    CreateResponseRequest,
    FileSearchCallItem,
    FileSearchResult,
    FileSearchTool,
    McpCallItem,
    McpListedTool,
    McpListToolsItem,
    McpTool,
    ResponseObject,
)
from stackkit.apis.vector_io import SearchVectorStoreRequest, VectorIO
from stackkit.core.redact import redact_url
from stackkit.core.telemetry import Telemetry, span
from stackkit.errors import InvalidRequestError, MissingPackageError

MCP_TIMEOUT_S = 30.0

FILE_SEARCH = "file_search"
FILE_SEARCH_FUNCTION = {
    "type": "function",
    "function": {
        "name": FILE_SEARCH,
        "description": "Search the user's uploaded files for passages relevant to a query.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string", "description": "what to find",
                                                                  "maxLength": 120}},  # bounds a looping small model
                       "required": ["query"]},
    },
}


def check_server_tools(tools: list[Any], vector_io: VectorIO | None) -> None:
    if any(isinstance(t, FileSearchTool) for t in tools) and vector_io is None:
        raise InvalidRequestError("file_search needs a vector_io provider; add one to run.yaml.", param="tools")


async def run_file_search(tool: FileSearchTool, arguments: str, vector_io: VectorIO
                          ) -> tuple[FileSearchCallItem, str, list[dict[str, Any]]]:
    """The call's output item, the text the model reads, and the citations of the files found."""
    try:
        query = str(json.loads(arguments or "{}").get("query") or "")
    except (json.JSONDecodeError, AttributeError):
        query = arguments
    results: list[FileSearchResult] = []
    for store_id in tool.vector_store_ids:
        page = await vector_io.search_vector_store(SearchVectorStoreRequest(
            vector_store_id=store_id, query=query or " ", max_num_results=tool.max_num_results, filters=tool.filters,
            search_mode="hybrid", **({"ranking_options": tool.ranking_options} if tool.ranking_options else {})))
        results += [FileSearchResult(file_id=r.file_id, filename=r.filename, score=r.score, attributes=r.attributes,
                                     text="".join(c.text for c in r.content)) for r in page.data]
    results = sorted(results, key=lambda r: -(r.score or 0))[: tool.max_num_results]
    item = FileSearchCallItem(id=f"fs_{uuid.uuid4().hex}", queries=[query], status="completed", results=results)
    text = "\n\n".join(f"[{r.filename}] {r.text}" for r in results) or "No matching passages were found."
    cited = {r.file_id: r.filename for r in results if r.file_id}
    citations = [{"type": "file_citation", "file_id": f, "filename": n or f, "index": 0} for f, n in cited.items()]
    return item, text, citations


def _reason(exc: BaseException) -> str:
    """What went wrong, from the innermost cause (the SDK wraps transport errors in exception groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


def _mcp_headers(tool: McpTool) -> dict[str, str]:
    headers = dict(tool.headers or {})
    if tool.authorization:
        headers["Authorization"] = f"Bearer {tool.authorization}"
    return headers


class _Session:
    """One MCP session kept open by its own task (the SDK's streams must be entered and left in one task);
    calls from any task go through it."""

    def __init__(self, tool: McpTool) -> None:
        self.tool = tool
        self.ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.stop = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._hold())
        self.last_used = time.monotonic()

    async def _hold(self) -> None:
        try:
            from mcp import ClientSession
            from mcp.client.streamable_http import streamable_http_client
        except ImportError as exc:
            self.ready.set_exception(MissingPackageError("mcp", "agents"))
            raise MissingPackageError("mcp", "agents") from exc
        try:
            http = httpx.AsyncClient(headers=_mcp_headers(self.tool),
                                     timeout=httpx.Timeout(MCP_TIMEOUT_S, read=MCP_TIMEOUT_S * 4))
            assert self.tool.server_url is not None, "a tool group's URL is filled in before any session"
            async with http, streamable_http_client(self.tool.server_url, http_client=http) as (read, write, _), \
                    ClientSession(read, write) as session:
                await session.initialize()
                self.ready.set_result(session)
                await self.stop.wait()
        except BaseException as exc:
            if not self.ready.done():
                self.ready.set_exception(exc if isinstance(exc, Exception) else ConnectionError("MCP session ended"))
            if not isinstance(exc, Exception):
                raise

    async def call(self, work: Any) -> Any:
        """Await `work` unless the session dies first (the SDK can leave a request waiting on a dead server)."""
        job = asyncio.ensure_future(work)
        try:
            await asyncio.wait([job, self.task], timeout=MCP_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not job.done():
                job.cancel()
        if job.done() and not job.cancelled():
            return job.result()
        if self.task.done():
            raise ConnectionError("the MCP server closed the session")
        raise TimeoutError(f"the MCP server did not answer within {MCP_TIMEOUT_S:.0f} s")

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(self.task, return_exceptions=True)


class McpSessions:
    """One open session per MCP server (URL and credentials), reused by every turn and closed when idle.
    A call on a session the server dropped is retried once on a fresh session."""

    def __init__(self, idle_s: float = 60.0) -> None:
        self.idle_s = idle_s
        self.sessions: dict[tuple[str, tuple[tuple[str, str], ...]], _Session] = {}
        self.telemetry: Telemetry | None = None  # set by the Stack when run.yaml has telemetry

    @staticmethod
    def _key(tool: McpTool) -> tuple[str, tuple[tuple[str, str], ...]]:
        return tool.server_url or "", tuple(sorted(_mcp_headers(tool).items()))

    async def run(self, tool: McpTool, work: Any) -> Any:
        """`await work(session)` on the server's session, opening one if needed; bounded by MCP_TIMEOUT_S."""
        await self._close_idle()
        for attempt in (1, 2):
            key = self._key(tool)
            held = self.sessions.get(key)
            if held is None or held.task.done():
                held = self.sessions[key] = _Session(tool)
            held.last_used = time.monotonic()
            try:
                session = await asyncio.wait_for(asyncio.shield(held.ready), MCP_TIMEOUT_S)
                return await held.call(work(session))
            except TimeoutError:
                raise
            except Exception:
                self.sessions.pop(key, None)
                await held.close()
                if attempt == 2 or not held.ready.done() or held.ready.exception() is not None:
                    raise
        raise AssertionError("unreachable")

    async def _close_idle(self) -> None:
        now = time.monotonic()
        for key, held in list(self.sessions.items()):
            if now - held.last_used > self.idle_s or held.task.done():
                self.sessions.pop(key, None)
                await held.close()

    async def close(self) -> None:
        sessions, self.sessions = list(self.sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


async def list_mcp_tools(tool: McpTool, sessions: McpSessions) -> McpListToolsItem:
    """The server's tools that the request allows (an `error` instead when the server cannot be reached)."""
    item = McpListToolsItem(id=f"mcpl_{uuid.uuid4().hex}", server_label=tool.server_label)
    try:
        listed = await sessions.run(tool, lambda s: s.list_tools())
    except MissingPackageError:
        raise
    except Exception as exc:  # noqa: BLE001 - an unreachable server is reported on the item, not raised
        item.error = f"could not list the tools of {tool.server_label}: {_reason(exc)}"
        return item
    allowed = tool.allowed()
    item.tools = [McpListedTool(name=t.name, description=t.description, input_schema=t.inputSchema or {},
                                annotations=t.annotations.model_dump() if t.annotations else None)
                  for t in listed.tools if allowed is None or t.name in allowed]
    return item


async def call_mcp_tool(tool: McpTool, name: str, arguments: str, sessions: McpSessions) -> McpCallItem:
    """The call as an output item: its output, or the error that stopped it."""
    item = McpCallItem(id=f"mcp_{uuid.uuid4().hex}", server_label=tool.server_label, name=name, arguments=arguments)
    allowed = tool.allowed()
    if allowed is not None and name not in allowed:
        item.status, item.error = "failed", f"tool '{name}' is not in allowed_tools of {tool.server_label}"
        return item
    try:
        args = json.loads(arguments or "{}")
        with span(sessions.telemetry, f"execute_tool {name}", **{"gen_ai.operation.name": "execute_tool",
                                                                  "gen_ai.tool.name": name,
                                                                  "stackkit.mcp_server": tool.server_label}):
            result = await sessions.run(tool, lambda s: s.call_tool(name, args))
    except MissingPackageError:
        raise
    except Exception as exc:  # noqa: BLE001 - the server or the arguments failed: the model is told
        item.status, item.error = "failed", _reason(exc)
        return item
    text = "".join(getattr(c, "text", "") for c in result.content)
    if result.isError:
        item.status, item.error = "failed", text or "the tool reported an error"
    else:
        item.output = text
    return item


def mcp_functions(listings: list[tuple[McpTool, McpListToolsItem]]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": t.name, "description": t.description or "",
                                              "parameters": t.input_schema or {"type": "object", "properties": {}}}}
            for _, listing in listings for t in listing.tools]


# ---- MCP across turns: approvals answered, tool lists reused, tools shown without credentials -----


async def run_approved_calls(request: CreateResponseRequest, items: list[dict[str, Any]],
                         history: list[dict[str, Any]], sessions: McpSessions) -> list[McpCallItem]:
    """Answer the input's mcp_approval_response items: run each approved call (a refused one is only noted)."""
    asked = {i["id"]: i for i in [*history, *items] if i["type"] == "mcp_approval_request"}
    answered = {i.get("approval_request_id") for i in history if i["type"] in ("mcp_call", "mcp_approval_response")}
    servers = {t.server_label: t for t in request.tools if isinstance(t, McpTool)}
    calls = []
    for n, answer in enumerate(items):
        if answer["type"] != "mcp_approval_response":
            continue
        asked_for, param = asked.get(answer["approval_request_id"]), f"input.{n}.approval_request_id"
        if asked_for is None:
            raise InvalidRequestError(f"'{answer['approval_request_id']}' is not an mcp_approval_request of this "
                                      "conversation; answer the id of one (previous_response_id must name the "
                                      "response that asked).", param=param)
        if asked_for["id"] in answered:
            raise InvalidRequestError(f"'{asked_for['id']}' was already answered; send a new message instead.",
                                      param=param)
        server = servers.get(asked_for["server_label"])
        if server is None:
            raise InvalidRequestError(f"the approved call goes to MCP server '{asked_for['server_label']}'; "
                                      "include that mcp tool in tools so it can run.", param="tools")
        if answer["approve"]:
            call = await call_mcp_tool(server, asked_for["name"], asked_for["arguments"], sessions)
            call.approval_request_id = asked_for["id"]
            calls.append(call)
    return calls


def shown_tool(tool: McpTool) -> dict[str, Any]:
    shown = tool.stored()
    shown["server_url"] = redact_url(tool.server_url or "")
    return shown


def reusable_listings(request: CreateResponseRequest, previous: str, history: list[dict[str, Any]]
                       ) -> dict[str, McpListToolsItem]:
    """The MCP tool lists of earlier turns, by server label, for servers defined as the previous response
    defined them (same URL, allowed tools and header names): those are not listed again, as OpenAI does."""
    servers = [t for t in request.tools if isinstance(t, McpTool)]
    if not servers:
        return {}
    before = {t.server_label: t for t in ResponseObject.model_validate_json(previous).tools if isinstance(t, McpTool)}
    listed = {i["server_label"]: i for i in history if i["type"] == "mcp_list_tools" and not i.get("error")}
    return {t.server_label: McpListToolsItem.model_validate(listed[t.server_label]) for t in servers
            if t.server_label in listed and t.server_label in before and _same_server(before[t.server_label], t)}


def _same_server(old: McpTool, new: McpTool) -> bool:
    return (old.server_url, old.allowed_tools, sorted(old.headers or {})) == \
        (new.server_url, new.allowed_tools, sorted(new.headers or {}))
