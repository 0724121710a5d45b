"""OAuth2/OIDC bearer JWTs (server.auth.oidc): a JWKS served by the test on 127.0.0.1 signs tokens; a good
token is a principal with its claims mapped to attributes (named in the access log, the token never);
expired, not-yet-valid, wrong-audience, wrong-issuer, unknown-key, tampered, unsigned, HS256-with-the-public-
key and wrong-principal tokens are 401s in OpenAI's error body; keys are cached, a rotated key is fetched
when a token names it, and an issuer that goes down does not lock out holders of good tokens. API keys work
beside tokens, and LibraryClient calls run as the principal it was given."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import openai
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from stackkit import LibraryClient, Principal
from stackkit.core.config import RunConfig, parse_config
from stackkit.testing.live_server import LiveServer
from tests.chroma_server import free_port

ISSUER = "https://issuer.test"
AUDIENCE = "stackkit"
HI: Any = [{"role": "user", "content": "hello there"}]


class Issuer:
    """A JWKS endpoint on 127.0.0.1 whose keys the test changes, counting how often it is fetched."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.published: list[str] = []
        self.fetches = 0
        self.up = True
        self.port = free_port()

        async def jwks(_: Request) -> JSONResponse:
            self.fetches += 1
            if not self.up:
                return JSONResponse({"error": "down"}, status_code=503)
            return JSONResponse({"keys": [self._jwk(kid) for kid in self.published]})

        app = Starlette(routes=[Route("/jwks.json", jwks)])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def _jwk(self, kid: str) -> dict[str, Any]:
        key = self.keys[kid]
        algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
        jwk = algorithm.to_jwk(key.public_key(), as_dict=True)
        return {**jwk, "kid": kid, "use": "sig"}

    def new_key(self, kid: str, kind: str = "rsa", publish: bool = True) -> None:
        self.keys[kid] = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "rsa"
                          else ec.generate_private_key(ec.SECP256R1()))
        if publish:
            self.published.append(kid)

    def token(self, kid: str = "k1", alg: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "ada", "iat": now, "exp": now + 300, "org": "red",
                "realm": {"roles": ["reader"]}, **claims}
        return jwt.encode({k: v for k, v in body.items() if v is not None}, self.keys[kid], algorithm=alg,
                          headers={"kid": kid})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks.json"

    def __enter__(self) -> Issuer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline, "the JWKS server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _config(tmp_path: Path, jwks_url: str, cache_s: float = 300) -> RunConfig:
    return parse_config(textwrap.dedent(f"""
        providers:
          inference: [{{provider_id: fake, provider_type: inline::fake}}]
        registered_resources:
          models: [{{model_id: echo, provider_id: fake, provider_model_id: fake-llm}}]
        storage: {{backends: {{kv: {{type: sqlite, db_path: "{tmp_path}/kv.db"}}}}, stores: {{registry: kv}}}}
        server:
          auth:
            api_keys: [{{principal: ci, key: sk-ci-key-0123456789abcdef}}]
            oidc:
              jwks_url: {jwks_url}
              issuer: {ISSUER}
              audience: {AUDIENCE}
              attributes: {{team: org, roles: realm.roles}}
              jwks_cache_s: {cache_s}
        """), env={})


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with Issuer() as running:
        running.new_key("k1")
        yield running


def _chat(server: LiveServer, token: str) -> Any:
    with openai.OpenAI(base_url=server.base_url, api_key=token, max_retries=0) as sdk:
        return sdk.chat.completions.create(model="echo", messages=HI)


def _tamper(token: str) -> str:
    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["sub"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


def test_good_tokens_and_api_keys_are_principals(issuer: Issuer, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    token = issuer.token()
    issuer.new_key("e1", kind="ec")
    with caplog.at_level(logging.INFO, logger="stackkit.access"), LiveServer(_config(tmp_path, issuer.url)) as server:
        assert _chat(server, token).choices[0].message.content == "hello there"
        assert _chat(server, "sk-ci-key-0123456789abcdef").choices[0].message.content == "hello there"
        assert _chat(server, issuer.token("e1", alg="ES256", sub="eve")).choices[0].message.content == "hello there"
        vote = httpx.post(server.base_url + "/arena/votes", headers={"authorization": f"Bearer {token}"},
                          json={"models": ["echo", "fake/fake-llm"], "winner": "tie"}).json()
        assert vote["principal"] == "ada"  # who the token says
    logged = [r.getMessage() for r in caplog.records]
    assert any('"principal":"ada"' in line for line in logged) and any('"principal":"ci"' in line for line in logged)
    assert any('"principal":"eve"' in line for line in logged)
    assert not any(token[:40] in line or token.split(".")[2][:20] in line for line in logged)


def test_bad_tokens_are_401s_that_say_why(issuer: Issuer, tmp_path: Path) -> None:
    issuer.new_key("stranger", publish=False)
    now = int(time.time())
    unsigned = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "ada", "exp": now + 300}, "", algorithm="none")
    cases = {
        "expired": (issuer.token(exp=now - 120), "expired"),
        "not yet valid": (issuer.token(nbf=now + 600), "not valid"),
        "wrong audience": (issuer.token(aud="someone-else"), "audience 'stackkit'"),
        "wrong issuer": (issuer.token(iss="https://evil.test"), "another issuer"),
        "no expiry": (issuer.token(exp=None), "not valid"),
        "unknown key": (issuer.token("stranger"), "key the issuer does not list"),
        "tampered": (_tamper(issuer.token()), "not valid"),
        "unsigned": (unsigned, "signed with 'none'"),
        "three dots of nothing": ("x.y.z", "neither a known API key nor a JWT"),
        "no principal": (issuer.token(sub=None), "not valid"),
        "garbage": ("not-a-key", "API key is not valid"),
    }
    with LiveServer(_config(tmp_path, issuer.url)) as server:
        for name, (token, says) in cases.items():
            reply = httpx.get(server.base_url + "/models", headers={"authorization": f"Bearer {token}"})
            assert reply.status_code == 401, name
            error = reply.json()["error"]
            assert error["type"] == "authentication_error" and says in error["message"], (name, error)
            assert token not in reply.text
        assert httpx.get(server.base_url + "/health").status_code == 200  # public


