"""Schemathesis against the app's own OpenAPI schema, as a labeler and as a researcher (SQLite and PostgreSQL, as
the suite runs): no 5xx, every status and body as documented, every 4xx with a sentence in `detail`.

The conformance checks issue 22 names run on every case: ST103 (a status the operation does not document), ST201
(a request that violates the schema accepted: `true` as an id, `0` as a boolean, a number as a date), ST202 (a
request the schema allows rejected), ST204/ST205 (an undeclared method answered without a 405 naming every method
of the path, or OPTIONS listing other methods than the schema). Schemathesis generates schema-violating data too
(its coverage phase: wrong types, missing fields, out-of-range numbers, undeclared methods).

Bounded (a few examples per operation) so that it stays well under a minute per database; raise FUZZ_EXAMPLES
locally for a longer hunt.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from app.config import Settings
from app.main import create_app
from app.models import Role, User, UserStatus
from tests.factories import make_task

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))


# Schemathesis collects the operations from an app built at import time; `callers` points that app at the test's
# rolled-back database by copying the `app` fixture's dependency overrides.
FUZZED = create_app(Settings(env="test"))


_seq = itertools.count()


@pytest.fixture
def callers(app: FastAPI, db) -> Iterator[list[dict[str, str]]]:  # type: ignore[no-untyped-def]
    """Bearer headers of an active labeler and a researcher (rows made directly: no password hashing per test)."""
    for _ in range(3):
        make_task(db, k=4)
    users = [
        User(username=f"fuzz{next(_seq)}", password_hash="x", role=role, status=UserStatus.active)
        for role in (Role.labeler, Role.researcher)
    ]
    db.add_all(users)
    db.flush()
    FUZZED.dependency_overrides.update(app.dependency_overrides)
    try:
        yield [{"Authorization": f"Bearer {app.state.signer.issue_token(u.id, u.auth_epoch)}"} for u in users]
    finally:
        FUZZED.dependency_overrides.clear()


def detail_on_4xx(ctx, response, case) -> None:  # type: ignore[no-untyped-def]
    """Every 4xx answers JSON with a non-empty sentence in `detail`."""
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body.get("detail"), str) and body["detail"].strip(), (response.status_code, body)


schema = schemathesis.openapi.from_asgi("/api/openapi.json", FUZZED)
CHECKS = [
    not_a_server_error,
    status_code_conformance,  # ST103
    negative_data_rejection,  # ST201
    positive_data_acceptance,  # ST202
    unsupported_method,  # ST204
    allow_header_conformance,  # ST205
    content_type_conformance,
    response_schema_conformance,
]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_against_its_schema(case, callers) -> None:  # type: ignore[no-untyped-def]
    for headers in callers:
        case.call_and_validate(
            headers=headers,
            checks=CHECKS,
            additional_checks=[detail_on_4xx],
        )
