"""Secrets never shown: provider configs as ``GET /v1/providers`` and ``stackkit config show`` print them,
and URLs in error messages. A value is a secret when its type says so (``SecretStr``) or its field name
is a secret's (``api_key``, ``token``, ``password``, ...: whole words, so ``max_tokens`` is shown);
credentials inside URLs (``https://user:pass@host``) are masked wherever a URL is shown."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, SecretStr

MASK = "********"
_SECRET_WORDS = {"key", "apikey", "secret", "token", "password", "passwd", "credential", "credentials", "auth",
                 "authorization", "bearer", "cookie"}
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def is_secret_name(name: str) -> bool:
    words = re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower())
    return any(w in _SECRET_WORDS for w in words)


def redact_url(text: str) -> str:
    """`text` with the credentials of any URL in it masked."""
    return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)


def redact_value(name: str, value: Any) -> Any:
    if isinstance(value, SecretStr) or (is_secret_name(name) and value not in (None, "", [], {})):
        return MASK
    if isinstance(value, BaseModel):
        return redact_config(value)
    if isinstance(value, dict):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(name, v) for v in value]
    if isinstance(value, str):
        return redact_url(value)
    return value


def redact_config(config: BaseModel) -> dict[str, Any]:
    """A config as a dict with every secret replaced by ``********``."""
    return {name: redact_value(name, value) for name, value in config}
