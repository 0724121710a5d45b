"""API keys kept in the stack's registry KV store (`server.auth.stored_keys: true`), so they can be issued and
revoked without editing run.yaml or restarting, and every replica on a shared store (PostgreSQL, Redis)
accepts the same keys. Only a key's SHA-256 is stored; the key itself is shown once, when it is created.

`stackkit keys create|list|revoke` write them; the auth middleware reads them, caching each answer for
CACHE_S, so a revoked key stops working on every replica within that long.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import orjson

from stackkit.core.request_context import Principal
from stackkit.core.storage import KVStore
from stackkit.errors import NotFoundError

PREFIX = "apikey:"
CACHE_S = 5.0


class StoredKeys:
    """The API keys in a KV store, by digest: each maps to a principal and its attributes."""

    def __init__(self, kv: KVStore) -> None:
        self.kv = kv
        self._cache: dict[bytes, tuple[float, Principal | None]] = {}

    async def principal(self, digest: bytes) -> Principal | None:
        """The principal of the key with this SHA-256 digest, or None when no such key is stored."""
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        raw = await self.kv.get(PREFIX + digest.hex())
        record = orjson.loads(raw) if raw is not None else None
        principal = Principal(record["principal"], record.get("attributes", {})) if record else None
        if len(self._cache) > 10_000:  # a flood of wrong keys must not grow it without bound
            self._cache.clear()
        self._cache[digest] = (now + CACHE_S, principal)
        return principal

    async def create(self, principal: str, attributes: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """A new key for `principal`: the key (shown once, never stored) and its record."""
        key = "sk-stackkit-" + secrets.token_urlsafe(32)
        digest = hashlib.sha256(key.encode()).hexdigest()
        record = {"id": digest[:12], "principal": principal, "attributes": attributes,
                  "created_at": int(time.time())}
        await self.kv.set(PREFIX + digest, orjson.dumps(record).decode())
        return key, record

    async def list(self) -> list[dict[str, Any]]:
        return [orjson.loads(value) for _, value in await self.kv.range(PREFIX)]

    async def revoke(self, key_id: str) -> dict[str, Any]:
        """Delete the key whose id (the start of its digest, as `list` shows it) is `key_id`."""
        found = [(k, v) for k, v in await self.kv.range(PREFIX) if k[len(PREFIX):].startswith(key_id.lower())]
        if len(key_id) < 6 or len(found) != 1:
            raise NotFoundError(f"No single stored key has the id '{key_id}'; use an id as `stackkit keys list` "
                                "shows it.")
        await self.kv.delete(found[0][0])
        return dict(orjson.loads(found[0][1]))
