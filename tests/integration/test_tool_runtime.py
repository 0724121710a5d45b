"""Tool groups: an operator registers an MCP server once in run.yaml (with its credentials); users list
its tools, call them, and name the group in Responses, over HTTP and in-process. The credentials reach
the server and nothing else."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from stackkit import LibraryClient
from stackkit.core.config import RunConfig, parse_config
from stackkit.testing.live_server import LiveServer
from tests.mcp_server import AUTHORIZATIONS, McpServer

SECRET = "group-secret-7731"


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with McpServer() as url:
        yield url


def config(root: Path, url: str, down_url: str = "http://127.0.0.1:9/mcp") -> RunConfig:
    return parse_config(textwrap.dedent(f"""
        providers:
          inference: [{{provider_id: fake, provider_type: inline::fake}}]
        registered_resources:
          models: [{{model_id: echo, provider_id: fake, provider_model_id: fake-llm}}]
          tool_groups:
            - {{toolgroup_id: demo, mcp_endpoint: "{url}", authorization: "${{env.DEMO_TOKEN}}",
               require_approval: never}}
            - {{toolgroup_id: loud, mcp_endpoint: "{url}", allowed_tools: [shout]}}
            - {{toolgroup_id: down, mcp_endpoint: "{down_url}"}}
        storage: {{backends: {{kv: {{type: sqlite, db_path: "{root}/kv.db"}}}}, stores: {{registry: kv}}}}
        """), env={"DEMO_TOKEN": SECRET})


class Http:
    """The tool-runtime routes over HTTP (the openai SDK has no methods for them) plus the SDK itself."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url.removesuffix("/v1"), timeout=20)
        self.sdk = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=20)

    def close(self) -> None:
        self.http.close()
        self.sdk.close()

    def groups(self) -> list[dict[str, Any]]:
        return list(self.http.get("/v1/toolgroups").json()["data"])

    def tools(self, group: str | None = None) -> httpx.Response:
        return self.http.get("/v1/tools", params={"toolgroup_id": group} if group else {})

    def invoke(self, **body: Any) -> httpx.Response:
        return self.http.post("/v1/tool-runtime/invoke", json=body)


def test_tool_groups_over_http(tmp_path: Path, mcp_url: str) -> None:
    AUTHORIZATIONS.clear()
    with LiveServer(config(tmp_path, mcp_url)) as server:
        client = Http(server.base_url)
        try:
            check_over_http(client, mcp_url)
        finally:
            client.close()
    assert f"Bearer {SECRET}" in AUTHORIZATIONS  # the group's credentials reached its server


def check_over_http(client: Http, mcp_url: str) -> None:
    groups = client.groups()
    assert [g["identifier"] for g in groups] == ["demo", "loud", "down"] and SECRET not in json.dumps(groups)
    names = {t["name"]: t for t in client.tools("demo").json()["data"]}
    assert set(names) == {"shout", "launch_codes", "explode"} and names["shout"]["input_schema"]["properties"]
    assert [t["name"] for t in client.tools("loud").json()["data"]] == ["shout"]
    down = client.tools("down")
    assert down.status_code == 503 and "down" in down.json()["error"]["message"]
    assert client.tools().status_code == 503  # all groups, one of them down: said, not dropped
    assert client.invoke(tool_name="shout", kwargs={"text": "hi"}, toolgroup_id="demo").json() == {
        "content": "HI", "error_message": None}
    failed = client.invoke(tool_name="explode", kwargs={"reason": "x"}, toolgroup_id="demo").json()
    assert failed["content"] is None and "broke on purpose" in failed["error_message"]
    assert client.invoke(tool_name="launch_codes", kwargs={}, toolgroup_id="loud").status_code == 404
    assert client.invoke(tool_name="nope", toolgroup_id="demo").status_code == 404
    assert client.invoke(tool_name="shout", toolgroup_id="absent").status_code == 404
    assert client.invoke(tool_name="shout", bogus=1).status_code == 400
    out = client.sdk.responses.create(model="echo", input="shout from the group", tools=[
        {"type": "mcp", "server_label": "demo"}])  # type: ignore[typeddict-item]
    assert out.output[1].type == "mcp_call" and out.output[1].output == "SHOUT FROM THE GROUP"
    stored = client.sdk.responses.retrieve(out.id).model_dump_json()
    assert SECRET not in stored and mcp_url in stored
    with pytest.raises(openai.BadRequestError) as err:
        client.sdk.responses.create(model="echo", input="x", tools=[{"type": "mcp", "server_label": "nope"}])  # type: ignore[typeddict-item]
    assert err.value.param == "tools"


def test_tool_groups_in_process(tmp_path: Path, mcp_url: str) -> None:
    with LibraryClient(config(tmp_path, mcp_url)) as client:
        assert [g.identifier for g in client.toolgroups.list()] == ["demo", "loud", "down"]
        assert {t.name for t in client.tools.list(toolgroup_id="demo")} == {"shout", "launch_codes", "explode"}
        with pytest.raises(openai.BadRequestError):  # demo and loud both have shout
            client.tool_runtime.invoke_tool(tool_name="shout", kwargs={"text": "yo"})
        assert client.tool_runtime.invoke_tool(tool_name="launch_codes", kwargs={"reason": "r"}).content == "0000"
        loud = client.responses.create(model="echo", input="launch_codes and shout", tools=[
            {"type": "mcp", "server_label": "loud", "require_approval": "never"}])
        assert [o.name for o in loud.output if o.type == "mcp_call"] == ["shout"]  # the group's allowed tools
