"""Fuzz the live server from its own /openapi.json: no 5xx, and every response matches its schema."""

from __future__ import annotations

import re
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
OPERATIONS = {(r.method, re.sub(r"{(\w+):\w+}", r"{\1}", r.path)) for r in route_table()}
CASES: dict[tuple[str, str], int] = {}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(fake_stack_config(Path(tmp_path_factory.mktemp("fuzz")))) as server:
        yield server
    # after the module's fuzzing, whatever order it ran in: when every operation was fuzzed, each got
    # enough cases (the Files API's multipart upload included)
    if set(CASES) >= OPERATIONS:
        fuzzed = {op: CASES[op] for op in OPERATIONS}
        assert sum(fuzzed.values()) >= 500, f"only {sum(fuzzed.values())} cases over the declared operations"
        assert fuzzed[("POST", "/v1/files")] >= 5, "the multipart upload was barely fuzzed"


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_api_conforms_to_its_schema(case: schemathesis.Case[Any], live: LiveServer) -> None:
    key = (case.method.upper(), case.operation.path)
    CASES[key] = CASES.get(key, 0) + 1
    case.call_and_validate(base_url=live.base_url.removesuffix("/v1"), checks=CHECKS, timeout=10)
