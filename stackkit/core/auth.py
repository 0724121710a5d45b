"""Bearer tokens: API keys (compared by SHA-256 digest) and OAuth2/OIDC JWTs verified against the issuer's
JWKS, and the ASGI middleware that turns either into the request's principal.

JWKS keys are fetched with httpx (never blocking the event loop), trusted for `jwks_cache_s`, and
fetched again at once (at most every few seconds) when a token names a key id the set does not have, so
an issuer's key rotation is honoured without a restart. If the issuer cannot be reached, keys already
fetched go on being used. Tokens and keys are never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import httpx
import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from stackkit.core.api_keys import StoredKeys
from stackkit.core.config import OidcConfig
from stackkit.core.request_context import Principal, current_principal
from stackkit.errors import AuthenticationError, ProviderUnavailableError, StackkitError

_REFETCH_AFTER_S = 5.0  # the shortest gap between two fetches for an unknown key id


def _jwt() -> Any:
    try:
        import jwt
    except ImportError as exc:
        raise StackkitError("server.auth.oidc needs PyJWT: pip install 'stackkit[auth]'") from exc
    return jwt


def _claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


class JwtVerifier:
    """Checks a JWT's signature (a key of the issuer's JWKS), `iss`, `aud`, `exp` and `nbf`, and maps its
    claims to a principal."""

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self.jwt = _jwt()
        self._keys: dict[str | None, Any] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def _fetch(self) -> None:
        self.fetches += 1
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                reply = await http.get(self.config.jwks_url)
                reply.raise_for_status()
            keys = self.jwt.PyJWKSet.from_dict(reply.json()).keys
        except (httpx.HTTPError, ValueError, self.jwt.PyJWTError) as exc:
            if self._keys:  # keep the keys we have: the issuer being down must not lock everyone out
                self._fetched_at = time.monotonic() - self.config.jwks_cache_s + _REFETCH_AFTER_S
                return
            raise ProviderUnavailableError(f"Cannot fetch the JWKS at {self.config.jwks_url} "
                                           f"({type(exc).__name__}); check server.auth.oidc.jwks_url.") from None
        self._keys = {k.key_id: k for k in keys}
        self._fetched_at = time.monotonic()

    async def _key(self, kid: str | None) -> Any:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if age > self.config.jwks_cache_s or (kid not in self._keys and age > _REFETCH_AFTER_S):
                await self._fetch()
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        if kid not in self._keys:
            raise AuthenticationError("The token is signed with a key the issuer does not list (kid "
                                      f"{kid!r}); ask the issuer for a new token.", code="invalid_token")
        return self._keys[kid]

    async def principal(self, token: str) -> Principal:
        jwt, config = self.jwt, self.config
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError("The bearer token is neither a known API key nor a JWT; send a valid key "
                                      "or a token from the issuer.", code="invalid_token") from None
        if header.get("alg") not in config.algorithms:
            raise AuthenticationError(f"The token is signed with {header.get('alg')!r}; this server accepts "
                                      f"{', '.join(config.algorithms)}. Ask the issuer for such a token.",
                                      code="invalid_token")
        key = await self._key(header.get("kid"))
        try:
            claims = jwt.decode(token, key.key, algorithms=[header["alg"]], audience=config.audience,
                                issuer=config.issuer, leeway=config.leeway_s,
                                options={"require": ["exp", "iss", "aud", config.principal_claim]})
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("The token has expired; ask the issuer for a new one.",
                                      code="token_expired") from None
        except jwt.InvalidAudienceError:
            raise AuthenticationError(f"The token is not for this server; ask the issuer for a token with audience "
                                      f"{config.audience!r}.", code="invalid_token") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationError(f"The token is from another issuer; use a token from {config.issuer}.",
                                      code="invalid_token") from None
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"The token is not valid ({exc}); ask the issuer for a new one.",
                                      code="invalid_token") from None
        name = claims.get(config.principal_claim)
        if not isinstance(name, str) or not name:
            raise AuthenticationError(f"The token's {config.principal_claim!r} claim must name the caller; set "
                                      "server.auth.oidc.principal_claim to a claim that does.", code="invalid_token")
        attributes = {a: v for a, path in config.attributes.items() if (v := _claim(claims, path)) is not None}
        return Principal(name, attributes)


class AuthMiddleware:
    """`Authorization: Bearer <token>` on every route but the public ones: an API key (compared by its
    SHA-256 digest, so only digests are held) or, when OIDC is configured, a JWT. The principal is set for
    the request (`current_principal`) and named in the access log; anything else is a 401 in OpenAI's
    error body."""

    def __init__(self, app: ASGIApp, keys: dict[bytes, Principal], public: frozenset[str],
                 verifier: JwtVerifier | None = None, stored: StoredKeys | None = None) -> None:
        self.app = app
        self.keys = keys
        self.public = public
        self.verifier = verifier
        self.stored = stored

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, token = header.partition(b" ")
        token = token.strip()
        try:
            principal = await self._principal(scheme, token, header)
        except StackkitError as exc:
            await _error(send, exc)
            return
        scope["stackkit.principal"] = principal.name
        reset = current_principal.set(principal)
        try:
            await self.app(scope, receive, send)
        finally:
            current_principal.reset(reset)

    async def _principal(self, scheme: bytes, token: bytes, header: bytes) -> Principal:
        if not header:
            raise AuthenticationError("No API key was sent; send it as `Authorization: Bearer <key>` (api_key= in "
                                      "the openai SDK).", code="invalid_api_key")
        if scheme.lower() == b"bearer":
            digest = hashlib.sha256(token).digest()
            principal = self.keys.get(digest)
            if principal is None and self.stored is not None and token.startswith(b"sk-stackkit-"):
                principal = await self.stored.principal(digest)
            if principal is not None:
                return principal
            if self.verifier is not None and token.count(b".") == 2:
                return await self.verifier.principal(token.decode("ascii", "replace"))
        raise AuthenticationError("The API key is not valid; check it, or ask for one that is in "
                                  "server.auth.api_keys.", code="invalid_api_key")


async def _error(send: Send, exc: StackkitError) -> None:
    body = orjson.dumps(exc.to_openai_body())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if exc.status_code == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
