"""Quotas and rate limits (quotas: in run.yaml) through the openai SDK against live servers: requests per
minute per principal and per model, tokens per minute charged from usage (streams included, without
showing the client a usage chunk it did not ask for), concurrent requests freed when a stream ends or its
client leaves; 429s with Retry-After and OpenAI's error body; and with Redis (a real redis-server on
127.0.0.1): one quota held across two replicas together, and a Redis that is down is a clear 503."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from stackkit import LibraryClient, Principal
from stackkit.core.config import RunConfig, parse_config
from stackkit.testing.live_server import LiveServer
from tests.chroma_server import free_port

ALICE, BOB = "sk-alice-0123456789abcdef", "sk-bob-0123456789abcdef0"
HI: Any = [{"role": "user", "content": "one two three four five"}]


def _config(tmp_path: Path, rules: str, redis_url: str | None = None, chunk_delay: float = 0.0) -> RunConfig:
    return parse_config(textwrap.dedent(f"""
        providers:
          inference: [{{provider_id: fake, provider_type: inline::fake, config: {{chunk_delay_s: {chunk_delay}}}}}]
        registered_resources:
          models: [{{model_id: echo, provider_id: fake, provider_model_id: fake-llm}},
                   {{model_id: other, provider_id: fake, provider_model_id: fake-other}}]
        storage: {{backends: {{kv: {{type: sqlite, db_path: "{tmp_path}/kv.db"}}}}, stores: {{registry: kv}}}}
        server:
          auth: {{api_keys: [{{principal: alice, key: {ALICE}}}, {{principal: bob, key: {BOB}}}]}}
        quotas:
          {f"redis_url: {redis_url}" if redis_url else ""}
          rules: {rules}
        """), source=str(tmp_path / "run.yaml"), env={})


def _sdk(server: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)


def _chat(sdk: Any, model: str = "echo", **kw: Any) -> Any:
    return sdk.chat.completions.create(model=model, messages=HI, **kw)


def test_requests_per_minute_per_principal_and_per_model(tmp_path: Path) -> None:
    rules = "[{requests_per_minute: 3}, {model: other, requests_per_minute: 1}]"
    with LiveServer(_config(tmp_path, rules)) as server, _sdk(server, ALICE) as alice, _sdk(server, BOB) as bob:
        for _ in range(3):
            _chat(alice)
        with pytest.raises(openai.RateLimitError) as refused:
            _chat(alice)
        error = refused.value
        assert error.status_code == 429 and error.body["type"] == "rate_limit_error"  # type: ignore[index]
        assert "3 requests/min" in error.message and "quotas in run.yaml" in error.message
        assert 15 <= int(error.response.headers["retry-after"]) <= 20  # a request's worth of refill: 60/3 s
        _chat(bob)  # bob's bucket is his own
        _chat(bob, model="other")
        with pytest.raises(openai.RateLimitError, match="1 requests/min"):
            _chat(bob, model="other")  # the per-model rule, on top of the all-models one
        assert httpx.get(server.base_url + "/health").status_code == 200  # other routes are not limited


def test_tokens_per_minute_are_charged_from_usage_streams_included(tmp_path: Path) -> None:
    with LiveServer(_config(tmp_path, "[{tokens_per_minute: 12}]")) as server, _sdk(server, ALICE) as alice:
        chunks = list(_chat(alice, stream=True))  # 5 prompt + 5 completion tokens, no usage asked for
        assert all(c.usage is None and c.choices for c in chunks)  # ... and none shown
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "one two three four five"
        asked = list(_chat(alice, stream=True, stream_options={"include_usage": True}))
        assert asked[-1].usage is not None and asked[-1].usage.total_tokens == 10  # 20 of 12 spent: in debt
        with pytest.raises(openai.RateLimitError, match="12 tokens/min") as refused:
            _chat(alice)
        assert int(refused.value.response.headers["retry-after"]) >= 30  # 8 tokens of debt at 0.2/s: 40 s
    with LiveServer(_config(tmp_path / "embed", "[{tokens_per_minute: 1000}]")) as server, _sdk(server, BOB) as bob:
        _chat(bob)  # non-streamed usage is charged too (no error either way: a check it runs)


def test_concurrent_requests_are_freed_when_a_stream_ends_or_its_client_leaves(tmp_path: Path) -> None:
    config = _config(tmp_path, "[{concurrent_requests: 2}]", chunk_delay=0.2)
    with LiveServer(config) as server, _sdk(server, ALICE) as alice:
        first, second = _chat(alice, stream=True), _chat(alice, stream=True)
        next(iter(first)), next(iter(second))  # both admitted and streaming
        with pytest.raises(openai.RateLimitError, match="2 concurrent requests"):
            _chat(alice)
        list(first)  # one finishes: its slot is free
        _chat(alice)
        second.close()  # the other client leaves mid-stream: its slot is freed too
        deadline = time.monotonic() + 5
        while True:
            try:
                _chat(alice)
                _chat(alice)
                break
            except openai.RateLimitError:
                assert time.monotonic() < deadline, "the slot of a client that left was never freed"
                time.sleep(0.05)


def test_library_client_principals_are_limited_too(tmp_path: Path) -> None:
    config = _config(tmp_path, "[{principal: grace, requests_per_minute: 1}]")
    with LibraryClient(config, principal=Principal("grace")) as grace:
        _chat(grace)
        with pytest.raises(openai.RateLimitError):
            _chat(grace)
    with LibraryClient(config, principal="ada") as ada:
        for _ in range(3):
            _chat(ada)  # the rule names grace only


def test_one_quota_holds_across_two_replicas_through_redis(tmp_path: Path, redis_url: str) -> None:
    rules = "[{requests_per_minute: 10}, {concurrent_requests: 2, model: other}]"
    with LiveServer(_config(tmp_path / "a", rules, redis_url, chunk_delay=0.2)) as one, \
            LiveServer(_config(tmp_path / "b", rules, redis_url, chunk_delay=0.2)) as two, \
            _sdk(one, ALICE) as via_one, _sdk(two, ALICE) as via_two:
        answered, refused = [], []

        def ask(sdk: openai.OpenAI) -> None:
            try:
                answered.append(_chat(sdk, max_tokens=1))
            except openai.RateLimitError:
                refused.append(1)

        threads = [threading.Thread(target=ask, args=(via_one if i % 2 else via_two,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(answered) == 10 and len(refused) == 6  # the two replicas shared one bucket, atomically
        with _sdk(one, BOB) as bob_one, _sdk(two, BOB) as bob_two:
            streaming = [_chat(bob_one, model="other", stream=True), _chat(bob_two, model="other", stream=True)]
            for s in streaming:
                next(iter(s))
            with pytest.raises(openai.RateLimitError, match="2 concurrent"):
                _chat(bob_one, model="other")  # both slots are held, one on each replica
            for s in streaming:
                list(s)
            _chat(bob_two, model="other")


def test_tokens_charged_on_one_replica_hold_back_the_other_through_redis(tmp_path: Path, redis_url: str) -> None:
    """Charges are sent to Redis in batches (every 20 ms): they still arrive, and count on every replica."""
    rules = "[{tokens_per_minute: 12}]"
    with LiveServer(_config(tmp_path / "a", rules, redis_url)) as one, \
            LiveServer(_config(tmp_path / "b", rules, redis_url)) as two, \
            _sdk(one, ALICE) as via_one, _sdk(two, ALICE) as via_two:
        assert _chat(via_one).usage.total_tokens == 10
        list(_chat(via_two, stream=True))  # admitted (2 tokens left), then charged 10 more: 8 in debt
        deadline = time.monotonic() + 5
        while True:
            try:
                _chat(via_one)
            except openai.RateLimitError as refused:
                assert int(refused.response.headers["retry-after"]) >= 30
                break
            assert time.monotonic() < deadline, "the tokens spent through the other replica never counted"
            time.sleep(0.01)


def test_a_redis_that_is_down_is_a_clear_503(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with LiveServer(_config(tmp_path, "[{requests_per_minute: 10}]", url)) as server, _sdk(server, ALICE) as alice:
        with pytest.raises(openai.InternalServerError) as failed:
            _chat(alice)
    assert failed.value.status_code == 503 and "quotas.redis_url" in failed.value.message
