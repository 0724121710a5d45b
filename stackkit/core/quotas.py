"""Quotas and rate limits on model calls (``quotas:`` in run.yaml): requests per minute, tokens per minute and
concurrent requests, per principal and per model, as token buckets.

A request is admitted only if every matching rule has room: a request-rate bucket holds at least one
request, a token bucket is not in debt, the concurrency count is under its cap. Admission takes the request
and the concurrency slot at once, for all rules, or nothing. Tokens are known only from the answer's usage
(streams included: the router asks the provider for the usage chunk), so they are charged afterwards and
may drive a bucket into debt, which holds the next requests back until it refills. A refused request is a
429 whose Retry-After is when the emptiest bucket has room again.

Counters live in this process's memory, or in Redis (``redis_url``), where one Lua script per operation
makes admission atomic across every replica; a concurrency slot there is a lease that expires, so a replica
that dies does not hold its slots for ever.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from stackkit.core.config import QuotaConfig, QuotaRule
from stackkit.core.request_context import current_principal
from stackkit.errors import RateLimitError

LEASE_S = 600.0  # a concurrency slot not released within this long (a dead replica's) is freed


@dataclass(frozen=True)
class Bucket:
    """One counter a request must fit: `kind` is requests, tokens or concurrent."""

    key: str
    kind: str
    limit: float

    @property
    def rate(self) -> float:  # per second
        return self.limit / 60.0


class QuotaStore(Protocol):
    async def admit(self, buckets: list[Bucket], lease: str) -> float:
        """Take one request (and a concurrency slot) from every bucket, or none: 0 when admitted, else the
        seconds until there is room."""
        ...

    async def charge(self, buckets: list[Bucket], tokens: float) -> None: ...
    async def release(self, buckets: list[Bucket], lease: str) -> None: ...
    async def close(self) -> None: ...


class MemoryQuotaStore:
    """The counters in this process (one replica)."""

    def __init__(self) -> None:
        self.levels: dict[str, tuple[float, float]] = {}  # key -> (level, updated)
        self.leases: dict[str, set[str]] = {}

    def _level(self, bucket: Bucket, now: float) -> float:
        level, updated = self.levels.get(bucket.key, (bucket.limit, now))
        return min(bucket.limit, level + (now - updated) * bucket.rate)

    async def admit(self, buckets: list[Bucket], lease: str) -> float:
        now = time.monotonic()
        wait = 0.0
        for b in buckets:
            if b.kind == "concurrent":
                if len(self.leases.get(b.key, ())) >= b.limit:
                    wait = max(wait, 1.0)
                continue
            level = self._level(b, now)
            need = 1.0 if b.kind == "requests" else math.ulp(0)
            if level < need:
                wait = max(wait, (need - level) / b.rate)
        if wait > 0:
            return wait
        for b in buckets:
            if b.kind == "concurrent":
                self.leases.setdefault(b.key, set()).add(lease)
            else:
                self.levels[b.key] = (self._level(b, now) - (1.0 if b.kind == "requests" else 0.0), now)
        return 0.0

    async def charge(self, buckets: list[Bucket], tokens: float) -> None:
        now = time.monotonic()
        for b in buckets:
            if b.kind == "tokens":
                self.levels[b.key] = (self._level(b, now) - tokens, now)

    async def release(self, buckets: list[Bucket], lease: str) -> None:
        for b in buckets:
            if b.kind == "concurrent":
                self.leases.get(b.key, set()).discard(lease)

    async def close(self) -> None:
        return None


class QuotaGate:
    """The rules of run.yaml over a store: which buckets a call to a model by the current principal must fit."""

    def __init__(self, config: QuotaConfig, store: QuotaStore) -> None:
        self.rules = config.rules
        self.store = store
        self._buckets: dict[tuple[str, str], list[Bucket]] = {}

    def buckets(self, model: str) -> list[Bucket]:
        principal = current_principal.get()
        who = principal.name if principal is not None else "anonymous"
        cached = self._buckets.get((who, model))
        if cached is None:
            if len(self._buckets) > 10_000:
                self._buckets.clear()
            cached = self._buckets[(who, model)] = self._match(who, model)
        return cached

    def _match(self, who: str, model: str) -> list[Bucket]:
        found = []
        for i, rule in enumerate(self.rules):
            if rule.principal not in ("*", who) or rule.model not in ("*", model):
                continue
            scope = f"{i}:{who}:{model if rule.model != '*' else '*'}"
            found += [Bucket(f"{scope}:{kind}", kind, limit) for kind, limit in _limits(rule) if limit is not None]
        return found

    async def admit(self, model: str) -> Admission:
        """Admit a call to `model` or raise a 429; `finish()` the admission when the call is over."""
        buckets = self.buckets(model)
        if not buckets:
            return Admission(self, [], "")
        lease = uuid.uuid4().hex if any(b.kind == "concurrent" for b in buckets) else ""
        wait = await self.store.admit(buckets, lease)
        if wait > 0:
            raise RateLimitError(f"Rate limit reached for model '{model}' ({_describe(buckets)}); retry after "
                                 f"{math.ceil(wait)} s, or ask for a higher quota (quotas in run.yaml).",
                                 retry_after=wait)
        return Admission(self, buckets, lease)


def _limits(rule: QuotaRule) -> list[tuple[str, float | None]]:
    return [("requests", rule.requests_per_minute), ("tokens", rule.tokens_per_minute),
            ("concurrent", rule.concurrent_requests)]


def _describe(buckets: list[Bucket]) -> str:
    units = {"requests": "requests/min", "tokens": "tokens/min", "concurrent": "concurrent requests"}
    return ", ".join(f"{b.limit:g} {units[b.kind]}" for b in buckets)


class Admission:
    """An admitted call: charge its tokens when they are known; `finish` releases its concurrency slot
    (a stream's admission is finished when the stream ends or is closed)."""

    def __init__(self, gate: QuotaGate, buckets: list[Bucket], lease: str) -> None:
        self.gate = gate
        self.buckets = buckets
        self.lease = lease
        self.wants_tokens = any(b.kind == "tokens" for b in buckets)
        self._done = False

    async def charge(self, usage: Any) -> None:
        tokens = getattr(usage, "total_tokens", None) if usage is not None else None
        if self.wants_tokens and tokens:
            await self.gate.store.charge(self.buckets, float(tokens))

    async def finish(self) -> None:
        if not self._done and self.buckets:
            self._done = True
            await asyncio.shield(self.gate.store.release(self.buckets, self.lease))


def open_quota_store(config: QuotaConfig) -> QuotaStore:
    if config.redis_url is None:
        return MemoryQuotaStore()
    from stackkit.core.quotas_redis import RedisQuotaStore

    return RedisQuotaStore(config.redis_url)

