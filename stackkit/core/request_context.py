"""Per-request data that travels from the transport to providers: the X-Stackkit-Provider-Data header, and
the principal an API key authenticated."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import orjson

from stackkit.errors import InvalidRequestError

PROVIDER_DATA_HEADER = "x-stackkit-provider-data"
provider_data: ContextVar[dict[str, Any] | None] = ContextVar("stackkit_provider_data", default=None)


@dataclass(frozen=True)
class Principal:
    """Who is calling (an API key's principal) and their attributes (team, roles, ...)."""

    name: str
    attributes: dict[str, Any] = field(default_factory=dict)


current_principal: ContextVar[Principal | None] = ContextVar("stackkit_principal", default=None)


def parse_provider_data(raw: str | bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"The X-Stackkit-Provider-Data header is not valid JSON ({exc}); send a JSON object such as "
            '{"openai_api_key": "sk-..."}.'
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequestError(
            'The X-Stackkit-Provider-Data header must be a JSON object; send e.g. {"openai_api_key": "sk-..."}.'
        )
    return data
