"""What only the HTTP transport has: SSE framing, disconnects, status codes, headers, CORS,
the OpenAPI document, remote::openai against a real upstream, and `stackkit run` itself."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from stackkit.apis.datatypes import Api
from stackkit.core.config import parse_config
from stackkit.errors import ConfigError
from stackkit.testing.live_server import LiveServer
from tests.conftest import fake_stack_config
from tests.integration.test_responses import as_sdk

CHAT = {"model": "echo", "messages": [{"role": "user", "content": "one two three"}]}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(fake_stack_config(tmp_path)) as live:
        yield live


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10) as c:
        yield c


def test_sse_wire_format(http: httpx.Client) -> None:
    with http.stream("POST", "/chat/completions", json={**CHAT, "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        body = r.read().decode()
    events = body.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    for event in events[:-2]:
        assert event.startswith("data: {")
        assert json.loads(event[6:])["object"] == "chat.completion.chunk"


def test_error_mid_stream_is_a_final_error_event(http: httpx.Client) -> None:
    body = {**CHAT, "stream": True, "messages": [{"role": "user", "content": "fine then FAIL_MIDSTREAM"}]}
    with http.stream("POST", "/chat/completions", json=body) as r:
        events = [e for e in r.read().decode().split("\n\n") if e]
    assert json.loads(events[-1][6:])["error"]["type"] == "upstream_error"
    assert "data: [DONE]" not in events
    assert json.loads(events[1][6:])["choices"][0]["delta"]["content"] == "fine"


def test_client_disconnect_cancels_the_provider(tmp_path: Path) -> None:
    with LiveServer(fake_stack_config(tmp_path, chunk_delay=0.2)) as live:
        assert live.stack is not None
        provider = live.stack.tables[Api.inference].providers["fake"]
        words = " ".join(f"w{i}" for i in range(200))
        with httpx.Client(base_url=live.base_url, timeout=10) as c, c.stream(
            "POST", "/chat/completions", json={**CHAT, "stream": True,
                                               "messages": [{"role": "user", "content": words}]}) as r:
            next(r.iter_lines())  # the stream has started
        deadline = time.monotonic() + 1.0
        while provider.cancelled == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert provider.cancelled == 1


@pytest.mark.parametrize(("body", "status", "param", "fragment"), [
    (b"{not json", 400, None, "not valid JSON"),
    (b"[1, 2]", 400, None, "Input should be an object"),
    (json.dumps({"model": "echo"}).encode(), 400, "messages", "Missing required parameter 'messages'"),
    (json.dumps({**CHAT, "max_tokens": "many"}).encode(), 400, "max_tokens", "Invalid value for 'max_tokens'"),
    (json.dumps({**CHAT, "model": "nope"}).encode(), 404, None, "Model 'nope' not found"),
    (json.dumps({**CHAT, "messages": [{"role": "user", "content": "FAIL_NOW"}]}).encode(), 502, None,
     "fake upstream failure"),
])
def test_error_bodies(http: httpx.Client, body: bytes, status: int, param: str | None, fragment: str) -> None:
    r = http.post("/chat/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and fragment in error["message"]


def test_body_over_the_limit_is_413(http: httpx.Client) -> None:
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 70_000}]}
    r = http.post("/chat/completions", json=big)
    assert r.status_code == 413 and "max_request_bytes" in r.json()["error"]["message"]

    def chunked() -> Iterator[bytes]:  # no content-length: counted while read
        yield json.dumps(big).encode()

    r = http.post("/chat/completions", content=chunked(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"


def test_unknown_route_and_method(http: httpx.Client) -> None:
    r = http.get("/nope")
    assert r.status_code == 404 and "GET /v1/inspect/routes" in r.json()["error"]["message"]
    r = http.put("/chat/completions", json=CHAT)
    assert r.status_code == 405 and r.json()["error"]["type"] == "invalid_request_error"


def test_request_id_echoed_or_generated(http: httpx.Client) -> None:
    assert http.get("/health", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = http.get("/health").headers["x-request-id"]
    assert len(generated) == 24


def test_cors(http: httpx.Client) -> None:
    r = http.options("/chat/completions", headers={"origin": "http://app.example",
                                                   "access-control-request-method": "POST"})
    assert r.headers["access-control-allow-origin"] == "http://app.example"
    r = http.options("/chat/completions", headers={"origin": "http://evil.example",
                                                   "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in r.headers


def test_inspect_endpoints(http: httpx.Client) -> None:
    assert http.get("/health").json() == {"status": "OK", "loading": [], "failed": []}
    assert http.get("/version").json()["version"]
    routes = http.get("/inspect/routes").json()["data"]
    assert {"method": "POST", "path": "/v1/chat/completions", "api": "inference", "operation": "chat_completion",
            "sdk": "chat.completions.create", "streams": True} in routes
    providers = http.get("/providers").json()["data"]
    assert {p["provider_id"] for p in providers} == {"fake", "words", "mem", "disk"}
    assert http.get("/providers/fake").json()["health"] == {"status": "OK"}
    assert http.get("/providers/nope").status_code == 404


def test_openapi_and_docs(server: LiveServer) -> None:
    root = server.base_url.removesuffix("/v1")
    spec = httpx.get(f"{root}/openapi.json").json()
    assert spec["openapi"] == "3.1.0"
    assert spec["paths"]["/v1/chat/completions"]["post"]["operationId"] == "chat_completion"
    assert "/v1/models/{model_id}" in spec["paths"]
    docs = httpx.get(f"{root}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


# ---- remote::openai against a real OpenAI-compatible server ----------------------------------


def gateway_config(tmp_path: Path, base_url: str, timeout_s: float = 30.0, api_key: str = "sk-secret-key"):
    return parse_config(textwrap.dedent(f"""
        providers:
          inference:
            - provider_id: up
              provider_type: remote::openai
              config: {{base_url: "{base_url}", api_key: "{api_key}", timeout_s: {timeout_s}}}
        storage: {{backends: {{m: {{type: memory}}}}, stores: {{registry: m}}}}
        registered_resources:
          models:
            - {{model_id: chat, provider_model_id: echo}}
            - {{model_id: vectors, provider_model_id: embedder, model_type: embedding}}
        """), source="gateway.yaml", env={})


def test_remote_openai_through_a_real_upstream(server: LiveServer, tmp_path: Path) -> None:
    gw_dir = tmp_path / "gw"
    gw_dir.mkdir()
    with LiveServer(gateway_config(gw_dir, server.base_url)) as gateway, openai.OpenAI(
            base_url=gateway.base_url, api_key="none", max_retries=0) as sdk:
        resp = sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi there"}])
        assert resp.choices[0].message.content == "hi there"
        streamed = sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "a b c"}],
                                               stream=True, stream_options={"include_usage": True})
        chunks = list(streamed)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a b c"
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 6
        emb = sdk.embeddings.create(model="vectors", input="x", encoding_format="base64")
        assert len(base64.b64decode(emb.data[0].embedding)) == 16 * 4  # type: ignore[arg-type]
        assert len(sdk.embeddings.create(model="vectors", input="x").data[0].embedding) == 16
        assert sdk.models.retrieve("up/echo").provider_model_id == "echo"  # type: ignore[attr-defined]
        # upstream errors pass through with their status
        with pytest.raises(openai.NotFoundError, match="Model 'missing' not found"):
            sdk.chat.completions.create(model="up/missing", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.BadRequestError) as err:
            sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}], n=0)
        assert err.value.param == "n"
        providers = httpx.get(f"{gateway.base_url}/providers").json()["data"]
        assert providers[0]["config"]["api_key"] == "********"
        assert providers[0]["health"]["status"] == "OK"


def test_remote_openai_connection_refused_is_502(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    with LiveServer(gateway_config(tmp_path, dead)) as gateway:
        r = httpx.post(f"{gateway.base_url}/chat/completions", json={**CHAT, "model": "chat"})
        assert r.status_code == 502
        assert f"cannot connect to {dead}" in r.json()["error"]["message"]


def test_remote_openai_timeout_is_504(tmp_path: Path) -> None:
    slow = parse_config(textwrap.dedent(f"""
        providers:
          inference:
            - {{provider_id: fake, provider_type: inline::fake, config: {{response_delay_s: 3}}}}
        storage: {{backends: {{kv: {{type: sqlite, db_path: "{tmp_path}/slow.db"}}}}, stores: {{registry: kv}}}}
        """), env={})
    gw_dir = tmp_path / "gw"
    gw_dir.mkdir()
    with LiveServer(slow) as upstream, LiveServer(gateway_config(gw_dir, upstream.base_url, timeout_s=0.3)) as gw:
        r = httpx.post(f"{gw.base_url}/chat/completions", json={**CHAT, "model": "up/fake-llm"}, timeout=10)
        assert r.status_code == 504 and r.json()["error"]["type"] == "timeout_error"


# ---- `stackkit run` as a process -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_stackkit_run_serves_and_stops_gracefully(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(textwrap.dedent(f"""
        distro_name: cli-test
        providers:
          inference:
            - {{provider_id: fake, provider_type: inline::fake}}
            - {{provider_id: "${{env.NOT_SET_ANYWHERE:+openai}}", provider_type: remote::openai}}
        storage: {{backends: {{kv: {{type: sqlite, db_path: "{tmp_path}/kv.db"}}}}, stores: {{registry: kv}}}}
        """))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "NOT_SET_ANYWHERE"}
    proc = subprocess.Popen([sys.executable, "-m", "stackkit.cli.main", "run", str(config), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        base = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            pytest.fail("stackkit run did not become healthy in 20 s")
        with openai.OpenAI(base_url=base, api_key="none", max_retries=0) as sdk:
            out = sdk.chat.completions.create(model="fake/fake-llm", messages=[{"role": "user", "content": "ping"}])
            assert out.choices[0].message.content == "ping"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, err
    assert f"serving 'cli-test' at http://127.0.0.1:{port}/v1" in err
    assert "fake (inline::fake)" in err
    assert "off: remote::openai (inference): set NOT_SET_ANYWHERE to enable" in err
    assert '"path":"/v1/chat/completions","status":200' in err  # the access log line
    assert "Traceback" not in err


def test_stackkit_run_bad_config_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("providers:\n  inference:\n    - {provider_id: x, provider_type: remote::typo}\n")
    proc = subprocess.run([sys.executable, "-m", "stackkit.cli.main", "run", str(config)], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 1
    assert "run.yaml:3: providers.inference[0].provider_type: unknown provider_type 'remote::typo'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_stackkit_run_starter_works_offline(tmp_path: Path) -> None:
    """The README's first command: healthy at once, then a real local chat model (SmolLM2, fetched from
    PyPI once) answers chat and Responses, MiniLM embeds, and vector stores search, with no keys."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OLLAMA_URL", "VLLM_URL", "LOCAL_MODEL")}
    env.update(STACKKIT_HOME=str(tmp_path), HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "stackkit.cli.main", "run", "starter", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        base = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{base}/health", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("stackkit run starter did not become healthy")
        # healthy before the models are in: they load in the background and their requests wait for them
        health = httpx.get(f"{base}/health").json()
        assert set(health["loading"]) <= {"sentence-transformers", "local"} and health["failed"] == []
        with openai.OpenAI(base_url=base, api_key="none", max_retries=0) as sdk:
            question = "What is the capital of France?"
            chat = sdk.chat.completions.create(model="smollm2-135m-instruct", temperature=0, max_tokens=30,
                                               messages=[{"role": "user", "content": question}])
            assert "Paris" in (chat.choices[0].message.content or ""), chat
            turn = sdk.responses.create(model="smollm2-135m-instruct", input=question, temperature=0,
                                        max_output_tokens=30)
            as_sdk(turn)
            assert turn.status in ("completed", "incomplete") and "Paris" in turn.output_text, turn
            out = sdk.embeddings.create(model="all-MiniLM-L6-v2", input=["hello", "world"])
            assert httpx.get(f"{base}/health").json() == {"status": "OK", "loading": [], "failed": []}
            assert [len(d.embedding) for d in out.data] == [384, 384]
            assert "all-MiniLM-L6-v2" in [m.id for m in sdk.models.list().data]
            with pytest.raises(openai.NotFoundError, match=r"Known models: .*all-MiniLM-L6-v2"):
                sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            cats = sdk.files.create(file=("cats.txt", b"Cats purr when they are content."), purpose="assistants")
            taxes = sdk.files.create(file=("tax.txt", b"File your tax return before April."), purpose="assistants")
            store = sdk.vector_stores.create(name="starter", file_ids=[cats.id, taxes.id])
            for _ in range(200):
                if sdk.vector_stores.retrieve(store.id).file_counts.completed == 2:
                    break
                time.sleep(0.05)
            found = sdk.vector_stores.search(store.id, query="a happy kitten")
            assert found.data[0].file_id == cats.id  # MiniLM: semantic, no shared words
            rag = sdk.responses.create(  # RAG: the local model searches the store, then answers from it
                model="smollm2-135m-instruct", input="What do cats do when they are content?", temperature=0,
                tools=[{"type": "file_search", "vector_store_ids": [store.id], "max_num_results": 1}],
                tool_choice="required", max_output_tokens=120, include=["file_search_call.results"])
            as_sdk(rag)
            search, answer = (o.model_dump() for o in rag.output)
            assert search["type"] == "file_search_call" and search["results"][0]["file_id"] == cats.id
            assert [a["file_id"] for a in answer["content"][0]["annotations"]] == [cats.id]
            assert "purr" in rag.output_text.lower()  # greedy SmolLM2 answers from the passage it was given
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OLLAMA_URL", "VLLM_URL"):
        assert f"set {var} to enable" in err
    # the chat model runs on llama.cpp where it is installed (as in CI), else on transformers
    engine = "inline::llama-cpp" if importlib.util.find_spec("llama_cpp") else "inline::transformers"
    assert f"local ({engine})" in err, err
    assert proc.returncode == 0, err


def test_url_credentials_never_reach_errors_or_the_provider_listing(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://admin:s3cr3t@127.0.0.1:{s.getsockname()[1]}/v1"
    with pytest.raises(ConfigError, match="base_url carries credentials and an API key is set"):
        LiveServer(gateway_config(tmp_path, dead)).__enter__()
    with LiveServer(gateway_config(tmp_path, dead, api_key="")) as gateway:
        r = httpx.post(f"{gateway.base_url}/chat/completions", json={**CHAT, "model": "chat"})
        assert r.status_code == 502 and "cannot connect to http://********@127.0.0.1" in r.json()["error"]["message"]
        listing = httpx.get(f"{gateway.base_url}/providers").text
        for text in (r.text, listing):
            assert "s3cr3t" not in text and "admin" not in text
        config = httpx.get(f"{gateway.base_url}/providers").json()["data"][0]["config"]
        assert config["timeout_s"] > 0 and config["max_connections"] == 256  # what is not secret is shown


def test_a_taken_port_is_one_line_naming_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "stackkit.cli.main", "run", "starter", "--port", str(port)],
                              capture_output=True, text=True, timeout=60, env={**os.environ,
                                                                               "STACKKIT_HOME": str(tmp_path)})
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: port {port} on 127.0.0.1 is already in use (another server?); pick " \
                                  "another with --port"


def test_a_start_up_error_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "run.yaml"
    bad.write_text("providers:\n  inference:\n    - {provider_id: st, provider_type: inline::sentence-transformers,"
                   " config: {model: /no/such/model}}\n")
    done = subprocess.run([sys.executable, "-m", "stackkit.cli.main", "run", str(bad), "--port", "0"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "STACKKIT_HOME": str(tmp_path)})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == ["error: inline::sentence-transformers: model directory "
                                                "'/no/such/model' does not exist; fix `model` in run.yaml or "
                                                "unset it for the packaged MiniLM."]
