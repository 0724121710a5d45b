"""The `stackkit` command: run a stack, and inspect APIs, providers, distributions and configs."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from rich.console import Console
from rich.table import Table

from stackkit.cli import keys
from stackkit.cli.keys import keys_app
from stackkit.errors import StackkitError

app = typer.Typer(help="stackkit: one API over any model provider.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
config_app = typer.Typer(help="Validate and show run configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")
console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Print stackkit errors as one clear red message (exit 1), never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StackkitError as exc:
            err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _parse_env(pairs: list[str]) -> None:
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise StackkitError(f"--env takes KEY=VALUE, got {pair!r}; write it as KEY=VALUE")
        os.environ[key] = value


@app.command("list-apis")
@friendly
def list_apis() -> None:
    """List every API and the operations (routes) it serves."""
    from stackkit.apis.protocols import route_table

    table = Table("API", "Method", "Path", "SDK name", "Streams")
    for r in route_table():
        table.add_row(str(r.api), r.method, r.path, r.sdk, "yes" if r.stream_type else "")
    console.print(table)


@app.command("list-providers")
@friendly
def list_providers(api: Annotated[str | None, typer.Argument(help="only this API")] = None) -> None:
    """List the available providers: type, pip packages, dependencies, description."""
    from stackkit.apis.datatypes import Api
    from stackkit.providers.registry import provider_registry

    registry = provider_registry()
    if api is not None and api not in Api.__members__:
        raise StackkitError(f"unknown API '{api}'; use one of: {', '.join(a.value for a in Api)}")
    table = Table("API", "Provider type", "Pip packages", "Depends on", "Description")
    for each in Api:
        if api is not None and each.value != api:
            continue
        for spec in registry[each].values():
            deps = [d.value for d in spec.api_dependencies] + [f"({d.value})" for d in spec.optional_api_dependencies]
            table.add_row(each.value, spec.provider_type, " ".join(spec.pip_packages), " ".join(deps),
                          spec.description)
    console.print(table)


@app.command("list")
@friendly
def list_distributions() -> None:
    """List the distributions (run.yaml templates) that ship with stackkit."""
    from stackkit.core.config import list_distributions as distributions

    table = Table("Distribution", "Template", "Description")
    for name, path in distributions().items():
        first = path.read_text().splitlines()[0].lstrip("# ").strip() if path.read_text() else ""
        table.add_row(name, str(path), first)
    console.print(table)


@app.command("list-deps")
@friendly
def list_deps(
    distro_or_file: Annotated[str, typer.Argument(help="a distribution name or a run.yaml path")],
    env: Annotated[list[str] | None, typer.Option("--env", help="KEY=VALUE, may repeat")] = None,
) -> None:
    """Print the pip requirements of a stack's enabled providers (after env substitution)."""
    from stackkit.core.config import load_config
    from stackkit.core.resolver import plan

    _parse_env(env or [])
    config = load_config(distro_or_file)
    packages = {"stackkit[server]"}
    for provider in plan(config):
        packages.update(provider.spec.pip_packages)
    for package in sorted(packages):
        print(package)


@app.command("run")
@friendly
def run(
    distro_or_file: Annotated[str, typer.Argument(help="a distribution name or a run.yaml path")] = "starter",
    port: Annotated[int | None, typer.Option(help="port (default: server.port, 8321)")] = None,
    host: Annotated[str | None, typer.Option(help="interface (default: server.host, 127.0.0.1)")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="KEY=VALUE, may repeat")] = None,
) -> None:
    """Serve a stack over HTTP (OpenAI-compatible)."""
    _parse_env(env or [])
    from stackkit.core.server import serve

    serve(distro_or_file, host=host, port=port)


@app.command("ingest")
@friendly
def ingest_files(
    store: Annotated[str, typer.Argument(help="a vector store id, or a name (created if new)")],
    files: Annotated[list[Path], typer.Argument(help="files to add (text, Markdown, HTML, JSON, PDF)")],
    config: Annotated[str, typer.Option(help="distribution or run.yaml, used in-process")] = "starter",
    base_url: Annotated[str | None, typer.Option(help="a running server instead, e.g. http://127.0.0.1:8321/v1")]
    = None,
) -> None:
    """Upload files into a vector store and wait until they are indexed."""
    from stackkit.cli.ingest import ingest

    if base_url is not None:
        from stackkit.core.http_client import RemoteClient

        with RemoteClient(base_url) as remote:
            failed = ingest(remote, store, files, err_console)
    else:
        from stackkit.core.library_client import LibraryClient

        with LibraryClient(config) as local:
            failed = ingest(local, store, files, err_console)
    if failed:
        raise typer.Exit(1)


@app.command("chat")
@friendly
def chat(
    config: Annotated[str, typer.Option(help="distribution or run.yaml, run in-process")] = "starter",
    base_url: Annotated[str | None, typer.Option(help="a running server instead, e.g. http://127.0.0.1:8321/v1")]
    = None,
    model: Annotated[str | None, typer.Option(help="the chat model (default: the first one served)")] = None,
    system: Annotated[str | None, typer.Option(help="a system prompt")] = None,
) -> None:
    """Chat in the terminal: streamed answers, /model, /system, /reset, /save, /load; Ctrl-C stops an answer."""
    from stackkit.cli.chat import run_chat

    if base_url is not None:
        from stackkit.core.http_client import RemoteClient

        with RemoteClient(base_url) as remote:
            run_chat(remote, console, model, system)
    else:
        from stackkit.core.library_client import LibraryClient

        with LibraryClient(config) as local:
            local.wait_ready()
            run_chat(local, console, model, system)


@config_app.command("validate")
@friendly
def config_validate(path: Annotated[Path, typer.Argument(help="a run.yaml")]) -> None:
    """Check a run.yaml: syntax, env vars, fields, provider types, provider configs, dependencies."""
    from stackkit.core.config import load_config
    from stackkit.core.resolver import plan
    from stackkit.core.storage import check_storage

    config = load_config(path)
    providers = plan(config)
    check_storage(config)
    console.print(f"[green]ok[/]: {path} ({len(providers)} provider(s) enabled: "
                  f"{', '.join(p.provider_id for p in providers) or 'none'})", highlight=False)


@config_app.command("show")
@friendly
def config_show(distro_or_file: Annotated[str, typer.Argument(help="a distribution name or a run.yaml path")]) -> None:
    """Print a distribution's config as it resolves now (env substituted, disabled providers dropped)."""
    from stackkit.core.config import load_config
    from stackkit.core.redact import redact_config, redact_value
    from stackkit.core.resolver import plan

    config = load_config(distro_or_file)
    data = config.model_dump(mode="json", exclude_defaults=True)
    data["providers"] = {}
    for p in plan(config):
        data["providers"].setdefault(p.api.value, []).append(
            {"provider_id": p.provider_id, "provider_type": p.spec.provider_type, "config": redact_config(p.config)}
        )
    print(yaml.safe_dump(redact_value("config", data), sort_keys=False), end="")  # storage and quota URLs too


keys_app.command("create")(friendly(keys.create))
keys_app.command("list")(friendly(keys.list_keys))
keys_app.command("revoke")(friendly(keys.revoke))
app.add_typer(keys_app, name="keys")


def main() -> None:
    app(prog_name="stackkit")


if __name__ == "__main__":
    main()
