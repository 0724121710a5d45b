"""One model served by two providers (targets:): two real OpenAI-compatible upstreams (bench/fake_upstream.py,
each its own process), 16 concurrent clients, one upstream SIGKILLed mid-load: no request fails, streams
started while it is down fail over before their first chunk, and once it is back it is used again. Load is
balanced between healthy targets; a request's own error (4xx) is not retried."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from stackkit.core.config import RunConfig, parse_config
from stackkit.core.failover import TargetPool, retryable
from stackkit.errors import InvalidRequestError, RateLimitError, UpstreamError
from stackkit.testing.live_server import LiveServer
from tests.chroma_server import free_port

ROOT = Path(__file__).parents[2]


class Upstream:
    """bench/fake_upstream.py in its own process, on a fixed port it can be killed and restarted on."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Upstream:
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "fake_upstream.py"), "--port",
                                      str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{self.url}/health", timeout=0.5)
                return self
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the fake upstream did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def chats(self) -> int:
        stats = httpx.get(f"http://127.0.0.1:{self.port}/_stats", timeout=2).json()
        return int(stats.get("chat", 0) + stats.get("chat_stream", 0))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.fixture
def upstreams() -> Any:
    pair = [Upstream().start(), Upstream().start()]
    yield pair
    for u in pair:
        if u.proc is not None and u.proc.poll() is None:
            u.kill()


def _config(tmp_path: Path, a: Upstream, b: Upstream) -> RunConfig:
    return parse_config(textwrap.dedent(f"""
        providers:
          inference:
            - {{provider_id: a, provider_type: remote::openai, config: {{base_url: "{a.url}", api_key: k}}}}
            - {{provider_id: b, provider_type: remote::openai, config: {{base_url: "{b.url}", api_key: k}}}}
        registered_resources:
          models:
            - model_id: shared
              targets: [{{provider_id: a, provider_model_id: fake-model}},
                        {{provider_id: b, provider_model_id: fake-model}}]
        storage: {{backends: {{kv: {{type: sqlite, db_path: "{tmp_path}/kv.db"}}}}, stores: {{registry: kv}}}}
        server: {{access_log: false}}
        """), source=str(tmp_path / "run.yaml"), env={})


def _ask(http: httpx.Client, stream: bool = False) -> str:
    body = {"model": "shared", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    reply = http.post("/chat/completions", json=body)
    if reply.status_code != 200:
        return f"{reply.status_code}: {reply.text[:200]}"
    if stream and not reply.text.rstrip().endswith("data: [DONE]"):
        return "stream cut"
    return "ok"


def test_a_target_killed_under_load_fails_nothing_and_is_used_again(tmp_path: Path, upstreams: Any) -> None:
    a, b = upstreams
    with LiveServer(_config(tmp_path, a, b)) as server:
        outcomes: list[str] = []
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(base_url=server.base_url, timeout=30) as http:
                while not stop.is_set():
                    outcomes.append(_ask(http))

        threads = [threading.Thread(target=client) for _ in range(16)]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + 30
            while a.chats() < 50 or b.chats() < 50:  # balanced between the two (however slow the machine)
                assert time.monotonic() < deadline, f"one target got no share: {a.chats()} / {b.chats()}"
                time.sleep(0.05)
            a.kill()  # mid-load, requests in flight on it
            time.sleep(1.0)
            with httpx.Client(base_url=server.base_url, timeout=30) as http:
                assert _ask(http, stream=True) == "ok"  # a stream fails over before its first chunk
            a.start()  # back on the same port, counting from zero
            deadline = time.monotonic() + 30
            while a.chats() < 20:
                assert time.monotonic() < deadline, "the target that came back was never used again"
                time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
    failed = [o for o in outcomes if o != "ok"]
    assert len(outcomes) > 500 and failed == [], failed[:5]


def test_when_every_target_fails_the_error_says_so(tmp_path: Path, upstreams: Any) -> None:
    a, b = upstreams
    with LiveServer(_config(tmp_path, a, b)) as server, httpx.Client(base_url=server.base_url, timeout=30) as http:
        a.kill()
        b.kill()
        reply = http.post("/chat/completions", json={"model": "shared", "messages": [{"role": "user", "content": "x"}]})
    assert reply.status_code == 502 and "cannot connect" in reply.json()["error"]["message"]


def test_targets_config_is_checked(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="two or more"):
        parse_config("registered_resources: {models: [{model_id: m, targets: [{provider_id: a, "
                     "provider_model_id: x}]}]}", env={})
    with pytest.raises(Exception, match="either targets or provider_id"):
        parse_config("registered_resources: {models: [{model_id: m, provider_id: a, targets: [{provider_id: a, "
                     "provider_model_id: x}, {provider_id: b, provider_model_id: x}]}]}", env={})


def test_what_is_retried_and_in_which_order() -> None:
    assert retryable(UpstreamError("502")) and retryable(RateLimitError("429"))
    assert not retryable(InvalidRequestError("400: the request's own fault"))
    from stackkit.apis.datatypes import ModelTarget

    pool = TargetPool([ModelTarget(provider_id="a", provider_model_id="x"),
                       ModelTarget(provider_id="b", provider_model_id="x", weight=2)])
    a, b = pool.targets
    a.in_flight, b.in_flight = 1, 1
    assert pool.order() == [b, a]  # b carries twice the weight: 1/2 < 1/1
    pool.failed(b, UpstreamError("down"))
    assert pool.order() == [a, b]  # cooling down: last, but still tried
    b.down_until = 0
    pool.succeeded(b)
    assert b.failures == 0 and pool.order()[0] is b
