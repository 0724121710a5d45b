"""What inline::llama-cpp does with number bounds its grammar converter ignores: a bounded integer or number
becomes the list of integers it allows (enforceable), and bounds it cannot list are a 400, never ignored."""

from __future__ import annotations

import pytest

from stackkit.errors import InvalidRequestError
from stackkit.providers.inline.llama_cpp import MAX_ENUMERATED, bounded


def test_bounded_numbers_become_the_integers_they_allow() -> None:
    schema = {"type": "object", "properties": {
        "stars": {"type": "integer", "minimum": 1, "maximum": 5, "description": "kept"},
        "celsius": {"type": "number", "minimum": -2.5, "exclusiveMaximum": 3},
        "free": {"type": "integer"},
        "rows": {"type": "array", "items": {"type": "integer", "exclusiveMinimum": 0, "maximum": 2}}}}
    out = bounded(schema, "response_format")
    props = out["properties"]
    assert props["stars"] == {"enum": [1, 2, 3, 4, 5], "description": "kept"}
    assert props["celsius"] == {"enum": [-2, -1, 0, 1, 2]}
    assert props["free"] == {"type": "integer"} and props["rows"]["items"] == {"enum": [1, 2]}


@pytest.mark.parametrize("number", [
    {"type": "integer", "minimum": 0},  # one-sided
    {"type": "number", "minimum": 0, "maximum": MAX_ENUMERATED * 2},  # too many to list
    {"type": "integer", "minimum": 5, "maximum": 1},  # empty
])
def test_bounds_that_cannot_be_listed_are_refused(number: dict[str, object]) -> None:
    with pytest.raises(InvalidRequestError, match="inline::transformers"):
        bounded({"type": "object", "properties": {"n": number}}, "response_format")
