"""Input that once crashed a route with a plain-text 500 answers a 4xx with a readable detail, on both databases.

Every case ran into SQLite's 64-bit integers, PostgreSQL's 32-bit columns or its refusal of NUL characters and
NaN, croniter, float('nan') or the json/csv parsers. The suite runs on SQLite and on PostgreSQL
(RANKLAB_TEST_DATABASE_URL), so each case is checked on both.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import UserStatus
from tests.factories import Factory, browser_login, make_task, token_headers

HUGE = 10**23  # beyond 64 bits
NUL = "lab\x00x"


def _assert_detail(resp: Any, status: int = 422) -> str:
    assert resp.status_code == status, resp.text
    detail = resp.json()["detail"]
    assert isinstance(detail, str) and detail
    return detail


@pytest.fixture
def researcher(client: TestClient, factory: Factory) -> dict[str, str]:
    return token_headers(client, factory.researcher())


@pytest.fixture
def assignment(client: TestClient, factory: Factory, db: Session) -> tuple[int, dict[str, str]]:
    make_task(db, k=4)
    headers = token_headers(client, factory.labeler(UserStatus.active))
    got = client.get("/api/v1/labeling/next", headers=headers)
    assert got.status_code == 200, got.text
    return got.json()["assignment_id"], headers


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/tasks/{HUGE}",
        f"/api/v1/tasks?offset={HUGE * 10**7}",
        "/api/v1/tasks?offset=-1",
        "/api/v1/tasks?limit=-1",
        "/api/v1/tasks?limit=501",
        "/api/v1/prompts?offset=-1",
        "/api/v1/prompts?limit=-1",
        "/api/v1/prompts?q=a%00b",
        "/api/v1/tasks?q=a%00b",
        f"/api/v1/schedules/{HUGE}",
        f"/api/v1/jobs/{HUGE}",
        f"/api/v1/agreement/labelers/{HUGE}",
    ],
)
def test_researcher_reads_refuse_unstorable_values(client: TestClient, researcher: dict[str, str], path: str) -> None:
    _assert_detail(client.get(path, headers=researcher))


@pytest.mark.parametrize("priority", [HUGE, 2**31, -(2**31) - 1])
def test_task_priority_out_of_range(client: TestClient, researcher: dict[str, str], priority: int) -> None:
    body = {"prompt": "Say hi.", "completions": ["a", "b", "c", "d"], "priority": priority}
    detail = _assert_detail(client.post("/api/v1/tasks", json=body, headers=researcher))
    assert "priority" in detail


@pytest.mark.parametrize("blank", ["", "   \n\t"])
def test_task_with_a_blank_completion_is_refused(client: TestClient, researcher: dict[str, str], blank: str) -> None:
    body = {"prompt": "Say hi.", "completions": ["a", "b", blank, "d"]}
    assert "completion 3 is empty" in _assert_detail(client.post("/api/v1/tasks", json=body, headers=researcher))


def test_huge_assignment_ids(client: TestClient, assignment: tuple[int, dict[str, str]]) -> None:
    _, headers = assignment
    body = {"ranking": [[1], [2], [3], [4]], "idempotency_key": "k1"}
    _assert_detail(client.post(f"/api/v1/labeling/assignments/{HUGE}/ranking", json=body, headers=headers))
    _assert_detail(client.post(f"/api/v1/labeling/assignments/{HUGE}/skip", json={"reason": "x"}, headers=headers))


@pytest.mark.parametrize("field", ["note", "idempotency_key"])
def test_nul_in_a_ranking(client: TestClient, db: Session, assignment: tuple[int, dict[str, str]], field: str) -> None:
    assignment_id, headers = assignment
    from app.models import Assignment

    order = db.get(Assignment, assignment_id).display_order  # type: ignore[union-attr]
    body = {"ranking": [[c] for c in order], "idempotency_key": "key-1", "note": "fine", field: NUL}
    resp = client.post(f"/api/v1/labeling/assignments/{assignment_id}/ranking", json=body, headers=headers)
    assert "NUL" in _assert_detail(resp)


def test_nul_in_a_skip_reason(client: TestClient, assignment: tuple[int, dict[str, str]]) -> None:
    assignment_id, headers = assignment
    resp = client.post(f"/api/v1/labeling/assignments/{assignment_id}/skip", json={"reason": NUL}, headers=headers)
    _assert_detail(resp)


@pytest.mark.parametrize("username", ["lab1\x00", "a" * 10 + "\x00"])
def test_nul_in_a_login_name_without_an_account(client: TestClient, username: str) -> None:
    resp = client.post("/api/v1/auth/token", data={"username": username, "password": "whatever-password"})
    assert resp.status_code in (401, 422), resp.text
    assert resp.json()["detail"]


def test_nul_in_a_guideline_body(client: TestClient, factory: Factory) -> None:
    csrf = browser_login(client, factory.researcher())
    resp = client.post("/guidelines", data={"body": NUL, "csrf_token": csrf}, headers={"Accept": "application/json"})
    _assert_detail(resp)


SCHEDULE = {"name": "nightly", "kind": "sample", "params": {"n_unlabeled": 5}, "cron": "0 3 * * *"}


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"cron": "0 0 30 2 *"}, "never fires"),
        ({"cron": ""}, "cron expression or min_new_rankings"),
        ({"cron": "   "}, "cron expression or min_new_rankings"),
        ({"name": NUL}, "NUL"),
        ({"min_new_rankings": 2**31}, "min_new_rankings"),
    ],
)
def test_bad_schedules_are_refused(
    client: TestClient, researcher: dict[str, str], changes: dict[str, Any], needle: str
) -> None:
    resp = client.post("/api/v1/schedules", json={**SCHEDULE, **changes}, headers=researcher)
    assert needle in _assert_detail(resp)


def test_nan_in_schedule_params(client: TestClient, researcher: dict[str, str]) -> None:
    raw = '{"name": "n", "kind": "sample", "params": {"n_unlabeled": 5, "temperature": NaN}, "cron": "0 3 * * *"}'
    resp = client.post("/api/v1/schedules", content=raw, headers={**researcher, "Content-Type": "application/json"})
    assert resp.status_code == 422 and resp.json()["detail"]


def test_patching_a_schedule_to_a_cron_that_never_fires(client: TestClient, researcher: dict[str, str]) -> None:
    created = client.post("/api/v1/schedules", json=SCHEDULE, headers=researcher)
    assert created.status_code == 201, created.text
    url = f"/api/v1/schedules/{created.json()['id']}"
    assert "never fires" in _assert_detail(client.patch(url, json={"cron": "0 0 30 2 *"}, headers=researcher))
    patched = client.patch(url, json={"cron": "", "min_new_rankings": 10}, headers=researcher)
    assert patched.status_code == 200 and patched.json()["cron"] is None


@pytest.mark.parametrize("ratio", ["nan,nan,nan", "inf,1,1", "1e400,0,0"])
def test_split_ratio_must_be_finite(client: TestClient, researcher: dict[str, str], ratio: str) -> None:
    body = {"prompts": [{"text": "Say hi."}], "split_ratio": ratio}
    assert "split ratio" in _assert_detail(client.post("/api/v1/prompts", json=body, headers=researcher))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", '"a\\u0000b"'])
def test_prompt_metadata_that_json_columns_cannot_hold(
    client: TestClient, researcher: dict[str, str], literal: str
) -> None:
    raw = '{"prompts": [{"text": "Say hi.", "metadata": {"score": %s}}]}' % literal  # noqa: UP031
    resp = client.post("/api/v1/prompts", content=raw, headers={**researcher, "Content-Type": "application/json"})
    _assert_detail(resp)


def _upload(client: TestClient, csrf: str, route: str, name: str, data: bytes, **form: str) -> Any:
    return client.post(
        route, files={"file": (name, data)}, data={"csrf_token": csrf, **form}, headers={"Accept": "text/html"}
    )


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("p.jsonl", b"[" * 100_000, "nested too deeply"),
        ("p.csv", b'text\nok\n"' + b"x" * 140_000 + b'"\n', "line 3"),
        ("p.csv", b'text\nfirst\n"second\nthird\nfourth\n', "line 3"),
        ("p.jsonl", b'{"text": "hi", "metadata": {"x": NaN}}\n', "NaN"),
    ],
)
def test_bad_prompt_uploads(client: TestClient, factory: Factory, name: str, data: bytes, needle: str) -> None:
    csrf = browser_login(client, factory.researcher())
    resp = _upload(client, csrf, "/prompts/upload", name, data)
    assert resp.status_code == 422 and needle in resp.text, resp.text[-2000:]


def test_split_ratio_nan_in_the_upload_form(client: TestClient, factory: Factory) -> None:
    csrf = browser_login(client, factory.researcher())
    resp = _upload(client, csrf, "/prompts/upload", "p.jsonl", b'{"text": "hi"}\n', split_ratio="nan,nan,nan")
    assert resp.status_code == 422 and "split ratio" in resp.text


@pytest.mark.parametrize(
    "line",
    [
        f'{{"prompt": {HUGE}, "completions": ["a", "b", "c", "d"]}}',
        f'{{"prompt": "hi", "completions": ["a", "b", "c", "d"], "overlap": {HUGE}}}',
        '{"prompt": "hi", "completions": ["a", "b", "c", "d"], "overlap": 2147483648}',
        '{"prompt": "hi", "completions": ["a", "b", " ", "d"]}',
    ],
)
def test_bad_task_uploads(client: TestClient, factory: Factory, line: str) -> None:
    csrf = browser_login(client, factory.researcher())
    resp = _upload(client, csrf, "/tasks/upload", "t.jsonl", line.encode() + b"\n")
    assert resp.status_code == 422 and "line 1" in resp.text, resp.text[-2000:]


def test_an_unexpected_exception_answers_json_with_a_request_id(app: FastAPI, caplog: pytest.LogCaptureFixture) -> None:
    @app.get("/api/v1/_boom")
    def boom() -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.INFO):
        resp = client.get("/api/v1/_boom")
    assert resp.status_code == 500
    body = resp.json()
    assert body["request_id"] and body["request_id"] in body["detail"]
    assert resp.headers["X-Request-ID"] == body["request_id"]
    access = [r for r in caplog.records if r.name == "ranklab.access" and r.__dict__.get("status") == 500]
    assert access and access[-1].__dict__["request_id"] == body["request_id"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any(r.__dict__.get("request_id") == body["request_id"] for r in errors)


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    first, second = client.get("/healthz"), client.get("/healthz")
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]
    given = client.get("/healthz", headers={"X-Request-ID": "proxy-1234abcd"})
    assert given.headers["X-Request-ID"] == "proxy-1234abcd"
