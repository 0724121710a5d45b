"""run.yaml: env substitution, and every bad config's message (file, line, field, fix)."""

from __future__ import annotations

import asyncio
import textwrap

import pytest

from stackkit.core.config import load_config, parse_config, substitute_env
from stackkit.core.resolver import plan
from stackkit.errors import ConfigError, DependencyError


def cfg(text: str, env: dict[str, str] | None = None):
    return parse_config(textwrap.dedent(text), source="run.yaml", env=env or {})


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${env.A}", {"A": "x"}, "x"),
        ("pre-${env.A}-post", {"A": "x"}, "pre-x-post"),
        ("${env.A:=dflt}", {}, "dflt"),
        ("${env.A:=dflt}", {"A": ""}, "dflt"),
        ("${env.A:=dflt}", {"A": "set"}, "set"),
        ("${env.A:+on}", {"A": "1"}, "on"),
        ("${env.A:+on}", {}, ""),
        ("${env.A:+on}", {"A": ""}, ""),
        ("${env.A:=}", {}, ""),
        ("${env.A}/${env.B:=b}", {"A": "a"}, "a/b"),
        ("no vars", {}, "no vars"),
        ("$notenv", {}, "$notenv"),
    ],
)
def test_env_substitution(value: str, env: dict[str, str], expected: str) -> None:
    assert substitute_env({"k": [value]}, env) == {"k": [expected]}


def test_substituted_numbers_validate_as_numbers() -> None:
    config = cfg("server:\n  port: ${env.PORT:=9000}\n", {"PORT": "8123"})
    assert config.server.port == 8123


def test_provider_with_empty_id_is_disabled_and_hinted() -> None:
    config = cfg("""
        providers:
          inference:
            - provider_id: ${env.OPENAI_API_KEY:+openai}
              provider_type: remote::openai
            - provider_id: fake
              provider_type: inline::fake
        """)
    assert [p.provider_id for p in config.providers["inference"]] == ["fake"]
    assert config.disabled_hints == ["remote::openai (inference): set OPENAI_API_KEY to enable"]


def test_unset_required_env_var_names_line_field_and_fix() -> None:
    with pytest.raises(ConfigError) as err:
        cfg("""
            providers:
              inference:
                - provider_id: openai
                  provider_type: remote::openai
                  config:
                    api_key: ${env.MY_KEY}
            """)
    assert str(err.value) == (
        "run.yaml:7: providers.inference[0].config.api_key: environment variable MY_KEY is not set. "
        "Set it (export MY_KEY=...), or give a default with ${env.MY_KEY:=value}"
    )


def test_unknown_provider_type() -> None:
    with pytest.raises(ConfigError) as err:
        plan(cfg("""
            providers:
              inference:
                - provider_id: x
                  provider_type: remote::nope
            """))
    message = str(err.value)
    assert message.startswith(
        "run.yaml:5: providers.inference[0].provider_type: unknown provider_type 'remote::nope' for the inference "
        "API. Known types: inline::fake, "
    )
    assert "remote::openai" in message and message.endswith("See `stackkit list-providers inference`.")


def test_wrong_field_type_in_run_config() -> None:
    with pytest.raises(ConfigError) as err:
        cfg("server:\n  port: lots\n")
    assert str(err.value).startswith("run.yaml:2: server.port: Input should be a valid integer")
    assert "got 'lots'; fix the value" in str(err.value)


def test_wrong_field_type_in_provider_config() -> None:
    with pytest.raises(ConfigError) as err:
        plan(cfg("""
            providers:
              inference:
                - provider_id: o
                  provider_type: remote::openai
                  config:
                    timeout_s: soon
            """))
    assert str(err.value).startswith(
        "run.yaml:7: providers.inference[0].config.timeout_s: Input should be a valid number"
    )
    assert "(got 'soon'): fix the value" in str(err.value)


def test_misspelled_field() -> None:
    with pytest.raises(ConfigError) as err:
        cfg("providerz: {}\n")
    assert "run.yaml:1: providerz:" in str(err.value)
    assert "remove 'providerz' (not a known field here) or check its spelling" in str(err.value)


def test_yaml_syntax_error_has_line() -> None:
    with pytest.raises(ConfigError) as err:
        cfg("providers:\n  inference: [\n")
    assert str(err.value).startswith("run.yaml:3: not valid YAML")


def test_dependency_cycle_names_both_ends() -> None:
    with pytest.raises(DependencyError) as err:
        plan(cfg("""
            providers:
              inference:
                - provider_id: inf
                  module: tests.providers.third_party
                  provider_type: test::needs-safety
              safety:
                - provider_id: guard
                  module: tests.providers.third_party
                  provider_type: test::needs-inference
            """))
    msg = str(err.value)
    assert "dependency cycle: inference (provider 'inf' (test::needs-safety, inference)) -> " in msg
    assert "safety (provider 'guard' (test::needs-inference, safety)) -> inference" in msg
    assert "Remove one of these dependencies" in msg


def test_missing_dependency_names_both_ends() -> None:
    with pytest.raises(DependencyError) as err:
        plan(cfg("""
            providers:
              safety:
                - provider_id: guard
                  module: tests.providers.third_party
                  provider_type: test::needs-inference
            """))
    assert str(err.value) == (
        "run.yaml:4: providers.safety[0]: provider 'guard' (test::needs-inference, safety) depends on the "
        "inference API, but no inference provider is configured. Add one under providers.inference "
        "(or set the env var that enables it)."
    )


def test_duplicate_provider_id() -> None:
    with pytest.raises(ConfigError, match=r"provider_id 'a' is used twice under providers\.inference"):
        plan(cfg("""
            providers:
              inference:
                - {provider_id: a, provider_type: inline::fake}
                - {provider_id: a, provider_type: inline::fake}
            """))


def test_unknown_distribution_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"Unknown distribution 'nope'\. Known distributions: .*starter"):
        load_config("nope")


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"No such config file: /nowhere/run\.yaml"):
        load_config("/nowhere/run.yaml")


def test_starter_loads_with_no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "VLLM_URL"):
        monkeypatch.delenv(var, raising=False)
    config = load_config("starter")
    assert config.distro_name == "starter"
    plan(config)


def test_unknown_fields_are_rejected_not_ignored() -> None:
    with pytest.raises(ConfigError, match="remove 'exporter'"):  # telemetry takes traces:, not exporter:
        cfg("telemetry: {exporter: otlp}\n")
    with pytest.raises(ConfigError, match=r"server\.auth"):  # api_keys and oidc, not Llama Stack's provider:
        cfg("server: {auth: {provider: oauth2}}\n")
    with pytest.raises(ConfigError, match="give api_keys, oidc or stored_keys"):
        cfg("server: {auth: {}}\n")
    with pytest.raises(ConfigError, match="unknown condition"):
        cfg("access_policy: [{permit: {actions: [read]}, when: [user is admin]}]\n")
    with pytest.raises(ConfigError, match="set requests_per_minute"):
        cfg("quotas: {rules: [{principal: bob}]}\n")


def test_a_registry_on_redis_needs_a_sql_store_rather_than_memory() -> None:
    from stackkit.core.stack import Stack

    text = ("version: 2\nproviders:\n  inference: [{provider_id: f, provider_type: inline::fake}]\n"
            "storage:\n  backends: {r: {type: redis, url: 'redis://127.0.0.1:1/0'}}\n  stores: {registry: r}\n")
    with pytest.raises(ConfigError, match=r"storage.stores.sql"):
        asyncio.run(Stack.create(parse_config(text, source="run.yaml", env={})))