def test_hs256_signed_with_the_public_key_is_refused(issuer: Issuer, tmp_path: Path) -> None:
    """The classic algorithm-confusion attack: HMAC over the token with the RSA public key as the secret."""
    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "admin", "exp": now + 300}
    segments = [base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=") for part in (header, claims)]
    public_pem = issuer.keys["k1"].public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    import hashlib
    import hmac

    signature = hmac.new(public_pem, b".".join(segments), hashlib.sha256).digest()
    forged = b".".join([*segments, base64.urlsafe_b64encode(signature).rstrip(b"=")]).decode()
    with LiveServer(_config(tmp_path, issuer.url)) as server:
        reply = httpx.get(server.base_url + "/models", headers={"authorization": f"Bearer {forged}"})
    assert reply.status_code == 401 and "signed with 'HS256'" in reply.json()["error"]["message"]


def test_keys_are_cached_and_a_rotated_key_is_fetched_when_a_token_names_it(issuer: Issuer, tmp_path: Path) -> None:
    with LiveServer(_config(tmp_path, issuer.url)) as server:
        for _ in range(20):
            _chat(server, issuer.token())
        assert issuer.fetches == 1  # one fetch for twenty requests
        issuer.new_key("k2")  # rotation: a new key published, tokens signed with it
        with pytest.raises(openai.AuthenticationError):
            _chat(server, issuer.token("k2"))  # within 5 s of the last fetch: not fetched again (a flood of
        assert issuer.fetches == 1             # made-up key ids must not become a flood at the issuer)
        time.sleep(5.1)
        assert _chat(server, issuer.token("k2")).choices[0].message.content == "hello there"
        assert _chat(server, issuer.token("k1")).choices[0].message.content == "hello there"
        assert issuer.fetches == 2


def test_an_issuer_outage_does_not_lock_out_good_tokens(issuer: Issuer, tmp_path: Path) -> None:
    with LiveServer(_config(tmp_path, issuer.url, cache_s=0.5)) as server:
        _chat(server, issuer.token())
        issuer.up = False  # keys already fetched keep working past their cache time
        time.sleep(0.6)
        assert _chat(server, issuer.token()).choices[0].message.content == "hello there"
        assert issuer.fetches == 2  # it did try


def test_an_unreachable_issuer_is_a_503_that_names_the_setting(tmp_path: Path) -> None:
    with Issuer() as issuer:
        issuer.new_key("k1")
        token = issuer.token()
    with LiveServer(_config(tmp_path, issuer.url)) as server:  # the issuer is gone before the first request
        reply = httpx.get(server.base_url + "/models", headers={"authorization": f"Bearer {token}"})
    assert reply.status_code == 503 and "server.auth.oidc.jwks_url" in reply.json()["error"]["message"]


def test_library_client_runs_as_its_principal(tmp_path: Path) -> None:
    config = parse_config(textwrap.dedent(f"""
        providers:
          inference: [{{provider_id: fake, provider_type: inline::fake}}]
        registered_resources:
          models: [{{model_id: a, provider_id: fake, provider_model_id: fake-llm}},
                   {{model_id: b, provider_id: fake, provider_model_id: fake-b}}]
        storage: {{backends: {{kv: {{type: sqlite, db_path: "{tmp_path}/kv.db"}}}}, stores: {{registry: kv}}}}
        """), env={})
    with LibraryClient(config, principal=Principal("grace", {"team": "blue"})) as client:
        assert client.arena.votes.create(models=["a", "b"], winner="a").principal == "grace"
    with LibraryClient(config) as client:
        assert client.arena.votes.create(models=["a", "b"], winner="b").principal is None
