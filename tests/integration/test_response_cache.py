"""The response cache through the openai SDK against live servers: a repeated temperature-0 request to a model
with response_cache: true is answered from the cache (X-Stackkit-Cache: hit, the same completion, the
provider not called again), streamed or not; sampled requests are not cached unless they ask; a request can
opt in or out; one principal's answers never reach another; and with Redis two replicas share the cache."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import openai
import pytest

from stackkit.core.config import RunConfig, parse_config
from stackkit.providers.inline.fake_inference import FakeInference
from stackkit.testing.live_server import LiveServer

ALICE, BOB = "sk-alice-0123456789abcdef", "sk-bob-0123456789abcdef0"
HI: Any = [{"role": "user", "content": "what is two plus two"}]


def _config(tmp_path: Path, redis: str | None = None) -> RunConfig:
    return parse_config(textwrap.dedent(f"""
        providers:
          inference: [{{provider_id: fake, provider_type: inline::fake}}]
        registered_resources:
          models:
            - {{model_id: echo, provider_id: fake, provider_model_id: fake-llm, response_cache: true}}
            - {{model_id: plain, provider_id: fake, provider_model_id: fake-plain}}
        storage: {{backends: {{kv: {{type: sqlite, db_path: "{tmp_path}/kv.db"}}}}, stores: {{registry: kv}}}}
        server: {{auth: {{api_keys: [{{principal: alice, key: {ALICE}}}, {{principal: bob, key: {BOB}}}]}}}}
        response_cache: {{{f"redis_url: {redis}" if redis else "ttl_s: 60"}}}
        """), source=str(tmp_path / "run.yaml"), env={})


def _ask(sdk: openai.OpenAI, model: str = "echo", **kw: Any) -> tuple[str | None, Any]:
    raw = sdk.chat.completions.with_raw_response.create(model=model, messages=HI, **kw)
    return raw.headers.get("x-stackkit-cache"), raw.parse()


def _calls(server: LiveServer) -> int:
    assert server.stack is not None
    fake = next(p.impl for p in server.stack.providers if isinstance(p.impl, FakeInference))
    return int(fake.calls)


def test_repeats_are_answered_from_the_cache(tmp_path: Path) -> None:
    with LiveServer(_config(tmp_path)) as server, \
            openai.OpenAI(base_url=server.base_url, api_key=ALICE, max_retries=0) as alice, \
            openai.OpenAI(base_url=server.base_url, api_key=BOB, max_retries=0) as bob:
        status, first = _ask(alice, temperature=0)
        calls = _calls(server)
        assert status == "miss"
        status, again = _ask(alice, temperature=0)
        assert status == "hit" and again.id == first.id and again.choices[0].message.content == "what is two plus two"
        assert _calls(server) == calls  # the provider was not asked again
        assert _ask(bob, temperature=0)[0] == "miss"  # one principal's answers never reach another

        assert _ask(alice, temperature=0.7)[0] is None  # a sampled answer is not the answer: not cached
        assert _ask(alice, temperature=0.7, extra_body={"cache": True})[0] == "miss"  # sampled, but asked for
        assert _ask(alice, temperature=0.7, extra_body={"cache": True})[0] == "hit"
        assert _ask(alice, temperature=0, extra_body={"cache": False})[0] is None  # opted out
        assert _ask(alice, "plain", temperature=0)[0] is None  # the model does not cache by default
        assert _ask(alice, "plain", temperature=0, extra_body={"cache": True})[0] == "miss"
        assert _ask(alice, temperature=0, max_tokens=2)[0] == "miss"  # another request, another answer
        with pytest.raises(openai.BadRequestError, match="Send cache as true or false"):
            _ask(alice, extra_body={"cache": "yes"})


def test_streams_are_cached_whole_and_replayed(tmp_path: Path) -> None:
    with LiveServer(_config(tmp_path)) as server, \
            openai.OpenAI(base_url=server.base_url, api_key=ALICE, max_retries=0) as alice:
        with alice.chat.completions.with_streaming_response.create(
                model="echo", messages=HI, temperature=0, stream=True) as raw:
            assert raw.headers["x-stackkit-cache"] == "miss"
            missed = list(raw.parse())
            text = "".join(c.choices[0].delta.content or "" for c in missed if c.choices)
        assert all(c.usage is None and c.choices for c in missed)  # usage was not asked for: none shown
        calls = _calls(server)
        with alice.chat.completions.with_streaming_response.create(
                model="echo", messages=HI, temperature=0, stream=True,
                stream_options={"include_usage": True}) as raw:
            assert raw.headers["x-stackkit-cache"] == "hit"
            chunks = list(raw.parse())
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text == "what is two plus two"
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
        assert _calls(server) == calls
        assert _ask(alice, temperature=0)[0] == "hit"  # the stream's answer serves a plain request too


def test_replicas_share_the_cache_through_redis(tmp_path: Path, redis_url: str) -> None:
    with LiveServer(_config(tmp_path / "a", redis_url)) as one, LiveServer(_config(tmp_path / "b", redis_url)) as two, \
            openai.OpenAI(base_url=one.base_url, api_key=ALICE, max_retries=0) as via_one, \
            openai.OpenAI(base_url=two.base_url, api_key=ALICE, max_retries=0) as via_two:
        status, first = _ask(via_one, temperature=0)
        assert status == "miss"
        status, second = _ask(via_two, temperature=0)
        assert status == "hit" and second.id == first.id
