"""Models: the registry of models the stack serves (OpenAI's /v1/models, plus registration)."""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from stackkit.apis.datatypes import DeleteResponse, EmptyRequest, ModelType, route


class Model(BaseModel):
    """A model as OpenAI lists it, plus where stackkit routes it."""

    model_config = ConfigDict(protected_namespaces=())

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str
    provider_id: str
    provider_model_id: str
    model_type: ModelType = ModelType.llm
    metadata: dict[str, Any] = Field(default_factory=dict)
    guardrails: list[str] = Field(default_factory=list)


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class GetModelRequest(BaseModel):
    model_id: str


class RegisterModelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_id: str = Field(min_length=1)
    provider_id: str | None = None
    provider_model_id: str | None = None
    model_type: ModelType = ModelType.llm
    metadata: dict[str, Any] = Field(default_factory=dict)
    guardrails: list[str] = Field(default_factory=list, description="shields for every request to this upstream "
                                  "model; they add to any the model already has and cannot be removed by requests")


@runtime_checkable
class Models(Protocol):
    @route("GET", "/v1/models", sdk="models.list")
    async def list_models(self, request: EmptyRequest) -> ModelList:
        """List the models this stack serves."""
        ...

    @route("GET", "/v1/models/{model_id:path}", sdk="models.retrieve")
    async def get_model(self, request: GetModelRequest) -> Model:
        """Get one model by id."""
        ...

    @route("POST", "/v1/models", sdk="models.register")
    async def register_model(self, request: RegisterModelRequest) -> Model:
        """Register a model with a provider; it survives restarts."""
        ...

    @route("DELETE", "/v1/models/{model_id:path}", sdk="models.delete")
    async def unregister_model(self, request: GetModelRequest) -> DeleteResponse:
        """Remove a registered model."""
        ...
