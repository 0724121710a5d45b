"""The Arena API (votes from the playground's Compare view): stored votes, validation that says how to fix a
bad vote, the Elo leaderboard, votes surviving a restart, through LibraryClient and over HTTP."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest

from stackkit import LibraryClient
from stackkit.core.config import RunConfig, parse_config
from stackkit.errors import InvalidRequestError, NotFoundError
from stackkit.testing.live_server import LiveServer

CONFIG = """
providers:
  inference:
    - {{provider_id: fake, provider_type: inline::fake}}
registered_resources:
  models:
    - {{model_id: a, provider_id: fake, provider_model_id: fake-llm}}
    - {{model_id: b, provider_id: fake, provider_model_id: fake-b}}
    - {{model_id: c, provider_id: fake, provider_model_id: fake-c}}
    - {{model_id: embedder, provider_id: fake, provider_model_id: fake-embed, model_type: embedding}}
storage: {{backends: {{kv: {{type: sqlite, db_path: "{root}/kv.db"}}}}, stores: {{registry: kv}}}}
"""


def _config(root: Path) -> RunConfig:
    return parse_config(textwrap.dedent(CONFIG.format(root=root)), source=str(root / "run.yaml"), env={})


def test_votes_make_a_leaderboard_that_survives_a_restart(tmp_path: Path) -> None:
    with LibraryClient(_config(tmp_path)) as client:
        for _ in range(3):
            client.arena.votes.create(models=["a", "b"], winner="a", prompt="which is better?")
        client.arena.votes.create(models=["b", "c"], winner="tie")
        client.arena.votes.create(models=["a", "b", "c"], winner="all_bad")
        newest = client.arena.votes.list(limit=2)
        assert [v.winner for v in newest.data] == ["all_bad", "tie"] and newest.has_more
        older = client.arena.votes.list(limit=10, after=newest.last_id)
        assert [v.winner for v in older.data] == ["a", "a", "a"] and not older.has_more
    with LibraryClient(_config(tmp_path)) as client:
        board = {s.model: s for s in client.arena.leaderboard().data}
    assert [s for s in board] == ["a", "c", "b"]  # best first
    assert (board["a"].wins, board["a"].losses, board["a"].ties, board["a"].votes) == (3, 0, 1, 4)
    assert (board["b"].wins, board["b"].losses, board["b"].ties) == (0, 3, 2)
    assert board["a"].rating > 1000 > board["b"].rating
    assert abs(sum(s.rating for s in board.values()) - 3000) < 0.2  # Elo moves points, never makes them (+ rounding)


@pytest.mark.parametrize(("vote", "error", "says"), [
    ({"models": ["a", "b"], "winner": "c"}, InvalidRequestError, 'one of models, "tie" or "all_bad"'),
    ({"models": ["a", "a"], "winner": "a"}, InvalidRequestError, "each model once"),
    ({"models": ["a"], "winner": "a"}, InvalidRequestError, "at least 2"),
    ({"models": ["a", "nope"], "winner": "a"}, NotFoundError, "Model 'nope' not found"),
    ({"models": ["a", "embedder"], "winner": "a"}, InvalidRequestError, "votes compare chat models"),
])
def test_bad_votes_say_what_is_wrong(tmp_path: Path, vote: dict[str, object], error: type, says: str) -> None:
    with LibraryClient(_config(tmp_path)) as client:
        with pytest.raises(error, match=says):
            client.arena.votes.create(**vote)
        assert client.arena.votes.list().data == []


def test_over_http_with_openai_error_bodies(tmp_path: Path) -> None:
    with LiveServer(_config(tmp_path)) as server:
        made = httpx.post(server.base_url + "/arena/votes", json={"models": ["a", "b"], "winner": "b"})
        assert made.status_code == 200 and made.json()["object"] == "arena.vote"
        bad = httpx.post(server.base_url + "/arena/votes", json={"models": ["a", "b"], "winner": "b", "x": 1})
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
        board = httpx.get(server.base_url + "/arena/leaderboard").json()
        assert [s["model"] for s in board["data"]] == ["b", "a"]
