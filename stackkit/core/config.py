"""run.yaml: the models, ``${env.VAR}`` substitution, and errors that name file, line and field.

Env substitution forms (anywhere in a string value):

* ``${env.VAR}``            the value of VAR; an error if VAR is unset
* ``${env.VAR:=default}``   VAR if set and non-empty, else ``default``
* ``${env.VAR:+value}``     ``value`` if VAR is set and non-empty, else empty

A provider whose ``provider_id`` resolves to empty is disabled: that is how
distributions turn providers on by environment.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from stackkit.apis.datatypes import Api, ModelTarget, ModelType
from stackkit.errors import ConfigError

DISTRIBUTIONS_DIR = Path(__file__).resolve().parent.parent / "distributions"
_ENV = re.compile(r"\$\{env\.(\w+)(?:(:=|:\+)([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ProviderConfig(_Strict):
    provider_id: str
    provider_type: str | list[str] | None = Field(
        default=None, description="e.g. remote::openai; a list names alternatives: the first whose pip packages are "
        "installed is used (the last when none is)")
    module: str | None = Field(default=None, description="third-party provider module exposing `provider_spec`")
    config: dict[str, Any] = Field(default_factory=dict)


class StorageBackend(_Strict):
    """Where a store lives: a sqlite file (the default), memory, or a server replicas share."""

    type: Literal["sqlite", "memory", "postgres", "redis"] = Field(description="sqlite, memory, postgres or redis")
    db_path: str | None = Field(default=None, description="sqlite: the file")
    url: str | None = Field(default=None, description="postgres: postgresql://user:pass@host:5432/db; "
                            "redis: redis://host:6379/0 (KV stores only)")


class StorageConfig(_Strict):
    backends: dict[str, StorageBackend] = Field(default_factory=dict)
    stores: dict[str, str] = Field(default_factory=dict, description="store name -> backend name")


class ModelInput(_Strict):
    model_id: str
    provider_id: str | None = None
    provider_model_id: str | None = None
    model_type: ModelType = ModelType.llm
    metadata: dict[str, Any] = Field(default_factory=dict)
    guardrails: list[str] = Field(default_factory=list, description="shields run around every chat completion")
    targets: list[ModelTarget] = Field(default_factory=list, description="several providers serving this model: "
                                       "balanced by least in-flight (weighted), failed over on errors")
    response_cache: bool = Field(default=False, description="answer repeated identical requests at temperature 0 "
                                 "from the response cache (needs response_cache: in run.yaml)")

    @model_validator(mode="after")
    def _targets_or_provider(self) -> ModelInput:
        if self.targets and (self.provider_id is not None or self.provider_model_id is not None):
            raise ValueError("give either targets or provider_id/provider_model_id, not both")
        if len(self.targets) == 1:
            raise ValueError("targets is for two or more providers; name one with provider_id")
        return self


class ShieldInput(_Strict):
    shield_id: str
    provider_id: str | None = None
    provider_shield_id: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class VectorStoreInput(_Strict):
    vector_store_id: str
    provider_id: str | None = None
    embedding_model: str | None = None
    embedding_dimension: int | None = None


class ToolGroupInput(_Strict):
    """An MCP server (streamable HTTP) users can name as a tool group, its credentials kept here."""

    toolgroup_id: str
    mcp_endpoint: str = Field(pattern=r"^https?://", description="the server's streamable-HTTP URL")
    headers: dict[str, str] = Field(default_factory=dict)
    authorization: str | None = Field(default=None, description="sent as a Bearer token; never shown")
    allowed_tools: list[str] | None = None
    require_approval: Literal["always", "never"] | None = Field(
        default=None, description="the default for Responses that name this group (unset: always, as OpenAI)")


class RegisteredResources(_Strict):
    """Resources declared in run.yaml; one whose id resolves empty is skipped, like a disabled provider."""

    models: list[ModelInput] = Field(default_factory=list)
    shields: list[ShieldInput] = Field(default_factory=list)
    vector_stores: list[VectorStoreInput] = Field(default_factory=list)
    tool_groups: list[ToolGroupInput] = Field(default_factory=list)

    @field_validator("models", "shields", "vector_stores", "tool_groups")
    @classmethod
    def _drop_disabled(cls, items: list[Any]) -> list[Any]:
        return [i for i in items if getattr(i, "model_id", None) or getattr(i, "shield_id", None)
                or getattr(i, "vector_store_id", None) or getattr(i, "toolgroup_id", None)]


class CorsConfig(_Strict):
    allow_origins: list[str] = Field(default_factory=list)
    allow_methods: list[str] = Field(default_factory=lambda: ["*"])
    allow_headers: list[str] = Field(default_factory=lambda: ["*"])
    allow_credentials: bool = False


class LimitsConfig(_Strict):
    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1)


class ApiKeyInput(_Strict):
    """One API key and the principal it stands for: the key itself (from an env var, kept only as its hash)
    or its SHA-256 in hex (`printf %s "$KEY" | sha256sum`), so run.yaml need not hold the secret."""

    principal: str = Field(min_length=1)
    key: SecretStr | None = None
    key_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    attributes: dict[str, Any] = Field(default_factory=dict, description="e.g. team, roles")

    @model_validator(mode="after")
    def _one_key(self) -> ApiKeyInput:
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError("give exactly one of key and key_sha256")
        if self.key is not None and len(self.key.get_secret_value()) < 16:
            raise ValueError("key is shorter than 16 characters; use a long random key")
        return self

    def digest(self) -> bytes:
        if self.key is not None:
            return hashlib.sha256(self.key.get_secret_value().encode()).digest()
        assert self.key_sha256 is not None
        return bytes.fromhex(self.key_sha256)


class OidcConfig(_Strict):
    """OAuth2/OIDC bearer tokens: JWTs signed by a key of the issuer's JWKS, for this audience, unexpired."""

    jwks_url: str = Field(pattern=r"^https?://", description="the issuer's JSON Web Key Set")
    issuer: str = Field(min_length=1, description="the `iss` every token must carry")
    audience: str = Field(min_length=1, description="the `aud` every token must carry (this server)")
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    principal_claim: str = Field(default="sub", description="the claim that names the caller")
    attributes: dict[str, str] = Field(default_factory=dict, description="principal attribute -> claim (a dotted "
                                       "path such as realm_access.roles), e.g. {team: org, roles: roles}")
    jwks_cache_s: float = Field(default=300.0, gt=0, description="how long fetched keys are trusted")
    leeway_s: float = Field(default=30.0, ge=0, description="clock skew allowed on exp and nbf")

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, algorithms: list[str]) -> list[str]:
        symmetric = [a for a in algorithms if not a.startswith(("RS", "ES", "PS", "Ed"))]
        if symmetric:
            raise ValueError(f"{', '.join(symmetric)}: only public-key algorithms (RS*, ES*, PS*, EdDSA) verify "
                             "against a JWKS")
        return algorithms


