"""OpenAI vector-store attribute filters: comparison (eq, ne, gt, gte, lt, lte, in, nin) and compound (and, or)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stackkit.errors import InvalidRequestError

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a is not None and a > b,
    "gte": lambda a, b: a is not None and a >= b,
    "lt": lambda a, b: a is not None and a < b,
    "lte": lambda a, b: a is not None and a <= b,
    "in": lambda a, b: a in b,
    "nin": lambda a, b: a not in b,
}


def matches(attributes: dict[str, Any], flt: dict[str, Any] | None) -> bool:
    """Whether `attributes` satisfy the filter `flt` (None matches everything)."""
    if not flt:
        return True
    kind = flt.get("type")
    if kind in ("and", "or"):
        parts = flt.get("filters")
        if not isinstance(parts, list):
            raise InvalidRequestError(f"a '{kind}' filter needs a list under 'filters'", param="filters")
        results = (matches(attributes, f) for f in parts)
        return all(results) if kind == "and" else any(results)
    compare = _COMPARE.get(str(kind))
    if compare is None or "key" not in flt:
        raise InvalidRequestError(
            f"unknown filter {flt!r}: use {{'type': one of {sorted(_COMPARE)} or and/or, 'key', 'value'}}",
            param="filters",
        )
    try:
        return bool(compare(attributes.get(flt["key"]), flt.get("value")))
    except TypeError:
        return False
