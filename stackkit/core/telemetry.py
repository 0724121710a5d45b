"""Telemetry, off unless run.yaml has ``telemetry:``: OpenTelemetry traces and Prometheus metrics.

Spans: one per HTTP request (the caller's W3C trace context continued), one per model call with the GenAI
semantic-convention attributes (operation, model, provider, token usage), one per shield run, vector
search and tool call; the trace context is sent on to remote providers (``traceparent``). Metrics (at
``/metrics``): requests and their latency by operation and status, model calls, latency, tokens and
errors by model, provider and principal, and the stored-completions queue depth. Each stack has its own
tracer provider and metrics registry. When telemetry is off nothing here is imported by the hot path
and every hook is a None check.
"""

from __future__ import annotations

import contextlib
import contextvars
import random
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from stackkit.core.config import TelemetryConfig
from stackkit.core.request_context import current_principal
from stackkit.errors import StackkitError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

_tracing_on = False  # any stack in this process traces: upstream calls carry traceparent
# this request was left out by traces_sample_ratio: no span, no context, nothing sent upstream. Decided
# before the SDK is touched, because its per-request work costs nearly as much for an unsampled span.
_unsampled: contextvars.ContextVar[bool] = contextvars.ContextVar("stackkit_unsampled", default=False)


def _require() -> None:
    try:
        import opentelemetry.sdk.trace  # noqa: F401
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise StackkitError("telemetry needs OpenTelemetry and the Prometheus client: "
                            "pip install 'stackkit[telemetry]'") from exc


def inject_trace_context(headers: dict[str, str]) -> dict[str, str]:
    """`headers` plus the current span's W3C trace context (unchanged when no stack traces)."""
    if not _tracing_on or _unsampled.get():
        return headers
    from opentelemetry import propagate

    carrier = dict(headers)
    propagate.inject(carrier)
    return carrier


class ModelCall:
    """One model call being measured: its span stays open until the answer (or the stream) ends."""

    def __init__(self, telemetry: Telemetry, operation: str, model: str, provider: str) -> None:
        self.telemetry, self.operation, self.model, self.provider = telemetry, operation, model, provider
        principal = current_principal.get()
        self.principal = principal.name if principal is not None else "anonymous"
        self.started = time.perf_counter()
        self.span = None
        if not telemetry.skips():
            self.span = telemetry.tracer.start_span(f"{operation} {model}", attributes={
                "gen_ai.operation.name": operation, "gen_ai.request.model": model, "gen_ai.system": provider})
        self._done = False

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """The call's span as the current one (so upstream requests carry its trace context)."""
        if self.span is None:
            reset = _unsampled.set(True)  # what the call does is left out with it
            try:
                yield
            finally:
                _unsampled.reset(reset)
            return
        from opentelemetry import trace

        with trace.use_span(self.span, end_on_exit=False):
            yield

    def finish(self, usage: Any = None, error: BaseException | None = None) -> None:
        if self._done:
            return
        self._done = True
        labels = (self.model, self.provider, self.principal)
        child = self.telemetry.child
        if self.telemetry.metrics is not None:
            child("model_calls", *labels, "error" if error else "ok").inc()
            child("model_seconds", self.model, self.provider).observe(time.perf_counter() - self.started)
        prompt = getattr(usage, "prompt_tokens", None)
        completion = getattr(usage, "completion_tokens", None)
        if self.telemetry.metrics is not None:
            for kind, count in (("input", prompt), ("output", completion)):
                if count:
                    child("tokens", *labels, kind).inc(count)
        if self.span is not None:
            if prompt is not None:
                self.span.set_attribute("gen_ai.usage.input_tokens", prompt)
            if completion is not None:
                self.span.set_attribute("gen_ai.usage.output_tokens", completion)
            if error is not None:
                from opentelemetry.trace import Status, StatusCode

                self.span.record_exception(error)
                self.span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            self.span.end()


