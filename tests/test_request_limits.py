"""Issue 22's defects 1, 2 and 5: a request that can never succeed answers a 4xx that names the limit, before any
work starts (and before a streamed body's 200), and JSON bodies mean what the OpenAPI schema says.

The suite runs on SQLite and on PostgreSQL (RANKLAB_TEST_DATABASE_URL), so every case is checked on both.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.models import Job, ModelKind, ModelVersion, Prompt, RankingTask, Schedule, Split
from tests.factories import Factory, token_headers

ID_MAX = 2**31 - 1


@pytest.fixture
def researcher(client: TestClient, factory: Factory) -> dict[str, str]:
    return token_headers(client, factory.researcher())


def _refused(resp: Any, *needles: str, status: int = 422) -> str:
    assert resp.status_code == status, resp.text[:2000]
    detail = resp.json()["detail"]
    assert isinstance(detail, str)
    for needle in needles:
        assert needle in detail, detail
    return detail


# --- 1. the export stream never breaks after its 200 -------------------------------------------------------------


@pytest.mark.parametrize("value", [ID_MAX + 1, 2**63, 10**20, 0, -5])
def test_export_refuses_ids_out_of_range_before_it_streams(
    client: TestClient, researcher: dict[str, str], value: int
) -> None:
    resp = client.get("/api/v1/export/comparisons", params={"model_versions": [1, value]}, headers=researcher)
    _refused(resp, "model_versions")


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:00-23:59", "0001-01-01T00:00:00+01:00"])
def test_export_refuses_times_that_do_not_fit_in_utc(
    client: TestClient, researcher: dict[str, str], moment: str
) -> None:
    resp = client.get("/api/v1/export/comparisons", params={"since": moment}, headers=researcher)
    _refused(resp, "since")


def test_export_still_streams_with_ids_in_range(client: TestClient, researcher: dict[str, str]) -> None:
    resp = client.get("/api/v1/export/comparisons", params={"model_versions": [1, ID_MAX]}, headers=researcher)
    assert resp.status_code == 200 and resp.text == ""


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"model_versions": [ID_MAX + 1]}, "model_versions"),
        ({"model_versions": [2**63]}, "model_versions"),
        ({"until": 1767225600}, "until"),
        ({"since": True}, "since"),
        ({"active_only": 0}, "active_only"),
        ({"min_agreement": "0.5"}, "min_agreement"),
    ],
)
def test_export_job_refuses_bad_params_when_queued(
    client: TestClient, researcher: dict[str, str], db: Session, params: dict[str, Any], needle: str
) -> None:
    before = db.scalar(select(func.count()).select_from(Job))
    resp = client.post("/api/v1/jobs", json={"kind": "export", "params": params}, headers=researcher)
    _refused(resp, f"params.{needle}")
    assert db.scalar(select(func.count()).select_from(Job)) == before


# --- 2. a request that can never succeed is a 4xx naming the limit, never a 503 ----------------------------------

MANY = 70_000  # over PostgreSQL's 65,535 bind parameters per statement


def test_a_sample_job_naming_many_prompts_that_do_not_exist(client: TestClient, researcher: dict[str, str]) -> None:
    ids = list(range(ID_MAX - MANY, ID_MAX))
    resp = client.post("/api/v1/jobs", json={"kind": "sample", "params": {"prompt_ids": ids}}, headers=researcher)
    _refused(resp, "params.prompt_ids", "no prompt with id")
    assert "retry-after" not in resp.headers


def test_a_sample_job_and_a_round_over_many_existing_prompts(
    client: TestClient, researcher: dict[str, str], db: Session
) -> None:
    rows = [{"text": f"bulk prompt {i}", "content_hash": f"bulk-{i}", "split": Split.train} for i in range(MANY)]
    db.execute(insert(Prompt), rows)
    ids = list(db.scalars(select(Prompt.id).where(Prompt.content_hash.like("bulk-%")).order_by(Prompt.id)))
    assert len(ids) == MANY
    resp = client.post("/api/v1/jobs", json={"kind": "sample", "params": {"prompt_ids": ids}}, headers=researcher)
    assert resp.status_code == 201, resp.text[:500]
    assert len(resp.json()["params"]["prompt_ids"]) == MANY
    db.add(ModelVersion(kind=ModelKind.sft, name="sft-bulk", path="/nowhere"))  # a round starts from an SFT model
    db.flush()
    resp = client.post("/api/v1/rounds", json={"sample": {"prompt_ids": ids}}, headers=researcher)
    assert resp.status_code == 201, resp.text[:500]


@pytest.mark.parametrize("path", ["/api/v1/prompts", "/api/v1/tasks"])
def test_search_text_over_the_limit(client: TestClient, researcher: dict[str, str], path: str) -> None:
    resp = client.get(path, params={"q": "x" * 50_001}, headers=researcher)
    _refused(resp, "q", "1000")
    assert client.get(path, params={"q": "x" * 1000}, headers=researcher).status_code == 200


@pytest.mark.parametrize(
    "message",
    [
        "sending query and params failed: number of parameters must be between 0 and 65535",
        "LIKE or GLOB pattern too complex",
        "too many SQL variables",
        "string or blob too big",
    ],
)
def test_a_limit_of_the_database_is_not_an_outage(app: FastAPI, message: str) -> None:
    """The backstop behind the checks: a statement the database can never run answers 422, not 503 + Retry-After."""

    @app.get("/api/v1/_limit")
    def limit() -> None:
        raise OperationalError("SELECT ...", {}, Exception(message))

    with TestClient(app) as client:
        resp = client.get("/api/v1/_limit")
    _refused(resp, "too large")
    assert "retry-after" not in resp.headers


def test_an_outage_is_still_a_503(app: FastAPI) -> None:
    @app.get("/api/v1/_down")
    def down() -> None:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    with TestClient(app) as client:
        resp = client.get("/api/v1/_down")
    assert resp.status_code == 503 and resp.headers["retry-after"]


# --- 5. strict types, bounded metadata, OPTIONS, documented statuses ---------------------------------------------


def test_a_boolean_is_not_a_prompt_id(client: TestClient, researcher: dict[str, str], db: Session) -> None:
    if db.get(Prompt, 1) is None:
        db.add(Prompt(id=1, text="prompt one", content_hash="prompt-one", split=Split.train))
        db.flush()
    before = db.scalar(select(func.count()).select_from(RankingTask))
    body = {"prompt": True, "completions": ["a", "b", "c", "d"]}
    _refused(client.post("/api/v1/tasks", json=body, headers=researcher), "prompt")
    assert db.scalar(select(func.count()).select_from(RankingTask)) == before


@pytest.mark.parametrize(
    "body",
    [
        {"overlap": True},
        {"priority": "5"},
        {"overlap": 2.0},
        {"gold_ranking": [[True], [1], [2], [3]], "kind": "gold"},
    ],
)
def test_task_numbers_are_json_integers(client: TestClient, researcher: dict[str, str], body: dict[str, Any]) -> None:
    full = {"prompt": "Say hi.", "completions": ["a", "b", "c", "d"], **body}
    assert client.post("/api/v1/tasks", json=full, headers=researcher).status_code == 422


def test_prompt_metadata_is_bounded(client: TestClient, researcher: dict[str, str], db: Session) -> None:
    before = db.scalar(select(func.count()).select_from(Prompt))
    body = {"prompts": [{"text": "Say hi.", "metadata": {"note": "x" * 10_000_000}}]}
    _refused(client.post("/api/v1/prompts", json=body, headers=researcher), "metadata", "64")
    assert db.scalar(select(func.count()).select_from(Prompt)) == before
    ok = {"prompts": [{"text": "Say hi.", "metadata": {"note": "x" * 1000}}]}
    assert client.post("/api/v1/prompts", json=ok, headers=researcher).status_code == 201


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"enabled": 0}, "enabled"),
        ({"enabled": "true"}, "enabled"),
        ({"min_new_rankings": True, "cron": None}, "min_new_rankings"),
    ],
)
def test_schedule_fields_are_strict(
    client: TestClient, researcher: dict[str, str], db: Session, body: dict[str, Any], needle: str
) -> None:
    schedule = {"name": "nightly", "kind": "sample", "params": {"n_unlabeled": 5}, "cron": "0 3 * * *"}
    before = db.scalar(select(func.count()).select_from(Schedule))
    _refused(client.post("/api/v1/schedules", json={**schedule, **body}, headers=researcher), needle)
    assert db.scalar(select(func.count()).select_from(Schedule)) == before
    created = client.post("/api/v1/schedules", json=schedule, headers=researcher)
    assert created.status_code == 201, created.text
    url = f"/api/v1/schedules/{created.json()['id']}"
    _refused(client.patch(url, json=body, headers=researcher), needle)


def test_ranking_fields_are_strict(client: TestClient, factory: Factory, db: Session) -> None:
    from tests.factories import make_task

    make_task(db, k=4)
    headers = token_headers(client, factory.labeler())
    got = client.get("/api/v1/labeling/next", headers=headers).json()
    ids = [c["id"] for c in got["completions"]]
    url = f"/api/v1/labeling/assignments/{got['assignment_id']}/ranking"
    body = {"ranking": [[i] for i in ids], "idempotency_key": "strict-1"}
    for bad in ({"not_rankable": 0}, {"ratings": {str(ids[0]): True}}, {"ranking": [[str(i)] for i in ids]}):
        assert client.post(url, json={**body, **bad}, headers=headers).status_code == 422, bad
    assert client.post(url, json=body, headers=headers).status_code == 201


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/api/v1/jobs", {"GET", "POST"}),
        ("/api/v1/schedules/1", {"GET", "PATCH", "DELETE"}),
        ("/api/v1/users", {"GET", "POST"}),
        ("/api/v1/labeling/rankings/1", {"GET", "PUT"}),
    ],
)
def test_options_and_405_name_every_method_of_the_path(client: TestClient, path: str, methods: set[str]) -> None:
    options = client.options(path)
    assert options.status_code == 204, options.text
    allowed = {m.strip() for m in options.headers["allow"].split(",")}
    assert methods <= allowed and allowed <= methods | {"HEAD", "OPTIONS"}
    wrong = client.request("TRACE", path)
    assert wrong.status_code == 405
    assert {m.strip() for m in wrong.headers["allow"].split(",")} == allowed
    assert wrong.json()["detail"]


def test_unknown_paths_still_answer_404_to_options(client: TestClient) -> None:
    assert client.options("/api/v1/no-such-thing").status_code == 404


def test_business_rule_statuses_are_documented(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert "409" in paths["/api/v1/jobs/{job_id}/file"]["get"]["responses"]
    token = paths["/api/v1/auth/token"]["post"]
    form = token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    ref = form["$ref"].rsplit("/", 1)[-1]
    props = client.get("/api/openapi.json").json()["components"]["schemas"][ref]["properties"]
    assert props["username"]["minLength"] == 1 and props["password"]["minLength"] == 1


def test_export_query_documents_the_id_range(client: TestClient) -> None:
    op = client.get("/api/openapi.json").json()["paths"]["/api/v1/export/comparisons"]["get"]
    param = next(p for p in op["parameters"] if p["name"] == "model_versions")
    assert json.dumps(param["schema"]).count(str(ID_MAX)) == 1
