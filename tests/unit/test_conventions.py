"""Every convention of the codebase, checked."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import stackkit
import stackkit.errors as errors_module
from stackkit.apis.datatypes import Api, ProviderConfigBase
from stackkit.apis.protocols import API_PROTOCOLS, route_table
from stackkit.errors import StackkitError
from stackkit.providers.registry import import_object, provider_registry

SPECS = [spec for by_type in provider_registry().values() for spec in by_type.values()]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.api.value}:{s.provider_type}")
def test_registry_entry_builds_its_sample_config(spec) -> None:
    config_class = import_object(spec.config_class)
    assert issubclass(config_class, ProviderConfigBase), "config classes forbid unknown fields"
    sample = config_class.sample_run_config()
    from stackkit.core.config import substitute_env

    config_class.model_validate(substitute_env(sample, {}))
    module = importlib.import_module(spec.module)
    assert inspect.iscoroutinefunction(module.create), f"{spec.module}.create must be async"
    assert spec.provider_type.split("::")[0] in ("inline", "remote")
    assert spec.module.startswith(f"stackkit.providers.{spec.provider_type.split('::')[0]}.")


def test_registry_modules_import_no_sdk() -> None:
    code = ("import sys; from stackkit.providers.registry import provider_registry; provider_registry(); "
            "bad = [m for m in ('torch', 'numpy', 'transformers', 'faiss', 'openai', 'anthropic', 'httpx') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_import_stackkit_is_light() -> None:
    code = ("import sys, stackkit; heavy = ('torch', 'numpy', 'transformers', 'faiss', 'openai', 'anthropic', "
            "'fastapi', 'starlette', 'httpx', 'pydantic', 'yaml', 'sentence_transformers', 'chromadb'); "
            "print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_names_are_exported() -> None:
    assert set(stackkit.__all__) == {*stackkit._LAZY, "__version__"}
    for name in stackkit.__all__:
        assert getattr(stackkit, name) is not None
        assert name == "__version__" or getattr(stackkit, name).__doc__, f"{name} has no docstring"
    import stackkit.errors as errors

    exported = {n for n, v in vars(errors).items() if inspect.isclass(v) and issubclass(v, StackkitError)}
    assert exported == set(errors.__all__)


def test_every_api_has_a_protocol_and_routes() -> None:
    assert set(API_PROTOCOLS) == set(Api)
    for api in Api:
        assert any(r.api is api for r in route_table()), f"{api} has no routes"


def test_routes_are_unique_and_typed() -> None:
    seen = set()
    for r in route_table():
        key = (r.method, r.path)
        assert key not in seen, f"{key} declared twice"
        seen.add(key)
        assert r.request_type is not None and r.response_type is not None, r.name
        assert r.path.startswith("/v1/")
    sdk_names = [r.sdk for r in route_table()]
    assert len(sdk_names) == len(set(sdk_names))


_FIX_WORDS = re.compile(
    r"\b(use|set|add|remove|pick|check|send|try|register|name|give|call|declare|fix|install|raise|lower|shorten|"
    r"create|delete|wait|keep|ask|start|stop|restart|talk|see|lists?|configure|upload|choose|replace|run|pass|"
    r"enable|point|retry|make|drop|attach|rename|split|mean|implement|write|serve|return|leave)\b", re.I)
# errors whose class writes the fix itself (MissingPackageError names the pip extra), the deliberate
# failures of the fake provider, and messages relayed from a server that wrote them
_EXEMPT = ({"MissingPackageError"}, {"fake_inference.py"}, {"http_client.py"})


def _raised_messages() -> list[tuple[str, int, str, str]]:
    import ast

    classes = {n for n, v in vars(errors_module).items() if inspect.isclass(v) and issubclass(v, StackkitError)}
    found = []
    for path in Path(stackkit.__file__).parent.rglob("*.py"):
        if path.name in _EXEMPT[1] | _EXEMPT[2]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args):
                continue
            func = node.exc.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in classes and name not in _EXEMPT[0]:
                text = "".join(c.value for c in ast.walk(node.exc.args[0])
                               if isinstance(c, ast.Constant) and isinstance(c.value, str))
                found.append((path.name, node.lineno, name, text))
    return found


def test_every_error_says_how_to_fix_it() -> None:
    messages = _raised_messages()
    assert len(messages) > 80  # the scan sees the raises (a broken scan would pass vacuously)
    unhelpful = [f"{f}:{line} {name}: {text[:90]!r}" for f, line, name, text in messages
                 if text and not _FIX_WORDS.search(text)]
    assert not unhelpful, "these errors do not say how to fix the problem:\n" + "\n".join(unhelpful)


def test_errors_map_to_openai_bodies() -> None:
    body = StackkitError("boom; do X").to_openai_body()
    assert body == {"error": {"message": "boom; do X", "type": "server_error", "param": None, "code": None}}


def test_provider_implementations_add_no_public_methods_beyond_the_protocol() -> None:
    import typing

    from stackkit.apis.protocols import protocol_methods

    lifecycle = {"start", "shutdown", "health"}
    for spec in SPECS:
        module = importlib.import_module(spec.module)
        impl = typing.get_type_hints(module.create)["return"]
        allowed = set(protocol_methods(spec.api)) | lifecycle
        public = {n for cls in impl.__mro__[:-1] for n, v in vars(cls).items()
                  if callable(v) and not n.startswith("_")}
        assert public <= allowed, f"{impl.__name__} ({spec.provider_type}) adds {public - allowed}"


PLAYGROUND = Path(stackkit.__file__).parent / "playground" / "static"
_PARSES_HTML = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
                          r"setAttribute\(\s*[\"']on|createContextualFragment|DOMParser|srcdoc")


def test_the_playground_never_parses_text_as_html() -> None:
    """Untrusted text (model output, file names, tool results) reaches the page only as text nodes and
    attribute values (dom.js, markdown.js); nothing in the playground parses a string as HTML or code."""
    scripts = sorted(PLAYGROUND.glob("*.js"))
    assert len(scripts) >= 8
    for script in scripts:
        found = _PARSES_HTML.findall(script.read_text())
        assert not found, f"{script.name} uses {found}: build nodes with h() from dom.js instead"
    page = (PLAYGROUND / "index.html").read_text()
    assert "<script>" not in page and "style=" not in page and not re.search(r"\son\w+\s*=", page)
