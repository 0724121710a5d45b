"""Fuzz the live server from its own /openapi.json: no 5xx, and every response matches its schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from stackkit.apis.protocols import route_table
from stackkit.core.openapi import openapi_spec
from stackkit.testing.live_server import LiveServer
from tests.conftest import fake_stack_config

schema = schemathesis.openapi.from_dict(openapi_spec(list(route_table()), "fuzz"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
CALLS: list[int] = []


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(fake_stack_config(Path(tmp_path_factory.mktemp("fuzz")))) as server:
        yield server


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_api_conforms_to_its_schema(case: schemathesis.Case[Any], live: LiveServer) -> None:
    CALLS.append(1)
    case.call_and_validate(base_url=live.base_url.removesuffix("/v1"), checks=CHECKS, timeout=10)


def test_fuzzing_ran_enough_cases() -> None:
    print(f"fuzz cases run: {len(CALLS)}")
    assert len(CALLS) >= 500, f"only {len(CALLS)} fuzz cases ran"
