"""The Arena API over the stack's KV store: votes kept in order of arrival, the leaderboard computed from
them (Elo, K=32, in vote order: a winner beats each other model; a tie or "all bad" draws every pair)."""

from __future__ import annotations

import itertools
import time
import uuid

from stackkit.apis.arena import CreateVoteRequest, Leaderboard, ListVotesRequest, Standing, Vote, VoteList
from stackkit.apis.datatypes import EmptyRequest, ModelType
from stackkit.apis.models import GetModelRequest, Models
from stackkit.core.request_context import current_principal
from stackkit.core.storage import KVStore
from stackkit.errors import InvalidRequestError

_PREFIX = "arena:vote:"
_K = 32.0


class ArenaService:
    """Stores playground votes and ranks the models they compare."""

    def __init__(self, kvstore: KVStore, models: Models) -> None:
        self.kv = kvstore
        self.models = models

    async def create_vote(self, request: CreateVoteRequest) -> Vote:
        for model_id in request.models:  # an unknown model is a 404 that names it
            model = await self.models.get_model(GetModelRequest(model_id=model_id))
            if model.model_type is not ModelType.llm:
                raise InvalidRequestError(f"'{model_id}' is an {model.model_type.value} model; votes compare chat "
                                          "models: pick chat models (GET /v1/models, model_type llm).", param="models")
        now = time.time_ns()
        principal = current_principal.get()
        vote = Vote(id=f"vote_{now:020d}{uuid.uuid4().hex[:8]}", created_at=now // 10**9, models=request.models,
                    winner=request.winner, prompt=request.prompt, principal=principal.name if principal else None)
        await self.kv.set(_PREFIX + vote.id, vote.model_dump_json())
        return vote

    async def _votes(self) -> list[Vote]:
        return [Vote.model_validate_json(v) for _, v in await self.kv.range(_PREFIX)]

    async def list_votes(self, request: ListVotesRequest) -> VoteList:
        votes = (await self._votes())[::-1]
        if request.after is not None:
            votes = [v for v in votes if v.id < request.after]
        page = votes[:request.limit]
        return VoteList(data=page, has_more=len(votes) > len(page), last_id=page[-1].id if page else None)

    async def leaderboard(self, request: EmptyRequest) -> Leaderboard:
        table: dict[str, Standing] = {}
        for vote in await self._votes():
            for model in vote.models:
                standing = table.setdefault(model, Standing(model=model, rating=1000.0, votes=0, wins=0,
                                                            losses=0, ties=0))
                standing.votes += 1
                if vote.winner == model:
                    standing.wins += 1
                elif vote.winner in vote.models:
                    standing.losses += 1
                else:
                    standing.ties += 1
            for a, b in itertools.combinations(vote.models, 2):
                if vote.winner in vote.models and vote.winner not in (a, b):
                    continue  # two losers of one vote: no game between them
                _play(table[a], table[b], float(vote.winner == a) if vote.winner in (a, b) else 0.5)
        ranked = sorted(table.values(), key=lambda s: (-s.rating, s.model))
        for s in ranked:
            s.rating = round(s.rating, 1)
        return Leaderboard(data=ranked)


def _play(a: Standing, b: Standing, score_a: float) -> None:
    expected_a = 1 / (1 + 10 ** ((b.rating - a.rating) / 400))
    a.rating += _K * (score_a - expected_a)
    b.rating -= _K * (score_a - expected_a)
