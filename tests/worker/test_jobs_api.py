"""Jobs, schedules and models API: validation, role guards, cancel."""

from __future__ import annotations

from app.models import JobStatus, ModelKind, ModelVersion
from tests.factories import browser_login, token_headers


def test_researcher_queues_and_reads_a_job(client, factory):
    headers = token_headers(client, factory.researcher())
    resp = client.post("/api/v1/jobs", json={"kind": "sample", "params": {"n_unlabeled": 10, "k": 5}}, headers=headers)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["status"] == "queued" and body["params"]["k"] == 5 and body["params"]["top_p"] == 0.95
    got = client.get(f"/api/v1/jobs/{body['id']}", headers=headers)
    assert got.status_code == 200 and got.json()["id"] == body["id"]
    listed = client.get("/api/v1/jobs", params={"status": "queued"}, headers=headers).json()
    assert body["id"] in [j["id"] for j in listed]


def test_bad_param_is_422_naming_it(client, factory):
    headers = token_headers(client, factory.researcher())
    resp = client.post("/api/v1/jobs", json={"kind": "sample", "params": {"n_unlabeled": 3, "k": 10}}, headers=headers)
    assert resp.status_code == 422 and "params.k" in resp.json()["detail"]
    resp = client.post(
        "/api/v1/jobs", json={"kind": "sample", "params": {"n_unlabeled": 3, "topp": 1}}, headers=headers
    )
    assert resp.status_code == 422 and "params.topp" in resp.json()["detail"]
    resp = client.post("/api/v1/jobs", json={"kind": "dance", "params": {}}, headers=headers)
    assert resp.status_code == 422 and "kind" in resp.json()["detail"]


def test_cancel_queued_job_and_conflict_after(client, factory):
    headers = token_headers(client, factory.researcher())
    job_id = client.post("/api/v1/jobs", json={"kind": "export", "params": {}}, headers=headers).json()["id"]
    resp = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=headers)
    assert resp.status_code == 200 and resp.json()["status"] == JobStatus.cancelled
    again = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=headers)
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    assert client.get("/api/v1/jobs/987654", headers=headers).status_code == 404


def test_cookie_cancel_needs_csrf(client, factory):
    researcher = factory.researcher()
    job_id = client.post(
        "/api/v1/jobs", json={"kind": "export", "params": {}}, headers=token_headers(client, researcher)
    ).json()["id"]
    csrf = browser_login(client, researcher)
    assert client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 403
    assert client.post(f"/api/v1/jobs/{job_id}/cancel", headers={"X-CSRF-Token": csrf}).status_code == 200


def test_role_guards(client, factory):
    labeler = token_headers(client, factory.labeler())
    body = {"kind": "export", "params": {}}
    assert client.get("/api/v1/jobs").status_code == 401
    assert client.post("/api/v1/jobs", json=body).status_code in (401, 403)  # CSRF check comes first
    assert client.post("/api/v1/jobs", json=body, headers=labeler).status_code == 403
    assert client.get("/api/v1/jobs", headers=labeler).status_code == 403
    assert client.get("/api/v1/jobs/1", headers=labeler).status_code == 403
    assert client.post("/api/v1/jobs/1/cancel", headers=labeler).status_code == 403
    assert client.get("/api/v1/schedules", headers=labeler).status_code == 403
    assert client.post("/api/v1/schedules", json={}, headers=labeler).status_code in (403, 422)
    assert client.get("/api/v1/models", headers=labeler).status_code == 403
    assert client.get("/api/v1/models").status_code == 401


def test_schedule_crud(client, factory):
    headers = token_headers(client, factory.researcher())
    body = {"name": "nightly-sample", "kind": "sample", "params": {"n_unlabeled": 20}, "cron": "0 3 * * *"}
    resp = client.post("/api/v1/schedules", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["next_run_at"] is not None and created["params"]["k"] == 4
    assert client.post("/api/v1/schedules", json=body, headers=headers).status_code == 409
    bad = client.post("/api/v1/schedules", json={**body, "name": "x", "cron": "every night"}, headers=headers)
    assert bad.status_code == 422 and "cron" in bad.json()["detail"]
    bad = client.post("/api/v1/schedules", json={**body, "name": "y", "params": {"k": 4}}, headers=headers)
    assert bad.status_code == 422 and "exactly one of prompt_ids" in bad.json()["detail"]
    patched = client.patch(
        f"/api/v1/schedules/{created['id']}", json={"enabled": False, "min_new_rankings": 50}, headers=headers
    )
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    assert patched.json()["min_new_rankings"] == 50 and patched.json()["cron"] == "0 3 * * *"
    assert client.delete(f"/api/v1/schedules/{created['id']}", headers=headers).status_code == 204
    assert client.get(f"/api/v1/schedules/{created['id']}", headers=headers).status_code == 404


def test_models_list_shape(client, factory, db):
    sft = ModelVersion(kind=ModelKind.sft, name="sft-a", path="/models/a", metrics={"loss": 1.5})
    db.add(sft)
    db.flush()
    db.add(ModelVersion(kind=ModelKind.reward, name="rm-a", path="/models/rm", parent_id=sft.id))
    db.flush()
    headers = token_headers(client, factory.researcher())
    models = client.get("/api/v1/models", headers=headers).json()
    mine = {m["name"]: m for m in models if m["name"] in ("sft-a", "rm-a")}
    assert set(mine["rm-a"]) == {"id", "kind", "name", "path", "parent_id", "job_id", "metrics", "created_at"}
    assert mine["rm-a"]["parent_id"] == sft.id and mine["sft-a"]["metrics"] == {"loss": 1.5}
    only_rm = client.get("/api/v1/models", params={"kind": "reward"}, headers=headers).json()
    assert {m["kind"] for m in only_rm} == {"reward"}


def test_train_reward_params_are_checked_when_queued(client, factory, db):
    headers = token_headers(client, factory.researcher())
    no_sft = client.post("/api/v1/jobs", json={"kind": "train_reward", "params": {}}, headers=headers)
    assert no_sft.status_code == 422 and "no SFT model is registered" in no_sft.json()["detail"]
    sft = ModelVersion(kind=ModelKind.sft, name="sft", path="/models/sft")
    reward = ModelVersion(kind=ModelKind.reward, name="rm", path="/models/rm")
    db.add_all([sft, reward])
    db.commit()  # the savepoint: a refused request rolls back its own, not this
    bad = [
        ({"sft_version": reward.id}, "params.sft_version: no SFT model"),
        ({"epochs": 0}, "epochs"),
        ({"learning_rate": -1}, "learning_rate"),
        ({"exclude_flags": ["nope"]}, "unknown flags"),
        ({"since": "2030-01-01", "until": "2020-01-01"}, "since must be before until"),
        ({"shared_prompt": True, "gradient_checkpointing": True}, "cannot be combined"),
        ({"batch": 8}, "batch"),
    ]
    for params, words in bad:
        resp = client.post("/api/v1/jobs", json={"kind": "train_reward", "params": params}, headers=headers)
        assert resp.status_code == 422 and words in resp.json()["detail"], (params, resp.text)
    ok = client.post("/api/v1/jobs", json={"kind": "train_reward", "params": {}}, headers=headers)
    assert ok.status_code == 201 and ok.json()["params"]["active_only"] is True, ok.text  # defaults recorded
    named = client.post(
        "/api/v1/jobs", json={"kind": "train_reward", "params": {"sft_version": sft.id}}, headers=headers
    )
    assert named.status_code == 201
