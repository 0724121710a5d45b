"""`stackkit keys`: API keys kept (hashed) in a stack's registry store, for `server.auth.stored_keys: true`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from stackkit.errors import StackkitError

keys_app = typer.Typer(help="Create, list and revoke API keys kept in the stack's store (server.auth.stored_keys).",
                       no_args_is_help=True)
console = Console()
T = TypeVar("T")
Config = Annotated[str, typer.Argument(help="the distribution or run.yaml whose registry store holds the keys")]


def _with_keys(config: str, work: Callable[[Any], Awaitable[T]]) -> T:
    from stackkit.core.api_keys import StoredKeys
    from stackkit.core.config import load_config
    from stackkit.core.storage import open_kvstore

    loaded = load_config(config)
    if loaded.server.auth is None or not loaded.server.auth.stored_keys:
        console.print(f"[yellow]note:[/] {config} does not accept stored keys yet; set server.auth.stored_keys: "
                      "true in it.", highlight=False)

    async def run() -> T:
        kv = open_kvstore(loaded)
        try:
            return await work(StoredKeys(kv))
        finally:
            await kv.close()

    return asyncio.run(run())


def _attributes(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise StackkitError(f"--attribute takes NAME=VALUE, got {pair!r}; write it as e.g. team=red")
        out[name] = value
    return out


def create(config: Config, principal: Annotated[str, typer.Option(help="who the key stands for")],
           attribute: Annotated[list[str] | None, typer.Option(help="NAME=VALUE, e.g. team=red; may repeat")]
           = None) -> None:
    """Make a key for a principal; it is printed once and only its SHA-256 is stored."""
    attributes = _attributes(attribute or [])
    key, record = _with_keys(config, lambda keys: keys.create(principal, attributes))
    console.print(f"key {record['id']} for {principal}; keep it now, it is not shown again:", highlight=False)
    print(key)


def list_keys(config: Config) -> None:
    """The stored keys: id, principal, attributes, when made (never the keys themselves)."""
    records = _with_keys(config, lambda keys: keys.list())
    table = Table("id", "principal", "attributes", "created")
    for r in sorted(records, key=lambda r: r["created_at"]):
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["created_at"]))
        table.add_row(r["id"], r["principal"], ", ".join(f"{k}={v}" for k, v in r["attributes"].items()), created)
    console.print(table)


def revoke(config: Config, key_id: Annotated[str, typer.Argument(help="the key's id, as `list` shows it")]) -> None:
    """Delete a key: every replica refuses it within 5 seconds."""
    record = _with_keys(config, lambda keys: keys.revoke(key_id))
    console.print(f"revoked key {record['id']} of {record['principal']}", highlight=False)
