from __future__ import annotations

from typing import Any

from stackkit.apis.datatypes import Api
from tests.providers.third_party import SlowLister


async def create(config: Any, deps: dict[Api, Any]) -> SlowLister:
    return SlowLister(config)
