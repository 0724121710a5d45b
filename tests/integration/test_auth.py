"""API keys (server.auth): the openai SDK with a good key works (plain and streamed, a key given as its
SHA-256 too), a missing or wrong key is a 401 with OpenAI's error body, /v1/health stays public, the
principal is named in the access log, and the key itself is never shown."""

from __future__ import annotations

import hashlib
import logging
import textwrap
from pathlib import Path

import httpx
import openai
import pytest

from stackkit.core.config import RunConfig, parse_config
from stackkit.errors import ConfigError
from stackkit.testing.live_server import LiveServer

ALICE = "sk-alice-0123456789abcdef"
BOB = "sk-bob-fedcba9876543210"
HI = [{"role": "user", "content": "hello there"}]


def config(tmp_path: Path, keys: str | None = None) -> RunConfig:
    keys = "\n" + keys if keys else f"""
            - {{principal: alice, key: "${{env.ALICE_KEY}}", attributes: {{team: red}}}}
            - {{principal: bob, key_sha256: {hashlib.sha256(BOB.encode()).hexdigest()}}}"""
    return parse_config(textwrap.dedent(f"""
        providers:
          inference: [{{provider_id: fake, provider_type: inline::fake}}]
        registered_resources:
          models: [{{model_id: echo, provider_id: fake, provider_model_id: fake-llm}}]
        storage: {{backends: {{kv: {{type: sqlite, db_path: "{tmp_path}/kv.db"}}}}, stores: {{registry: kv}}}}
        server:
          auth:
            api_keys:{textwrap.indent(textwrap.dedent(keys), "              ")}
        """), env={"ALICE_KEY": ALICE})


def test_keys_gate_every_route_but_health(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="stackkit.access")
    with LiveServer(config(tmp_path)) as server:
        assert httpx.get(f"{server.base_url}/health").status_code == 200
        for headers in ({}, {"Authorization": "Bearer sk-wrong-key-000000000"}, {"Authorization": ALICE},
                        {"Authorization": f"Basic {ALICE}"}):
            r = httpx.get(f"{server.base_url}/models", headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (headers, r.text)
            error = r.json()["error"]
            assert error["code"] == "invalid_api_key" and error["type"] == "authentication_error"
            assert ALICE not in r.text
        with openai.OpenAI(base_url=server.base_url, api_key="sk-not-a-key-at-all", max_retries=0) as wrong:
            with pytest.raises(openai.AuthenticationError):
                wrong.chat.completions.create(model="echo", messages=HI)  # type: ignore[arg-type]
        for key in (ALICE, BOB):
            with openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0) as sdk:
                out = sdk.chat.completions.create(model="echo", messages=HI)  # type: ignore[arg-type]
                assert out.choices[0].message.content == "hello there"
                streamed = sdk.chat.completions.create(model="echo", messages=HI, stream=True)  # type: ignore[arg-type]
                text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)  # type: ignore[union-attr]
                assert text == "hello there"
    logged = [r.getMessage() for r in caplog.records if r.name == "stackkit.access"]
    assert any('"principal":"alice"' in line for line in logged) and any('"principal":"bob"' in line
                                                                          for line in logged)
    assert not any(ALICE in line or BOB in line for line in logged)


def test_keys_are_never_shown_and_bad_ones_are_config_errors(tmp_path: Path) -> None:
    shown = config(tmp_path).model_dump_json()
    assert ALICE not in shown and "**********" in shown
    for keys, why in (("- {principal: a, key: short}", "shorter than 16"),
                      (f"- {{principal: a, key: {ALICE}, key_sha256: \"{'0' * 64}\"}}", "exactly one"),
                      ("- {principal: a, key_sha256: nothex}", "key_sha256")):
        with pytest.raises(ConfigError, match=why):
            config(tmp_path, keys)
