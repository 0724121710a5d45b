"""stackkit: build AI applications on any model provider.

``import stackkit`` is cheap: the clients are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Agent", "AsyncLibraryClient", "LibraryClient", "Principal", "RemoteClient", "StackApp", "__version__"]

if TYPE_CHECKING:
    from stackkit.agent import Agent
    from stackkit.core.http_client import RemoteClient
    from stackkit.core.library_client import AsyncLibraryClient, LibraryClient
    from stackkit.core.request_context import Principal
    from stackkit.core.server import StackApp

_LAZY = {"Agent": "stackkit.agent", "LibraryClient": "stackkit.core.library_client",
         "AsyncLibraryClient": "stackkit.core.library_client",
         "RemoteClient": "stackkit.core.http_client", "StackApp": "stackkit.core.server",
         "Principal": "stackkit.core.request_context"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stackkit' has no attribute {name!r}")
