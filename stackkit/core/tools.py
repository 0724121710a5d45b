"""Server-side tools of the Responses engine: the model calls them like functions, the server runs them.

`file_search` searches stackkit's vector stores (hybrid search over the stores a request names), returns
the passages to the model, and the answer cites the files they came from. `mcp` tools are listed from,
and called on, a remote MCP server over streamable HTTP with the `mcp` SDK; a failing server or tool is
an `error` on its item, never a failed turn. Each listing and call opens its own session (bounded by
timeouts), so a stream can run them from whichever task iterates it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx

from stackkit.apis.agents import (
    FileSearchCallItem,
    FileSearchResult,
    FileSearchTool,
    McpCallItem,
    McpListedTool,
    McpListToolsItem,
    McpTool,
)
from stackkit.apis.vector_io import SearchVectorStoreRequest, VectorIO
from stackkit.errors import InvalidRequestError, MissingPackageError

MCP_TIMEOUT_S = 30.0

FILE_SEARCH = "file_search"
FILE_SEARCH_FUNCTION = {
    "type": "function",
    "function": {
        "name": FILE_SEARCH,
        "description": "Search the user's uploaded files for passages relevant to a query.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string", "description": "what to find"}},
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


def _mcp_headers(tool: McpTool) -> dict[str, str]:
    headers = dict(tool.headers or {})
    if tool.authorization:
        headers["Authorization"] = f"Bearer {tool.authorization}"
    return headers


async def _mcp_session(tool: McpTool, work: Any) -> Any:
    """`await work(session)` on a fresh, initialized MCP session to the tool's server."""
    try:
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client
    except ImportError as exc:
        raise MissingPackageError("mcp", "agents") from exc
    http = httpx.AsyncClient(headers=_mcp_headers(tool), timeout=httpx.Timeout(MCP_TIMEOUT_S, read=MCP_TIMEOUT_S * 4))
    async with http, streamable_http_client(tool.server_url, http_client=http) as (read, write, _), \
            ClientSession(read, write) as session:
        await session.initialize()
        return await work(session)


async def list_mcp_tools(tool: McpTool) -> McpListToolsItem:
    """The server's tools that the request allows (an `error` instead when the server cannot be reached)."""
    item = McpListToolsItem(id=f"mcpl_{uuid.uuid4().hex}", server_label=tool.server_label)
    try:
        listed = await asyncio.wait_for(_mcp_session(tool, lambda s: s.list_tools()), MCP_TIMEOUT_S)
    except MissingPackageError:
        raise
    except Exception as exc:  # noqa: BLE001 - an unreachable server is reported on the item, not raised
        item.error = f"could not list the tools of {tool.server_label}: {type(exc).__name__}: {exc}"
        return item
    allowed = tool.allowed()
    item.tools = [McpListedTool(name=t.name, description=t.description, input_schema=t.inputSchema or {},
                                annotations=t.annotations.model_dump() if t.annotations else None)
                  for t in listed.tools if allowed is None or t.name in allowed]
    return item


async def call_mcp_tool(tool: McpTool, name: str, arguments: str) -> McpCallItem:
    """The call as an output item: its output, or the error that stopped it."""
    item = McpCallItem(id=f"mcp_{uuid.uuid4().hex}", server_label=tool.server_label, name=name, arguments=arguments)
    allowed = tool.allowed()
    if allowed is not None and name not in allowed:
        item.status, item.error = "failed", f"tool '{name}' is not in allowed_tools of {tool.server_label}"
        return item
    try:
        args = json.loads(arguments or "{}")
        result = await asyncio.wait_for(_mcp_session(tool, lambda s: s.call_tool(name, args)), MCP_TIMEOUT_S)
    except MissingPackageError:
        raise
    except Exception as exc:  # noqa: BLE001 - the server or the arguments failed: the model is told
        item.status, item.error = "failed", f"{type(exc).__name__}: {exc}"
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