class AuthConfig(_Strict):
    """Who may call the server: every route but /v1/health needs `Authorization: Bearer <token>`, an API key
    from `api_keys` or a JWT from the `oidc` issuer."""

    api_keys: list[ApiKeyInput] = Field(default_factory=list)
    oidc: OidcConfig | None = None
    stored_keys: bool = Field(default=False, description="also accept keys made with `stackkit keys create`, "
                              "kept (hashed) in the registry store: shared by replicas on PostgreSQL or Redis")

    @model_validator(mode="after")
    def _some_way_in(self) -> AuthConfig:
        if not self.api_keys and self.oidc is None and not self.stored_keys:
            raise ValueError("give api_keys, oidc or stored_keys: true; with none nobody could call the server")
        return self


class QuotaRule(_Strict):
    """A limit on what matching requests may use. Counters are kept per principal (``principal: "*"`` gives
    each principal its own) and per model, or for all models together (``model: "*"``)."""

    principal: str = Field(default="*", description='a principal\'s name, or "*" for each principal')
    model: str = Field(default="*", description='a model id as clients name it, or "*" for all together')
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0, description="prompt + completion tokens")
    concurrent_requests: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _limits_something(self) -> QuotaRule:
        if self.requests_per_minute is None and self.tokens_per_minute is None and self.concurrent_requests is None:
            raise ValueError("set requests_per_minute, tokens_per_minute or concurrent_requests")
        return self


class QuotaConfig(_Strict):
    """Rate limits and quotas on model calls: a request over any matching rule is a 429 with Retry-After."""

    rules: list[QuotaRule] = Field(min_length=1)
    redis_url: str | None = Field(default=None, pattern=r"^rediss?://", description="share the counters among "
                                  "replicas through Redis (atomic); in this process's memory when unset")


Action = Literal["create", "read", "update", "delete"]
_CONDITION = re.compile(r"^(user is owner|user is not owner|resource is unowned|user (not )?in owners \w+)$")


class AccessScope(_Strict):
    """Which requests a rule is about: by principal, action and resource (``kind::id``, with * globs, e.g.
    ``vector_store::*``; kinds: model, shield, vector_store, file, response, conversation, chat_completion)."""

    principal: str | None = None
    actions: list[Action] | None = None
    resource: str | None = None


