"""Telemetry (telemetry: in run.yaml) on a live server: spans checked with the OpenTelemetry SDK's in-memory
exporter (the caller's trace continued; a model call span with GenAI attributes and token usage; shield,
vector search and MCP tool call spans; the trace context sent on to a remote provider's upstream), one
OTLP/HTTP export to a receiver the test runs, /metrics parsed with the Prometheus client's parser, trace
ids in the access log; and off by default (no /metrics, no trace headers upstream)."""

from __future__ import annotations

import asyncio
import logging
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stackkit.core.config import RunConfig, parse_config
from stackkit.testing.live_server import LiveServer
from tests import echo_upstream
from tests.chroma_server import free_port
from tests.echo_upstream import EchoUpstream
from tests.mcp_server import McpServer

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


class OtlpReceiver:
    """An OTLP/HTTP traces endpoint on 127.0.0.1 that keeps the span names it is sent."""

    def __init__(self) -> None:
        self.spans: list[str] = []
        self.port = free_port()

        async def traces(request: Request) -> Response:
            export = ExportTraceServiceRequest.FromString(await request.body())
            self.spans += [s.name for rs in export.resource_spans for ss in rs.scope_spans for s in ss.spans]
            return Response(b"", media_type="application/x-protobuf")

        self.server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])]),
                                                    host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _config(tmp_path: Path, upstream: str, telemetry: str) -> RunConfig:
    return parse_config(textwrap.dedent(f"""
        providers:
          inference:
            - {{provider_id: fake, provider_type: inline::fake}}
            - {{provider_id: up, provider_type: remote::openai, config: {{base_url: "{upstream}", api_key: ""}}}}
          safety: [{{provider_id: pii, provider_type: inline::pii}}]
          vector_io: [{{provider_id: mem, provider_type: inline::fake, config: {{embedding_model: embedder}}}}]
        registered_resources:
          models:
            - {{model_id: echo, provider_id: fake, provider_model_id: fake-llm}}
            - {{model_id: embedder, provider_id: fake, provider_model_id: fake-embed, model_type: embedding}}
            - {{model_id: upstream, provider_id: up, provider_model_id: gpt-test}}
          shields: [{{shield_id: pii, provider_id: pii}}]
        storage: {{backends: {{kv: {{type: sqlite, db_path: "{tmp_path}/kv.db"}}}}, stores: {{registry: kv}}}}
        {telemetry}
        """), source=str(tmp_path / "run.yaml"), env={})


@pytest.fixture
def upstream() -> Iterator[str]:
    echo_upstream.SEEN_TRACEPARENT.clear()
    with EchoUpstream() as url:
        yield url


def test_spans_metrics_and_an_otlp_export(tmp_path: Path, upstream: str, caplog: pytest.LogCaptureFixture) -> None:
    memory = InMemorySpanExporter()
    with OtlpReceiver() as receiver, McpServer() as mcp_url:
        telemetry = f"telemetry: {{traces: otlp, otlp_endpoint: 'http://127.0.0.1:{receiver.port}/v1/traces'}}"
        with caplog.at_level(logging.INFO, logger="stackkit.access"), \
                LiveServer(_config(tmp_path, upstream, telemetry)) as server, \
                openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0,
                              default_headers={"traceparent": TRACEPARENT}) as sdk:
            assert server.stack is not None and server.stack.telemetry is not None
            server.stack.telemetry.provider.add_span_processor(SimpleSpanProcessor(memory))
            sdk.chat.completions.create(model="echo", messages=[{"role": "user", "content": "a b c"}],
                                        extra_body={"guardrails": ["pii"]})
            list(sdk.chat.completions.create(model="echo", messages=[{"role": "user", "content": "d e"}], stream=True))
            sdk.chat.completions.create(model="upstream", messages=[{"role": "user", "content": "hi"}])
            store = sdk.vector_stores.create(name="docs")
            sdk.vector_stores.search(store.id, query="anything")
            sdk.responses.create(model="echo", input="please shout hi", tools=[{
                "type": "mcp", "server_label": "demo", "server_url": mcp_url, "require_approval": "never"}])
            metrics = httpx.get(server.base_url.removesuffix("/v1") + "/metrics").text
        exported = receiver.spans  # the batch exporter flushed at shutdown
    spans = memory.get_finished_spans()
    names = [s.name for s in spans]
    attrs: Any = {id(s): dict(s.attributes or {}) for s in spans}
    chat = next(s for s in spans if s.name == "chat echo" and attrs[id(s)].get("gen_ai.usage.input_tokens") == 3)
    assert attrs[id(chat)]["gen_ai.operation.name"] == "chat" and attrs[id(chat)]["gen_ai.system"] == "fake"
    assert attrs[id(chat)]["gen_ai.usage.output_tokens"] == 3
    assert chat.context is not None and format(chat.context.trace_id, "032x") == CALLER_TRACE  # continued
    assert chat.parent is not None and chat.parent.span_id == next(
        s for s in spans if s.name == "POST /v1/chat/completions").context.span_id
    streamed = [s for s in spans if s.name == "chat echo" and attrs[id(s)].get("gen_ai.usage.output_tokens") == 2]
    assert streamed  # a stream's span ends with the stream, with its usage
    assert "shield pii" in names and "vector_search" in names and "execute_tool shout" in names
    assert "embeddings embedder" in names  # the vector search embedded its query
    sent = echo_upstream.SEEN_TRACEPARENT
    assert len(sent) == 1 and sent[0].split("-")[1] == CALLER_TRACE  # propagated to the remote provider
    assert "chat echo" in exported and "POST /v1/chat/completions" in exported
    logged = [r.getMessage() for r in caplog.records if '"path":"/v1/chat/completions"' in r.getMessage()]
    assert logged and all(f'"trace_id":"{CALLER_TRACE}"' in line for line in logged)

    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(metrics) for s in family.samples}
    assert samples[("stackkit_requests_total", (("operation", "chat_completion"), ("status", "200")))] == 3
    assert samples[("stackkit_model_calls_total", (("model", "echo"), ("outcome", "ok"), ("principal", "anonymous"),
                                                   ("provider", "fake")))] >= 2
    assert samples[("stackkit_tokens_total", (("kind", "output"), ("model", "echo"), ("principal", "anonymous"),
                                              ("provider", "fake")))] >= 5
    assert samples[("stackkit_model_call_seconds_count", (("model", "echo"), ("provider", "fake")))] >= 2
    assert ("stackkit_queue_depth", (("queue", "stored_completions"),)) in samples


