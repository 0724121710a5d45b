"""Arena: votes between models that answered the same prompt side by side (the playground's Compare view),
and the leaderboard they add up to (Elo ratings, as FastChat's arena)."""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stackkit.apis.datatypes import EmptyRequest, route


class CreateVoteRequest(BaseModel):
    """One verdict: which of the models gave the best answer to `prompt` (or a tie, or all bad)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    models: list[str] = Field(min_length=2, max_length=8, description="the models compared, as listed")
    winner: str = Field(description='one of `models`, or "tie", or "all_bad"')
    prompt: str = Field(default="", max_length=32_768)

    @model_validator(mode="after")
    def _winner_is_one_of_the_models(self) -> CreateVoteRequest:
        if len(set(self.models)) != len(self.models):
            raise ValueError("models must be different models; each model once")
        if self.winner not in (*self.models, "tie", "all_bad"):
            raise ValueError('winner must be one of models, "tie" or "all_bad"')
        return self


class Vote(BaseModel):
    """A stored vote."""

    model_config = ConfigDict(protected_namespaces=())

    id: str
    object: Literal["arena.vote"] = "arena.vote"
    created_at: int
    models: list[str]
    winner: str
    prompt: str = ""
    principal: str | None = None


class ListVotesRequest(BaseModel):
    limit: int = Field(default=20, ge=1, le=100)
    after: str | None = None


class VoteList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Vote]
    has_more: bool = False
    last_id: str | None = None


class Standing(BaseModel):
    """A model's place on the leaderboard."""

    model: str
    rating: float
    votes: int
    wins: int
    losses: int
    ties: int


class Leaderboard(BaseModel):
    object: Literal["list"] = "list"
    data: list[Standing]


@runtime_checkable
class Arena(Protocol):
    @route("POST", "/v1/arena/votes", sdk="arena.votes.create")
    async def create_vote(self, request: CreateVoteRequest) -> Vote:
        """Store a vote between models that answered one prompt."""
        ...

    @route("GET", "/v1/arena/votes", sdk="arena.votes.list")
    async def list_votes(self, request: ListVotesRequest) -> VoteList:
        """Votes, newest first."""
        ...

    @route("GET", "/v1/arena/leaderboard", sdk="arena.leaderboard")
    async def leaderboard(self, request: EmptyRequest) -> Leaderboard:
        """Every voted model with its Elo rating and record, best first."""
        ...