class AccessRule(_Strict):
    """permit or forbid a scope, when every condition holds; the first rule that matches decides."""

    permit: AccessScope | None = None
    forbid: AccessScope | None = None
    when: list[str] = Field(default_factory=list, description="user is owner, user is not owner, resource is "
                            "unowned, user in owners <attribute>, user not in owners <attribute>")
    description: str = ""

    @model_validator(mode="after")
    def _one_effect(self) -> AccessRule:
        if (self.permit is None) == (self.forbid is None):
            raise ValueError("give exactly one of permit and forbid")
        for condition in self.when:
            if not _CONDITION.match(condition):
                raise ValueError(f"unknown condition {condition!r}: use user is owner, user is not owner, resource "
                                 "is unowned, user in owners <attribute> or user not in owners <attribute>")
        return self


class ResponseCacheConfig(_Strict):
    """Exact-match answers for repeated chat completions: for models with response_cache: true, or requests
    that ask (``cache: true``); never for temperature > 0 unless the request asks."""

    redis_url: str | None = Field(default=None, pattern=r"^rediss?://", description="shared by replicas; in "
                                  "this process's memory when unset")
    ttl_s: float = Field(default=3600.0, gt=0)
    max_entries: int = Field(default=10_000, ge=1, description="memory backend: least recently used go first")


class TelemetryConfig(_Strict):
    """Traces (OpenTelemetry) and metrics (Prometheus, at /metrics). Nothing is loaded or measured without it."""

    service_name: str = "stackkit"
    traces: Literal["none", "otlp", "console"] = Field(default="none", description="otlp: OTLP/HTTP to "
                                                        "otlp_endpoint; console: spans printed, for development")
    otlp_endpoint: str = Field(default="http://127.0.0.1:4318/v1/traces", pattern=r"^https?://")
    traces_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0, description="the share of requests "
                                       "traced, decided before any span is made (a caller's traceparent is followed)")
    metrics: bool = Field(default=True, description="serve Prometheus metrics at /metrics")


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8321, ge=0, le=65535)
    cors: CorsConfig | None = None
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    access_log: bool = True
    auth: AuthConfig | None = None
    playground: bool = Field(default=True, description="serve the browser playground at /playground")


class RunConfig(_Strict):
    version: int = 2
    distro_name: str = "custom"
    apis: list[Api] = Field(default_factory=list)
    providers: dict[Api, list[ProviderConfig]] = Field(default_factory=dict)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    registered_resources: RegisteredResources = Field(default_factory=RegisteredResources)
    server: ServerConfig = Field(default_factory=ServerConfig)
    quotas: QuotaConfig | None = None
    telemetry: TelemetryConfig | None = None
    response_cache: ResponseCacheConfig | None = None
    access_policy: list[AccessRule] = Field(default_factory=list, description="who may read, change and delete "
                                            "which resources; with server.auth and no rules, each principal reaches "
                                            "what it or its team owns, and what nobody owns")
    safety: dict[str, Any] = Field(default_factory=dict)
    model_refresh_timeout: float = Field(default=5.0, gt=0)

    # where the config came from, for error messages (not part of the file)
    source: str | None = Field(default=None, exclude=True)
    lines: dict[tuple[str | int, ...], int] = Field(default_factory=dict, exclude=True)
    disabled_hints: list[str] = Field(default_factory=list, exclude=True)

    @field_validator("providers")
    @classmethod
    def _drop_disabled(cls, providers: dict[Api, list[ProviderConfig]]) -> dict[Api, list[ProviderConfig]]:
        return {api: [p for p in ps if p.provider_id] for api, ps in providers.items()}

    def line_of(self, *path: str | int) -> int | None:
        """The YAML line of a field (or of its nearest parent that has one)."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    def error(self, message: str, *path: str | int) -> ConfigError:
        """A ConfigError pointing at `path` in this config's file."""
        field = _dotted(path) if path else None
        return ConfigError(message, file=self.source, line=self.line_of(*path), field=field)


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# ---- YAML with line numbers -----------------------------------------------------------------


def _line_map(node: yaml.Node, path: tuple[str | int, ...], out: dict[tuple[str | int, ...], int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, key.value)
            _line_map(value, sub, out)
            out[sub] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, (*path, i), out)