def test_off_by_default(tmp_path: Path, upstream: str) -> None:
    with LiveServer(_config(tmp_path, upstream, "")) as server, \
            openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0) as sdk:
        assert server.stack is not None and server.stack.telemetry is None
        sdk.chat.completions.create(model="upstream", messages=[{"role": "user", "content": "hi"}],
                                    extra_headers={"traceparent": TRACEPARENT})
        assert httpx.get(server.base_url.removesuffix("/v1") + "/metrics").status_code == 404
    assert echo_upstream.SEEN_TRACEPARENT == []


def test_a_sample_ratio_leaves_requests_out_wholly_but_follows_callers(tmp_path: Path, upstream: str) -> None:
    """traces_sample_ratio 0: a request without trace context makes no span at all (none for its model call or
    shield either) and sends no trace context upstream; a caller's sampled trace is still followed. 0.5:
    about half the requests are traced, each wholly (a server span always with its model call span)."""
    memory = InMemorySpanExporter()
    telemetry = "telemetry: {traces: console, traces_sample_ratio: 0.0}"
    with LiveServer(_config(tmp_path, upstream, telemetry)) as server, \
            openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0) as sdk:
        assert server.stack is not None and server.stack.telemetry is not None
        server.stack.telemetry.provider.add_span_processor(SimpleSpanProcessor(memory))
        for _ in range(5):
            sdk.chat.completions.create(model="upstream", messages=[{"role": "user", "content": "hi"}],
                                        extra_body={"guardrails": ["pii"]})
        assert memory.get_finished_spans() == () and echo_upstream.SEEN_TRACEPARENT == []
        sdk.chat.completions.create(model="upstream", messages=[{"role": "user", "content": "hi"}],
                                    extra_headers={"traceparent": TRACEPARENT})
        assert {format(s.context.trace_id, "032x") for s in memory.get_finished_spans()} == {CALLER_TRACE}
        assert len(echo_upstream.SEEN_TRACEPARENT) == 1 and CALLER_TRACE in echo_upstream.SEEN_TRACEPARENT[0]
    memory = InMemorySpanExporter()  # the first one was shut down with its stack
    half = "telemetry: {traces: console, traces_sample_ratio: 0.5}"
    with LiveServer(_config(tmp_path / "half", upstream, half)) as server, \
            openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0) as sdk:
        assert server.stack is not None and server.stack.telemetry is not None
        server.stack.telemetry.provider.add_span_processor(SimpleSpanProcessor(memory))
        for _ in range(200):
            sdk.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
        deadline = time.monotonic() + 5  # a server span ends after its response is sent: let the last one end
        while True:
            traces: dict[int, list[str]] = {}
            for s in memory.get_finished_spans():
                traces.setdefault(s.context.trace_id, []).append(s.name)
            whole = all(sorted(names) == ["POST /v1/chat/completions", "chat echo"] for names in traces.values())
            if whole or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert 60 <= len(traces) <= 140  # binomial(200, 0.5): outside this once in ~10^8 runs
        assert whole, [names for names in traces.values() if len(names) != 2]
