"""Quota counters in Redis, shared by every replica: each operation is one Lua script, so admission across
all of a request's buckets is atomic, and the clock is Redis's own (TIME), so replicas need not agree on
theirs. Levels are returned as strings (Redis would truncate a Lua number to an integer)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from stackkit.core.quotas import LEASE_S, Bucket
from stackkit.errors import ProviderUnavailableError, StackkitError

log = logging.getLogger("stackkit.quotas")

_LEVEL = """
local function now() local t = redis.call('TIME') return tonumber(t[1]) + tonumber(t[2]) / 1e6 end
local function level(key, limit, at)
  local v = redis.call('HMGET', key, 'level', 'updated')
  if not v[1] then return limit end
  return math.min(limit, tonumber(v[1]) + (at - tonumber(v[2])) * limit / 60)
end
local function store(key, value, limit, at)
  redis.call('HSET', key, 'level', tostring(value), 'updated', tostring(at))
  redis.call('EXPIRE', key, math.max(120, math.ceil(-value / (limit / 60)) + 60))
end
"""

ADMIT = _LEVEL + """
local at = now()
local lease, lease_s, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for j = n + 1, #KEYS do  -- first the token charges owed by earlier calls, sent along with this one
  local tokens, limit = tonumber(ARGV[2 + 2 * j]), tonumber(ARGV[3 + 2 * j])
  store(KEYS[j], level(KEYS[j], limit, at) - tokens, limit, at)
end
local wait, levels = 0, {}
for i = 1, n do
  local kind, limit = ARGV[2 + 2 * i], tonumber(ARGV[3 + 2 * i])
  if kind == 'concurrent' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', at)
    if redis.call('ZCARD', KEYS[i]) >= limit then wait = math.max(wait, 1) end
  else
    levels[i] = level(KEYS[i], limit, at)
    if kind == 'requests' and levels[i] < 1 then wait = math.max(wait, (1 - levels[i]) / (limit / 60)) end
    if kind == 'tokens' and levels[i] <= 0 then wait = math.max(wait, -levels[i] / (limit / 60) + 0.001) end
  end
end
if wait > 0 then return tostring(wait) end
for i = 1, n do
  local kind, limit = ARGV[2 + 2 * i], tonumber(ARGV[3 + 2 * i])
  if kind == 'concurrent' then
    redis.call('ZADD', KEYS[i], at + lease_s, lease)
    redis.call('EXPIRE', KEYS[i], math.ceil(lease_s))
  elseif kind == 'requests' then
    store(KEYS[i], levels[i] - 1, limit, at)
  else
    store(KEYS[i], levels[i], limit, at)
  end
end
return '0'
"""

CHARGE = _LEVEL + """
local at = now()
for i = 1, #KEYS do
  local tokens, limit = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  store(KEYS[i], level(KEYS[i], limit, at) - tokens, limit, at)
end
return '0'
"""
CHARGE_EVERY_S = 0.02  # tokens charged within this long go to Redis together, in one script call


class RedisQuotaStore:
    """Quota counters in Redis (``quotas.redis_url``). Admission is one script call per request; token
    charges (known only after the answer) are summed per bucket and sent with the next admission, or after
    CHARGE_EVERY_S when none comes, so a bucket can be up to that late in learning of tokens, and a replica
    that dies loses at most that much."""

    def __init__(self, url: str) -> None:
        try:
            import redis.asyncio as redis
            from redis.exceptions import NoScriptError
        except ImportError as exc:
            raise StackkitError("quotas.redis_url needs the redis package: pip install 'stackkit[redis]'") from exc
        self.redis: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.errors = redis.RedisError
        self.no_script = NoScriptError
        self.where = url.split("@")[-1]  # never the password
        self._scripts = {name: hashlib.sha1(body.encode()).hexdigest() for name, body in
                         (("admit", ADMIT), ("charge", CHARGE))}
        self._bodies = {"admit": ADMIT, "charge": CHARGE}
        self._owed: dict[str, list[float]] = {}  # key -> [tokens, limit], not yet sent
        self._charging: asyncio.Task[None] | None = None

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA (loading the script once if Redis does not know it), without redis-py's Script wrapper,
        whose per-call type checks cost more than the call."""
        try:
            return await self.redis.evalsha(self._scripts[name], len(keys), *keys, *args)
        except self.no_script:
            return await self.redis.eval(self._bodies[name], len(keys), *keys, *args)

    @staticmethod
    def _key(bucket: Bucket) -> str:
        return f"stackkit:quota:{bucket.key}"

    async def _run(self, call: Any) -> Any:
        try:
            return await call
        except self.errors as exc:
            raise ProviderUnavailableError(f"The quota store (Redis at {self.where}) cannot be reached "
                                           f"({type(exc).__name__}); start it or check quotas.redis_url.") from None

    async def admit(self, buckets: list[Bucket], lease: str) -> float:
        """One script call: the token charges owed so far, then the admission (so under steady load no call
        is spent on charges alone)."""
        owed, self._owed = self._owed, {}
        args: list[Any] = [lease, LEASE_S, len(buckets)]
        for b in buckets:
            args += [b.kind, b.limit]
        for tokens_limit in owed.values():
            args += tokens_limit
        try:
            return float(await self._run(self._script("admit", [*(self._key(b) for b in buckets), *owed], args)))
        except StackkitError:
            self._restore(owed)
            raise

    async def charge(self, buckets: list[Bucket], tokens: float) -> None:
        for b in buckets:
            if b.kind == "tokens":
                self._owed.setdefault(self._key(b), [0.0, b.limit])[0] += tokens
        if self._owed and self._charging is None:
            self._charging = asyncio.get_running_loop().create_task(self._charge_soon())

    async def _charge_soon(self) -> None:
        try:
            await asyncio.sleep(CHARGE_EVERY_S)
        finally:
            self._charging = None
            await asyncio.shield(self._send_charges())

    async def _send_charges(self) -> None:
        owed, self._owed = self._owed, {}
        if not owed:
            return
        args = [v for tokens_limit in owed.values() for v in tokens_limit]
        try:
            await self._run(self._script("charge", list(owed), args))
        except StackkitError as exc:
            log.error("%s; %d tokens could not be charged", exc.message, int(sum(t for t, _ in owed.values())))

    def _restore(self, owed: dict[str, list[float]]) -> None:
        """Charges a failed call did not deliver: owed again (the next call or the timer sends them)."""
        for key, (tokens, limit) in owed.items():
            self._owed.setdefault(key, [0.0, limit])[0] += tokens

    async def release(self, buckets: list[Bucket], lease: str) -> None:
        leased = [self._key(b) for b in buckets if b.kind == "concurrent"]
        if leased:
            pipe = self.redis.pipeline()
            for key in leased:
                pipe.zrem(key, lease)
            await self._run(pipe.execute())

    async def close(self) -> None:
        if self._charging is not None:
            self._charging.cancel()
        await self._send_charges()
        await self.redis.aclose()