class Telemetry:
    """A stack's tracer and metrics."""

    def __init__(self, config: TelemetryConfig) -> None:
        global _tracing_on
        _require()
        self.config = config
        self.tracer: Any = None
        self.provider: Any = None
        self.metrics: dict[str, Any] | None = None
        self.registry: Any = None
        self._children: dict[tuple[str, ...], Any] = {}
        if config.traces != "none":
            self._start_tracing()
            _tracing_on = True
        if config.metrics:
            self._start_metrics()

    def _start_tracing(self) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

        # traces_sample_ratio is applied by `skips()` before a root span is made (so an unsampled request costs
        # nothing); the SDK samples every root it is asked for, and follows a caller's sampled flag
        self.provider = TracerProvider(resource=Resource.create({"service.name": self.config.service_name}),
                                       sampler=ParentBased(ALWAYS_ON))
        if self.config.traces == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=self.config.otlp_endpoint)))
        else:
            self.provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        self.tracer = self.provider.get_tracer("stackkit")

    def _start_metrics(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.metrics = {
            "requests": Counter("stackkit_requests", "HTTP requests", ["operation", "status"], registry=r),
            "request_seconds": Histogram("stackkit_request_seconds", "HTTP request latency", ["operation"],
                                         registry=r),
            "model_calls": Counter("stackkit_model_calls", "model calls", ["model", "provider", "principal",
                                                                            "outcome"], registry=r),
            "model_seconds": Histogram("stackkit_model_call_seconds", "model call latency (to the end of a "
                                       "stream)", ["model", "provider"], registry=r),
            "tokens": Counter("stackkit_tokens", "tokens used", ["model", "provider", "principal", "kind"],
                              registry=r),
            "queue": Gauge("stackkit_queue_depth", "rows waiting in a write queue", ["queue"], registry=r),
            "cache": Counter("stackkit_response_cache", "response cache lookups", ["result"], registry=r),
        }

    def watch_queue(self, name: str, depth: Callable[[], float]) -> None:
        if self.metrics is not None:
            self.metrics["queue"].labels(name).set_function(depth)

    def child(self, metric: str, *labels: str) -> Any:
        """The metric's child for these label values (prometheus_client's `labels()` costs microseconds a
        call; the children are kept, bounded)."""
        key = (metric, *labels)
        found = self._children.get(key)
        if found is None:
            assert self.metrics is not None
            if len(self._children) > 50_000:
                self._children.clear()
            found = self._children[key] = self.metrics[metric].labels(*labels)
        return found

    def skips(self) -> bool:
        """Whether what starts now goes untraced: inside an unsampled request, or a new trace that
        traces_sample_ratio leaves out (never inside a traced one)."""
        if self.tracer is None or _unsampled.get():
            return True
        ratio = self.config.traces_sample_ratio
        if ratio >= 1.0:
            return False
        from opentelemetry import trace

        return not trace.get_current_span().get_span_context().is_valid and random.random() >= ratio

    def model_call(self, operation: str, model: str, provider: str) -> ModelCall:
        return ModelCall(self, operation, model, provider)

    @contextlib.contextmanager
    def span(self, name: str, attributes: dict[str, Any]) -> Iterator[Any]:
        if self.skips():
            reset = _unsampled.set(True)
            try:
                yield None
            finally:
                _unsampled.reset(reset)
            return
        with self.tracer.start_as_current_span(name, attributes=attributes) as span:
            yield span

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))

    async def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()  # flushes the batch exporter


def span(telemetry: Telemetry | None, name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A span named `name` when `telemetry` traces, else nothing at all."""
    return telemetry.span(name, attributes) if telemetry is not None else contextlib.nullcontext()


_TRACE_HEADERS = frozenset((b"traceparent", b"tracestate", b"baggage"))  # W3C trace context: all extract reads


class TelemetryMiddleware:
    """One server span per HTTP request (continuing the caller's trace context) and the request metrics;
    the trace id is handed to the access log."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/metrics":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        tracer = self.telemetry.tracer
        if tracer is None:
            await self.app(scope, receive, sending)
        else:
            from opentelemetry import propagate
            from opentelemetry.trace import SpanKind, format_trace_id

            carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _TRACE_HEADERS}
            if "traceparent" not in carrier and self.telemetry.skips():
                reset = _unsampled.set(True)
                try:
                    await self.app(scope, receive, sending)
                finally:
                    _unsampled.reset(reset)
                self._count(scope, status, started)
                return
            context = propagate.extract(carrier) if carrier else None
            with tracer.start_as_current_span(f"{scope['method']} {scope['path']}", context=context,
                                              kind=SpanKind.SERVER, attributes={
                                                  "http.request.method": scope["method"], "url.path": scope["path"]}
                                              ) as request_span:
                scope["stackkit.trace_id"] = format_trace_id(request_span.get_span_context().trace_id)
                await self.app(scope, receive, sending)
                request_span.set_attribute("http.response.status_code", status)
        self._count(scope, status, started)

    def _count(self, scope: Scope, status: int, started: float) -> None:
        metrics = self.telemetry.metrics
        if metrics is not None:
            endpoint = scope.get("endpoint")
            operation = getattr(endpoint, "__name__", "other") if endpoint is not None else "unrouted"
            self.telemetry.child("requests", operation, str(status)).inc()
            self.telemetry.child("request_seconds", operation).observe(time.perf_counter() - started)
