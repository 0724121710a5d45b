"""stackkit: build AI applications on any model provider.

``import stackkit`` is cheap: the clients are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["AsyncLibraryClient", "LibraryClient", "__version__"]

if TYPE_CHECKING:
    from stackkit.core.library_client import AsyncLibraryClient, LibraryClient


def __getattr__(name: str) -> Any:
    if name in ("LibraryClient", "AsyncLibraryClient"):
        from stackkit.core import library_client

        return getattr(library_client, name)
    raise AttributeError(f"module 'stackkit' has no attribute {name!r}")
