"""The tool runtime: the MCP servers registered in run.yaml as tool groups, listed and called through the
shared MCP session pool, and lent to Responses when a request names a group instead of a server URL."""

from __future__ import annotations

import json

from stackkit.apis.agents import McpTool
from stackkit.apis.datatypes import EmptyRequest
from stackkit.apis.tools import (
    InvokeToolRequest,
    ListToolsRequest,
    ToolDef,
    ToolGroup,
    ToolGroupIdRequest,
    ToolGroupList,
    ToolInvocationResult,
    ToolList,
)
from stackkit.core.config import ToolGroupInput
from stackkit.core.redact import redact_url
from stackkit.core.tools import McpSessions, call_mcp_tool, list_mcp_tools
from stackkit.errors import InvalidRequestError, NotFoundError, ProviderUnavailableError


class ToolRuntimeService:
    """The ToolRuntime API over the tool groups of run.yaml."""

    def __init__(self, groups: list[ToolGroupInput], sessions: McpSessions) -> None:
        self.groups = {g.toolgroup_id: g for g in groups}
        self.sessions = sessions

    def _group(self, toolgroup_id: str) -> ToolGroupInput:
        group = self.groups.get(toolgroup_id)
        if group is None:
            raise NotFoundError(f"Tool group '{toolgroup_id}' is not registered; GET /v1/toolgroups lists them "
                                "(add one under registered_resources.tool_groups in run.yaml).",
                                code="tool_group_not_found")
        return group

    @staticmethod
    def _tool(group: ToolGroupInput) -> McpTool:
        return McpTool(server_label=group.toolgroup_id, server_url=group.mcp_endpoint, headers=group.headers or None,
                       authorization=group.authorization, allowed_tools=group.allowed_tools,
                       require_approval=group.require_approval)

    def resolve(self, tool: McpTool) -> McpTool:
        """A Responses `mcp` tool naming a group (no server_url) as the group's server; others unchanged."""
        if tool.server_url is not None:
            return tool
        if tool.server_label not in self.groups:
            raise InvalidRequestError(f"mcp tool '{tool.server_label}' has no server_url and no tool group has that "
                                      "id; give server_url, or name a group GET /v1/toolgroups lists.", param="tools")
        group = self._tool(self.groups[tool.server_label])
        allowed = tool.allowed()
        if allowed is not None and group.allowed() is not None:
            allowed &= group.allowed() or set()
        chosen = sorted(allowed) if allowed is not None else group.allowed_tools
        return group.model_copy(update={
            "allowed_tools": chosen, "require_approval": tool.require_approval or group.require_approval})

    def _view(self, group: ToolGroupInput) -> ToolGroup:
        return ToolGroup(identifier=group.toolgroup_id, mcp_endpoint={"uri": redact_url(group.mcp_endpoint)},
                         allowed_tools=group.allowed_tools)

    async def list_tool_groups(self, request: EmptyRequest) -> ToolGroupList:
        return ToolGroupList(data=[self._view(g) for g in self.groups.values()])

    async def get_tool_group(self, request: ToolGroupIdRequest) -> ToolGroup:
        return self._view(self._group(request.toolgroup_id))

    async def _tools(self, group: ToolGroupInput) -> list[ToolDef]:
        listing = await list_mcp_tools(self._tool(group), self.sessions)
        if listing.error:
            raise ProviderUnavailableError(f"tool group '{group.toolgroup_id}' could not be listed ({listing.error});"
                                           " check that its MCP server is up, then retry.")
        return [ToolDef(name=t.name, description=t.description, toolgroup_id=group.toolgroup_id,
                        input_schema=t.input_schema) for t in listing.tools]

    async def list_tools(self, request: ListToolsRequest) -> ToolList:
        groups = [self._group(request.toolgroup_id)] if request.toolgroup_id else list(self.groups.values())
        return ToolList(data=[tool for g in groups for tool in await self._tools(g)])

    async def invoke_tool(self, request: InvokeToolRequest) -> ToolInvocationResult:
        groups = [self._group(request.toolgroup_id)] if request.toolgroup_id else list(self.groups.values())
        owners, unreachable = [], None
        for group in groups:
            try:
                if any(t.name == request.tool_name for t in await self._tools(group)):
                    owners.append(group)
            except ProviderUnavailableError as exc:
                unreachable = exc
        if not owners and unreachable is not None:
            raise unreachable  # it may be the down group's tool: say that, not "not found"
        if not owners:
            raise NotFoundError(f"No registered tool is called '{request.tool_name}'; GET /v1/tools lists them.",
                                code="tool_not_found", param="tool_name")
        if len(owners) > 1:
            raise InvalidRequestError(f"'{request.tool_name}' is a tool of {', '.join(g.toolgroup_id for g in owners)}"
                                      "; name one as toolgroup_id.", param="toolgroup_id")
        call = await call_mcp_tool(self._tool(owners[0]), request.tool_name, json.dumps(request.kwargs),
                                   self.sessions)
        return ToolInvocationResult(content=call.output, error_message=call.error)
