"""Several providers behind one model (``targets:`` on a registered model): requests go to the healthy
target with the fewest requests in flight for its weight; a target that fails (cannot connect, 5xx, 429,
timeout) before any byte reached the client is retried on the next one and put in cooldown, then probed
back: a background probe asks the target's provider for its health every second while it is down and
puts it back at once when it answers, and any target whose cooldown is over is tried again by requests.
Streams fail over only until their first chunk: once a client has seen output, a failure is reported,
never papered over with another model's text. Errors that are the request's fault (4xx) are not retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from stackkit.apis.datatypes import ModelTarget
from stackkit.core.streams import Stream, aclose
from stackkit.errors import ProviderError, RateLimitError, StackkitError

log = logging.getLogger("stackkit.failover")
COOLDOWN_S = 2.0
MAX_COOLDOWN_S = 30.0
PROBE_S = 1.0


def retryable(exc: BaseException) -> bool:
    """A failure of the target, not of the request: another target may answer."""
    return isinstance(exc, ProviderError | RateLimitError)


class _Target:
    def __init__(self, target: ModelTarget) -> None:
        self.spec = target
        self.in_flight = 0
        self.failures = 0
        self.down_until = 0.0
        self.probe: asyncio.Task[None] | None = None

    def load(self) -> float:
        return self.in_flight / self.spec.weight


class TargetPool:
    """The targets of one model, their load and health."""

    def __init__(self, targets: list[ModelTarget]) -> None:
        self.targets = [_Target(t) for t in targets]

    def order(self) -> list[_Target]:
        """Healthy targets by load (least in flight per weight first), then those cooling down (soonest
        back first), so a request is only ever refused when every target has failed it."""
        now = time.monotonic()
        healthy = sorted((t for t in self.targets if t.down_until <= now), key=_Target.load)
        cooling = sorted((t for t in self.targets if t.down_until > now), key=lambda t: t.down_until)
        return healthy + cooling

    @staticmethod
    def succeeded(target: _Target) -> None:
        if target.failures:
            log.info("target %s/%s answers again", target.spec.provider_id, target.spec.provider_model_id)
        target.failures = 0
        target.down_until = 0.0

    def failed(self, target: _Target, exc: BaseException, provider: Any = None) -> None:
        target.failures += 1
        cooldown = min(MAX_COOLDOWN_S, COOLDOWN_S * 2 ** (target.failures - 1))
        target.down_until = time.monotonic() + cooldown
        log.warning("target %s/%s failed (%s); cooling down for %.0f s", target.spec.provider_id,
                    target.spec.provider_model_id, exc, cooldown)
        if provider is not None and getattr(provider, "health", None) is not None and target.probe is None:
            target.probe = asyncio.get_running_loop().create_task(self._probe(target, provider))

    async def _probe(self, target: _Target, provider: Any) -> None:
        """Ask a failed target's provider for its health every PROBE_S until it answers, then put it back."""
        try:
            while target.down_until > 0:
                await asyncio.sleep(PROBE_S)
                try:
                    status = await asyncio.wait_for(provider.health(), 5)
                except Exception:  # noqa: BLE001 - still down, whatever the reason
                    continue
                if isinstance(status, dict) and status.get("status") == "OK":
                    self.succeeded(target)
        finally:
            target.probe = None

    async def close(self) -> None:
        probes = [t.probe for t in self.targets if t.probe is not None]
        for probe in probes:
            probe.cancel()
        await asyncio.gather(*probes, return_exceptions=True)


async def call_with_failover(pool: TargetPool, providers: dict[str, Any], request: Any,
                             call: Callable[[Any, Any], Awaitable[Any]]) -> Any:
    """`call(provider, request)` on the pool's targets in order until one answers (a stream: until one has
    produced its first chunk); the last target's error when none does."""
    last: BaseException | None = None
    for target in pool.order():
        provider = providers.get(target.spec.provider_id)
        if provider is None:
            continue
        target.in_flight += 1
        try:
            result = await call(provider, request.model_copy(update={"model": target.spec.provider_model_id}))
            if hasattr(result, "__anext__"):
                return await _first_chunk(result, pool, target)
        except StackkitError as exc:
            target.in_flight -= 1
            if not retryable(exc):
                raise
            pool.failed(target, exc, provider)
            last = exc
            continue
        except BaseException:
            target.in_flight -= 1
            raise
        target.in_flight -= 1
        pool.succeeded(target)
        return result
    assert last is not None, "a model with targets has at least one"
    raise last


async def _first_chunk(stream: AsyncIterator[Any], pool: TargetPool, target: _Target) -> Stream[Any]:
    """The stream once its first chunk is in (a failure before it is raised, for failover); the target's
    request ends with the stream."""
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        first = None
    except BaseException:
        await aclose(stream)
        raise
    pool.succeeded(target)
    ended = False

    async def end() -> None:
        nonlocal ended
        if not ended:
            ended = True
            target.in_flight -= 1

    async def relay() -> AsyncIterator[Any]:
        try:
            if first is not None:
                yield first
                async for chunk in stream:
                    yield chunk
        finally:
            await end()

    async def close() -> None:
        await aclose(stream)
        await end()

    return Stream(relay(), close)
