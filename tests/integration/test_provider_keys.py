"""API keys per request (X-Stackkit-Provider-Data), from config and from env; allowed_models."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator

import httpx
import openai
import pytest

from stackkit import LibraryClient
from stackkit.core.config import RunConfig, parse_config
from stackkit.errors import InvalidRequestError, NotFoundError
from stackkit.testing.live_server import LiveServer
from tests.echo_upstream import EchoUpstream

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def echo() -> Iterator[str]:
    with EchoUpstream() as url:
        yield url


def gateway(url: str, api_key: str = "", allowed: str = "") -> RunConfig:
    extra = f", allowed_models: [{allowed}]" if allowed else ""
    return parse_config(textwrap.dedent(f"""
        providers:
          inference:
            - provider_id: up
              provider_type: remote::openai
              config: {{base_url: "{url}", api_key: "{api_key}"{extra}}}
        storage: {{backends: {{m: {{type: memory}}}}, stores: {{registry: m}}}}
        """), env={})


def test_key_from_config_env_and_header(echo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    with LiveServer(gateway(echo)) as server, openai.OpenAI(base_url=server.base_url, api_key="x") as sdk:
        said = sdk.chat.completions.create(model="up/gpt-allowed", messages=HI)  # type: ignore[arg-type]
        assert said.choices[0].message.content == "Bearer sk-from-env"
        header = {"X-Stackkit-Provider-Data": json.dumps({"openai_api_key": "sk-per-request"})}
        said = sdk.chat.completions.create(model="up/gpt-allowed", messages=HI,  # type: ignore[arg-type]
                                           extra_headers=header)
        assert said.choices[0].message.content == "Bearer sk-per-request"
        bad = httpx.post(f"{server.base_url}/chat/completions", json={"model": "up/gpt-allowed", "messages": HI},
                         headers={"X-Stackkit-Provider-Data": "{oops"})
        assert bad.status_code == 400 and "X-Stackkit-Provider-Data header is not valid JSON" in bad.text
        bad = httpx.post(f"{server.base_url}/chat/completions", json={"model": "up/gpt-allowed", "messages": HI},
                         headers={"X-Stackkit-Provider-Data": '{"openai_api_key": 42}'})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "openai_api_key"
    with LibraryClient(gateway(echo, api_key="sk-from-config")) as client:
        out = client.chat.completions.create(model="up/gpt-allowed", messages=HI)
        assert out.choices[0].message.content == "Bearer sk-from-config"
        out = client.chat.completions.create(model="up/gpt-allowed", messages=HI, extra_headers={
            "X-Stackkit-Provider-Data": '{"openai_api_key": "sk-library"}'})
        assert out.choices[0].message.content == "Bearer sk-library"
        with pytest.raises(InvalidRequestError, match="must be a JSON object"):
            client.chat.completions.create(model="up/gpt-allowed", messages=HI,
                                           extra_headers={"X-Stackkit-Provider-Data": "[1]"})


def test_allowed_models_filters_listing_and_requests(echo: str) -> None:
    with LibraryClient(gateway(echo, allowed='"gpt-allowed", "text-embed-3"')) as client:
        client.wait_ready()
        models = {m.id: m.model_type for m in client.models.list().data}
        assert models == {"up/gpt-allowed": "llm", "up/text-embed-3": "embedding"}
        with pytest.raises(NotFoundError, match="'gpt-hidden' is not in this provider's allowed_models"):
            client.chat.completions.create(model="up/gpt-hidden", messages=HI)