def substitute_env(value: Any, env: Mapping[str, str], path: tuple[str | int, ...] = ()) -> Any:
    """Replace ``${env.…}`` in every string of `value`; raises KeyError(path, var) when unset."""
    if isinstance(value, dict):
        return {k: substitute_env(v, env, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, env, (*path, i)) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        current = env.get(name)
        if op == ":=":
            return current if current else arg
        if op == ":+":
            return arg if current else ""
        if current is None:
            raise _UnsetEnv(path, name)
        return current

    return _ENV.sub(one, value)  # pydantic reads "8321" as an int where an int is wanted


class _UnsetEnv(Exception):
    def __init__(self, path: tuple[str | int, ...], name: str) -> None:
        self.path, self.name = path, name


# ---- loading --------------------------------------------------------------------------------


def resolve_config_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A distribution name (``starter``) or a path to a run.yaml."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"No such config file: {path}. Pass a run.yaml path or a distribution name.")
        return path
    template = DISTRIBUTIONS_DIR / f"{text}.yaml"
    if not template.is_file():
        known = ", ".join(sorted(list_distributions())) or "none"
        raise ConfigError(
            f"Unknown distribution '{text}'. Known distributions: {known}; or pass a path to a run.yaml."
        )
    return template


def list_distributions() -> dict[str, Path]:
    return {p.stem: p for p in sorted(DISTRIBUTIONS_DIR.glob("*.yaml"))}


def load_config(
    name_or_path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> RunConfig:
    """Read, substitute and validate a run.yaml or a distribution."""
    path = resolve_config_path(name_or_path)
    return parse_config(path.read_text(), source=str(path), env=env)


def parse_config(text: str, *, source: str = "<string>", env: Mapping[str, str] | None = None) -> RunConfig:
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise ConfigError(
            f"not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax", file=source, line=line
        ) from None
    lines: dict[tuple[str | int, ...], int] = {}
    if node is not None:
        _line_map(node, (), lines)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("a run config must be a YAML mapping (version, apis, providers, ...)", file=source, line=1)
    try:
        data = substitute_env(raw, os.environ if env is None else env)
    except _UnsetEnv as unset:
        raise ConfigError(
            f"environment variable {unset.name} is not set. Set it (export {unset.name}=...), "
            f"or give a default with ${{env.{unset.name}:=value}}",
            file=source,
            line=lines.get(unset.path),
            field=_dotted(unset.path),
        ) from None
    if not data.get("distro_name") and source != "<string>":
        # a run.yaml without a name keeps its state apart from every other such file
        resolved = str(Path(source).resolve())
        data["distro_name"] = f"{Path(source).stem}-{hashlib.sha1(resolved.encode()).hexdigest()[:8]}"
    config = validate_config(data, source=source, lines=lines)
    config.disabled_hints = _disabled_hints(raw, os.environ if env is None else env)
    return config


def _disabled_hints(raw: dict[str, Any], env: Mapping[str, str]) -> list[str]:
    """For each provider turned off by an unset env var: which variable turns it on."""
    hints = []
    providers = raw.get("providers") if isinstance(raw.get("providers"), dict) else {}
    for api, entries in (providers or {}).items():
        for entry in entries if isinstance(entries, list) else []:
            pid = entry.get("provider_id") if isinstance(entry, dict) else None
            m = _ENV.fullmatch(pid) if isinstance(pid, str) else None
            if m and m.group(2) == ":+" and not env.get(m.group(1)):
                hints.append(f"{entry.get('provider_type') or entry.get('module')} ({api}): set {m.group(1)} to enable")
    return hints


def validate_config(
    data: dict[str, Any], *, source: str = "<config>", lines: dict[tuple[str | int, ...], int] | None = None
) -> RunConfig:
    lines = lines or {}
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise _first_validation_error(exc, source, lines) from None
    config.source, config.lines = source, lines
    if not config.apis:
        config.apis = [api for api, ps in config.providers.items() if ps]
    return config


def _first_validation_error(
    exc: ValidationError, source: str, lines: dict[tuple[str | int, ...], int]
) -> ConfigError:
    err = exc.errors()[0]
    path = tuple(err["loc"])
    line = None
    probe = path
    while probe and line is None:
        line = lines.get(probe)
        probe = probe[:-1]
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        fix = f"remove '{path[-1]}' (not a known field here) or check its spelling"
    elif err["type"] == "missing":
        fix = f"add the required field '{path[-1]}'"
    else:
        fix = f"got {err.get('input')!r}; fix the value"
    count = exc.error_count()
    more = f" (and {count - 1} more error(s))" if count > 1 else ""
    return ConfigError(f"{msg}: {fix}{more}", file=source, line=line, field=_dotted(path))


def default_state_dir(distro_name: str) -> Path:
    """Where embedded stores live: ``$STACKKIT_HOME/<distro>`` (default ``~/.stackkit/<distro>``)."""
    home = os.environ.get("STACKKIT_HOME") or os.path.expanduser("~/.stackkit")
    return Path(home) / distro_name
