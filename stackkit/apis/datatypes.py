"""What every API shares: the Api enum, provider specs, route declarations, resources."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints


class Api(enum.StrEnum):
    inference = "inference"
    models = "models"
    safety = "safety"
    shields = "shields"
    vector_io = "vector_io"
    files = "files"
    agents = "agents"
    tool_runtime = "tool_runtime"
    inspect = "inspect"
    arena = "arena"
    stored_completions = "stored_completions"


# APIs whose requests are sent to the provider owning the named resource, and the
# routing-table API that keeps those resources.
ROUTED_APIS: dict[Api, str] = {
    Api.inference: "model",
    Api.safety: "shield",
    Api.vector_io: "vector_store",
}


@dataclass(frozen=True)
class ProviderSpec:
    """A provider, declared as plain data. Nothing here imports the provider's SDK."""

    api: Api
    provider_type: str
    module: str
    config_class: str
    pip_packages: tuple[str, ...] = ()
    api_dependencies: tuple[Api, ...] = ()
    optional_api_dependencies: tuple[Api, ...] = ()
    description: str = ""
    extra: str | None = None  # the pip extra that installs pip_packages


@dataclass(frozen=True)
class Route:
    """One operation of the HTTP surface and the Protocol method that serves it."""

    method: str
    path: str
    sdk: str  # the LibraryClient/openai-SDK name, e.g. "chat.completions.create"
    name: str = ""  # the Protocol method; filled in from the decorated function
    api: Api | None = None
    request_type: type[BaseModel] | None = None
    response_type: type[Any] | None = None
    stream_type: type[BaseModel] | None = None  # chunk type when the request asks to stream
    route_key: str | None = None  # the request field naming the resource that picks the provider
    body: str = "json"  # or "multipart" (file uploads)
    framing: str = "data"  # how a stream is framed: "data" (chat: data lines) or "event" (Responses: event + data)
    summary: str = ""
    path_params: tuple[str, ...] = field(default_factory=tuple)


F = TypeVar("F", bound=Callable[..., Any])


def route(
    method: str,
    path: str,
    *,
    sdk: str,
    stream: type[BaseModel] | None = None,
    key: str | None = None,
    body: str = "json",
    framing: str = "data",
) -> Callable[[F], F]:
    """Declare the HTTP route and SDK name of a Protocol method.

    The request and response types are read from the method's annotations when the
    route table is built, so they are written once, in the signature.
    """

    def mark(fn: F) -> F:
        fn.__stackkit_route__ = Route(  # type: ignore[attr-defined]
            method=method, path=path, sdk=sdk, stream_type=stream, route_key=key, body=body, framing=framing
        )
        return fn

    return mark


class Resource(BaseModel):
    """A named thing a provider owns; routers send requests naming it to that provider."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    identifier: str
    provider_id: str
    provider_resource_id: str


class ModelType(enum.StrEnum):
    llm = "llm"
    embedding = "embedding"


class ModelTarget(BaseModel):
    """One provider serving a model that has several (failover and balancing)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    provider_id: str
    provider_model_id: str
    weight: float = Field(default=1.0, gt=0, description="share of the load, relative to the other targets")


class ModelResource(Resource):
    type: Literal["model"] = "model"
    targets: list[ModelTarget] = Field(default_factory=list, description="when set, the providers serving "
                                       "this model, balanced and failed over (provider_id is the first's)")
    model_type: ModelType = ModelType.llm
    metadata: dict[str, Any] = Field(default_factory=dict)
    guardrails: list[str] = Field(default_factory=list, description="shields every request to this upstream "
                                  "model runs through (the operator's floor; requests may add, not remove)")
    source: Literal["registered", "listed"] = "registered"
    response_cache: bool = False


class ShieldResource(Resource):
    type: Literal["shield"] = "shield"
    params: dict[str, Any] = Field(default_factory=dict)


class VectorStoreResource(Resource):
    type: Literal["vector_store"] = "vector_store"
    embedding_model: str | None = None
    embedding_dimension: int | None = None


RESOURCE_CLASSES: dict[str, type[Resource]] = {
    "model": ModelResource,
    "shield": ShieldResource,
    "vector_store": VectorStoreResource,
}


class ProviderConfigBase(BaseModel):
    """Base of provider config classes: unknown fields are errors, so typos surface at start-up."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        """A config that works in a distribution (may use ${env.…})."""
        return {}


# OpenAI's metadata: up to 16 string pairs, keys up to 64 characters, values up to 512.
Metadata = Annotated[dict[Annotated[str, StringConstraints(max_length=64)],
                          Annotated[str, StringConstraints(max_length=512)]], Field(max_length=16)]


class EmptyRequest(BaseModel):
    """The request of an operation that takes no parameters."""

    model_config = ConfigDict(extra="forbid")


class DeleteResponse(BaseModel):
    id: str
    object: str
    deleted: bool = True
