"""The tool runtime: MCP servers an operator registers once in run.yaml (``registered_resources.tool_groups``)
so that users name them, list their tools and call them.

In Responses, an ``mcp`` tool that gives a registered group's id as its ``server_label`` and no
``server_url`` uses the group's endpoint and credentials (which clients never see or send).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from stackkit.apis.datatypes import EmptyRequest, route


class ToolGroup(BaseModel):
    """A registered MCP server, as clients see it (its endpoint without credentials)."""

    identifier: str
    type: Literal["tool_group"] = "tool_group"
    provider_id: Literal["model-context-protocol"] = "model-context-protocol"
    mcp_endpoint: dict[str, str]
    allowed_tools: list[str] | None = None


class ToolGroupList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ToolGroup]


class ToolDef(BaseModel):
    """One tool of a group, with the JSON schema of its arguments."""

    name: str
    description: str | None = None
    toolgroup_id: str
    input_schema: dict[str, Any] = Field(default_factory=dict)


class ToolList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ToolDef]


class ToolGroupIdRequest(BaseModel):
    toolgroup_id: str


class ListToolsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    toolgroup_id: str | None = None


class InvokeToolRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool_name: str = Field(min_length=1)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    toolgroup_id: str | None = Field(default=None, description="the group to look in (every group when unset)")


class ToolInvocationResult(BaseModel):
    """What the tool returned (its text), or why it failed (a failing tool is a result, not an HTTP error)."""

    content: str | None = None
    error_message: str | None = None


@runtime_checkable
class ToolRuntime(Protocol):
    @route("GET", "/v1/toolgroups", sdk="toolgroups.list")
    async def list_tool_groups(self, request: EmptyRequest) -> ToolGroupList:
        """The MCP servers registered in run.yaml."""
        ...

    @route("GET", "/v1/toolgroups/{toolgroup_id}", sdk="toolgroups.get")
    async def get_tool_group(self, request: ToolGroupIdRequest) -> ToolGroup:
        """One registered MCP server."""
        ...

    @route("GET", "/v1/tools", sdk="tools.list")
    async def list_tools(self, request: ListToolsRequest) -> ToolList:
        """The tools of every registered group (or of one), as their servers list them now."""
        ...

    @route("POST", "/v1/tool-runtime/invoke", sdk="tool_runtime.invoke_tool")
    async def invoke_tool(self, request: InvokeToolRequest) -> ToolInvocationResult:
        """Call a tool of a registered group."""
        ...
