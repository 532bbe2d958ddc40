"""Issue 21: the models page as a picture of learning. Two rounds are run through the public API (rounds started
with POST /api/v1/rounds, every ranking sent by labelers through the labeling API); the worker's part (claiming each
job, registering what it trained with its metrics, advancing the rounds) is done with the same service calls the
worker makes. Then the page's three charts must hold exactly those figures, and a screenshot is kept to look at."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.models import (
    Job,
    JobKind,
    JobStatus,
    ModelKind,
    ModelVersion,
    Role,
    TaskKind,
    UserStatus,
)
from app.services import jobs as job_service
from app.services import rounds as round_service
from app.services import users as user_service
from app.services.prompts import get_or_create_prompt
from app.services.tasks import NewCompletion, create_task
from tests.browser.a11y import assert_accessible
from tests.browser.conftest import login, only_new_tasks

pytestmark = pytest.mark.browser
PASSWORD = "browser-learning-pass"
SHOTS = Path(os.environ.get("RANKLAB_SCREENSHOTS", "/tmp/ranklab-screenshots"))


def _token(api: httpx.Client, username: str) -> dict[str, str]:
    got = api.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert got.status_code == 200, got.text
    return {"Authorization": f"Bearer {got.json()['access_token']}"}


def _rank_all(api: httpx.Client, headers: dict[str, str], *, prefer: int | None = None, flag: str = "") -> int:
    """The labeler ranks every task they are served: outputs of version `prefer` first (rated 6), others after
    (rated 3, flagged `flag`); returns how many rankings were sent."""
    sent = 0
    while True:
        got = api.get("/api/v1/labeling/next", headers=headers)
        if got.status_code == 204:
            return sent
        task = got.json()
        version = {c["id"]: c["text"].split("|")[0] for c in task["completions"]}
        ids = sorted(version, key=lambda cid: (version[cid] != f"v{prefer}", cid))
        ratings = {cid: 6 if version[cid] == f"v{prefer}" else 3 for cid in ids}
        flags = {cid: [flag] for cid in ids if flag and version[cid] != f"v{prefer}"}
        body = {
            "ranking": [[cid] for cid in ids],
            "ratings": ratings,
            "flags": flags,
            "idempotency_key": uuid.uuid4().hex,
        }
        url = f"/api/v1/labeling/assignments/{task['assignment_id']}/ranking"
        assert api.post(url, json=body, headers=headers).status_code == 201
        sent += 1


class Worker:
    """What a worker does for a round, through the services it calls (there is no HTTP API for workers)."""

    def __init__(self, live_server, tmp: Path) -> None:  # type: ignore[no-untyped-def]
        self.server, self.tmp = live_server, tmp

    def run(self, job_id: int, *, output: dict[str, Any] | None = None, tasks: list[list[tuple[int, str]]] = ()) -> int:
        """Claim the job, write its tasks ((version, text) outputs per prompt), register its model, finish it."""
        with self.server.session() as s:
            job = s.get(Job, job_id)
            claimed = job_service.claim_job(s, worker_id="learning-worker", device="cpu", kinds=[job.kind])
            assert claimed is not None and claimed.id == job_id
            kind = TaskKind.eval if job.kind == JobKind.evaluate else TaskKind.production
            for n, outputs in enumerate(tasks):
                prompt, _ = get_or_create_prompt(s, text=f"learning {job_id} prompt {n}")
                made = [NewCompletion(text=f"v{v}|{t}", model_version_id=v) for v, t in outputs]
                create_task(s, prompt=prompt, completions=made, kind=kind, job_id=job_id)
            model_id = None
            if output is not None:
                model = ModelVersion(path=str(self.tmp / f"m{job_id}"), job_id=job_id, **output)
                s.add(model)
                s.flush()
                model_id = model.id
            job_service.finish_job(s, job_id=job_id, worker_id="learning-worker", attempt=claimed.attempts,
                                   status=JobStatus.succeeded, output_model_id=model_id)  # fmt: skip
            round_service.advance_rounds(s)
            return model_id or 0

    def store_eval(self, policy: int, figures: dict[str, Any]) -> None:
        """What the evaluate job keeps on the policy version."""
        with self.server.session() as s:
            model = s.get(ModelVersion, policy)
            evals = {**model.metrics.get("eval", {}), str(figures["baseline_version"]): figures}
            model.metrics = {**model.metrics, "eval": evals}

    def advance(self) -> None:
        with self.server.session() as s:
            round_service.advance_rounds(s)


def _round(api, headers, worker, *, start: int, sft: int, rm: dict, policy: dict, ev: dict, baseline: int) -> tuple:
    made = api.post("/api/v1/rounds", headers=headers, json={
        "min_new_rankings": 2, "sample": {"n_unlabeled": 2, "k": 4},
        "evaluate": {"human_eval": True, "baseline_version": baseline},
    })  # fmt: skip
    assert made.status_code == 201, made.text
    body = made.json()
    worker.run(body["sample_job_id"], tasks=[[(start, f"answer {i}") for i in range(4)] for _ in range(2)])
    labelers = [_token(api, f"learning-lab{i}") for i in range(2)]
    for headers_ in labelers:
        _rank_all(api, headers_)
    worker.advance()
    state = api.get(f"/api/v1/rounds/{body['id']}", headers=headers).json()
    assert state["step"] == "reward", state
    rm_id = worker.run(state["reward_job_id"], output={"kind": ModelKind.reward, "name": rm["name"],
                                                       "parent_id": sft, "metrics": rm["metrics"]})  # fmt: skip
    state = api.get(f"/api/v1/rounds/{body['id']}", headers=headers).json()
    made_policy = {"kind": ModelKind.policy, "name": policy["name"], "parent_id": start, "metrics": policy["metrics"]}
    policy_id = worker.run(state["policy_job_id"], output=made_policy)
    state = api.get(f"/api/v1/rounds/{body['id']}", headers=headers).json()
    worker.store_eval(policy_id, {**ev, "baseline_version": baseline, "reward_version": rm_id,
                                  "job_id": state["evaluate_job_id"]})  # fmt: skip
    versus = [
        [(policy_id, f"new {i}") for i in range(2)] + [(baseline, f"old {i}") for i in range(2)] for _ in range(3)
    ]
    worker.run(state["evaluate_job_id"], tasks=versus)
    assert api.get(f"/api/v1/rounds/{body['id']}", headers=headers).json()["status"] == "succeeded"
    return rm_id, policy_id, labelers


def test_the_models_page_draws_two_rounds_of_learning(page, live_server, tmp_path):
    with live_server.session() as s:
        user_service.create_user(s, username="learning-res", password=PASSWORD, role=Role.researcher)
        for i in range(2):
            user_service.create_user(s, username=f"learning-lab{i}", password=PASSWORD, role=Role.labeler,
                                     status=UserStatus.active)  # fmt: skip
        sft = ModelVersion(kind=ModelKind.sft, name="learning-sft", path=str(tmp_path / "sft"))
        s.add(sft)
        s.flush()
        sft_id = sft.id
    worker = Worker(live_server, tmp_path)
    with httpx.Client(base_url=live_server.base_url, timeout=30) as api, only_new_tasks(live_server):
        headers = _token(api, "learning-res")
        rm1, p1, labelers = _round(
            api, headers, worker, start=sft_id, sft=sft_id, baseline=sft_id,
            rm={"name": "rm-round-1", "metrics": {"val_accuracy": 0.64, "val_pairs": 400,
                                                  "val_held_out_labeler_accuracy": 0.6}},
            policy={"name": "ppo-round-1", "metrics": {"kl": 1.1, "mean_score": 0.7}},
            ev={"kl": 0.8, "policy_reward": 0.9, "baseline_reward": 0.1,
                "best_of_n": [{"n": 1, "kl": 0.0, "reward": 0.1}, {"n": 4, "kl": 0.636, "reward": 0.7},
                              {"n": 16, "kl": 1.835, "reward": 1.2}]},
        )  # fmt: skip
        for lab in labelers:  # labelers prefer the round-1 policy, flag the SFT outputs as hallucinating
            _rank_all(api, lab, prefer=p1, flag="hallucination")
        rm2, p2, labelers = _round(
            api, headers, worker, start=p1, sft=sft_id, baseline=p1,
            rm={"name": "rm-round-2", "metrics": {"val_accuracy": 0.71, "val_pairs": 900,
                                                  "val_held_out_labeler_accuracy": 0.69,
                                                  "val_held_out_labeler_pairs": 200}},
            policy={"name": "dpo-round-2", "metrics": {"method": "dpo", "kl": 2.0}},
            ev={"kl": 0.9, "policy_reward": 1.5, "baseline_reward": 0.9},  # against its parent: not on the KL chart
        )  # fmt: skip
        # the same policy evaluated against its SFT ancestor (an evaluate job with the default baseline)
        worker.store_eval(p2, {"kl": 2.4, "policy_reward": 1.5, "baseline_reward": 0.1, "baseline_version": sft_id,
                               "reward_version": rm2, "job_id": 10**6})  # fmt: skip
        for lab in labelers:  # round 2's policy loses to its parent
            _rank_all(api, lab, prefer=p1, flag="fails_instruction")

    login(page, "learning-res", PASSWORD)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto("/models")
    page.wait_for_function("document.body.dataset.modelCharts === 'drawn'")
    chart = "id => Chart.getChart(document.getElementById(id)).data"

    reward_kl = page.evaluate(chart, "reward-kl-chart")
    by_label = {d["label"]: d["data"] for d in reward_kl["datasets"]}
    ppo = {p["version"]: (p["x"], p["y"]) for p in by_label["PPO policy versions"]}
    dpo = {p["version"]: (p["x"], p["y"]) for p in by_label["DPO policy versions"]}
    assert ppo[p1] == (0.8, 0.9) and dpo[p2] == (2.4, 1.5)  # each version at its evaluation's KL and RM score
    baselines = {(p["version"], p["y"]) for p in by_label["SFT baseline"]}
    assert (sft_id, 0.1) in baselines and not {v for v, _ in baselines} & {p1, p2}  # KL 0 is the SFT model only
    curve = by_label[f"best-of-n from v{sft_id} (evaluation of v{p1})"]
    assert [(p["n"], p["x"], p["y"]) for p in curve] == [(1, 0.0, 0.1), (4, 0.636, 0.7), (16, 1.835, 1.2)]

    accuracy = page.evaluate(chart, "rm-accuracy-chart")
    labels = accuracy["labels"]
    i1 = next(i for i, x in enumerate(labels) if x.startswith(f"v{rm1} (round "))
    i2 = next(i for i, x in enumerate(labels) if x.startswith(f"v{rm2} (round "))
    assert i1 < i2  # oldest first
    series = {d["label"]: d["data"] for d in accuracy["datasets"]}
    assert (series["validation"][i1], series["validation"][i2]) == (0.64, 0.71)
    assert (series["held-out labelers"][i1], series["held-out labelers"][i2]) == (0.6, 0.69)
    ranges = page.evaluate("Chart.getChart(document.getElementById('rm-accuracy-chart')).options.plugins.errorBars")
    for i, n in ((i1, 400), (i2, 900)):  # Wilson over the validation pairs
        low, high = ranges["ranges"]["validation"][i]
        assert low < series["validation"][i] < high and high - low < 2 * 1.96 * (0.25 / n) ** 0.5 + 0.01
    assert ranges["ranges"]["held-out labelers"][i1] is None  # round 1 stored no held-out pair count: no interval
    assert ranges["ranges"]["held-out labelers"][i2][0] < 0.69 < ranges["ranges"]["held-out labelers"][i2][1]
    assert int(page.get_attribute("#rm-accuracy-chart", "data-error-bars")) >= 3

    wins = page.evaluate(chart, "human-win-chart")
    rate = dict(zip(wins["labels"], wins["datasets"][0]["data"], strict=True))
    assert rate[f"v{p1} vs v{sft_id} (ppo)"] == 1.0 and rate[f"v{p2} vs v{p1} (dpo)"] == 0.0  # round 1's always won
    criteria = page.evaluate(chart, "human-criteria-chart")
    flags = {d["label"]: d["data"] for d in criteria["datasets"]}
    versions = criteria["labels"]
    at = {v.split(" ")[0]: i for i, v in enumerate(versions)}
    assert flags["hallucination"][at[f"v{sft_id}"]] == 100.0 and flags["hallucination"][at[f"v{p1}"]] == 0.0
    assert flags["fails the instruction"][at[f"v{p2}"]] == 100.0
    assert flags["mean rating (1–7)"][at[f"v{p1}"]] == 6.0 and flags["mean rating (1–7)"][at[f"v{p2}"]] == 3.0

    ids = page.locator("#policy-table tbody tr td:first-child").all_inner_texts()
    methods = dict(zip(ids, page.locator('#policy-table td[data-field="method"]').all_inner_texts(), strict=True))
    assert methods[str(p1)] == "ppo" and methods[str(p2)] == "dpo"
    assert_accessible(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#learning").screenshot(path=str(SHOTS / "models-learning.png"))
