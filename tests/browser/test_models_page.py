"""The models page in Chromium: reward versions side by side (table and charts) and the train_reward form."""

from __future__ import annotations

import pytest

from app.models import ModelKind, ModelVersion, Role
from app.services import users as user_service
from tests.browser.conftest import login

pytestmark = pytest.mark.browser
PASSWORD = "browser-models-pass"


def _calibration(observed: float) -> list[dict[str, float]]:
    return [
        {"lower": 0.5, "upper": 0.75, "count": 10, "predicted": 0.6, "observed": observed},
        {"lower": 0.75, "upper": 1.0, "count": 5, "predicted": 0.85, "observed": 0.8},
    ]


def test_reward_versions_side_by_side_and_training_from_the_page(page, live_server, tmp_path):
    with live_server.session() as s:
        user_service.create_user(s, username="models-researcher", password=PASSWORD, role=Role.researcher)
        sft = ModelVersion(kind=ModelKind.sft, name="models-page-sft", path=str(tmp_path / "sft"))
        s.add(sft)
        s.flush()
        ids = []
        for n, accuracy in enumerate((0.61, 0.734)):
            metrics = {"val_accuracy": accuracy, "val_log_loss": 0.66 - n / 10, "val_pairs": 120.0 + n,
                       "val_accuracy_k4": accuracy - 0.01, "val_accuracy_k9": accuracy + 0.02,
                       "calibration": _calibration(0.55 + n / 10), "train_tasks": 40 + n}  # fmt: skip
            rm = ModelVersion(kind=ModelKind.reward, name=f"rm-page-{n}", path=str(tmp_path / f"rm{n}"),
                              parent_id=sft.id, metrics=metrics)  # fmt: skip
            s.add(rm)
            s.flush()
            ids.append(rm.id)
    login(page, "models-researcher", PASSWORD)
    page.goto("/models")
    newest = page.locator(f"#reward-table tr[data-reward-id='{ids[1]}']")
    assert "0.734" in newest.inner_text() and "121" in newest.inner_text()
    assert "0.610" in page.locator(f"#reward-table tr[data-reward-id='{ids[0]}']").inner_text()
    # both charts are drawn from the versions' evaluations: accuracy by version and K, calibration of the newest
    page.wait_for_function("Chart.getChart(document.getElementById('reward-accuracy-chart')) !== undefined")
    labels = page.evaluate("Chart.getChart(document.getElementById('reward-accuracy-chart')).data.labels")
    assert labels[-2:] == [f"v{ids[0]}", f"v{ids[1]}"]
    series = page.evaluate(
        "Chart.getChart(document.getElementById('reward-accuracy-chart')).data.datasets.map(d => d.label)"
    )
    assert series == ["all pairs", "K = 4", "K = 9"]
    points = page.evaluate("Chart.getChart(document.getElementById('reward-calibration-chart')).data.datasets[0].data")
    assert points == [{"x": 0.6, "y": 0.65}, {"x": 0.85, "y": 0.8}]
    assert "calibration" not in page.inner_text("#models-table")  # the bins are charted, not dumped as text

    # the train_reward form: one field per param from its JSON Schema, each at its default, with its help text
    assert page.input_value("#param-rm-epochs") == "1" and page.is_checked("#param-rm-active_only")
    assert "Passes over the training rankings" in page.inner_text("#param-rm-epochs-help")
    # checked before it is sent: the browser refuses epochs 0 (minimum 1) and nothing is queued
    page.fill("#param-rm-epochs", "0")
    page.click("#queue-job button[type=submit]")
    assert page.evaluate("document.getElementById('param-rm-epochs').validity.rangeUnderflow")
    assert page.url.endswith("/models")
    # the raw JSON is there for power users; the server's 422 names the param
    page.click("#queue-job details.raw-json summary")
    page.fill("#queue-job textarea[name=params]", '{"epochs": 0}')
    page.click("#queue-job button[type=submit]")
    page.wait_for_selector("#queue-error:has-text('epochs')")
    page.fill("#queue-job textarea[name=params]", '{"nope": 1}')
    page.click("#queue-job details.raw-json summary")  # JSON the fields cannot hold keeps the editor open and says why
    assert page.evaluate("document.querySelector('#queue-job details.raw-json').open")
    assert "unknown params: nope" in page.inner_text("#queue-error")
    page.fill("#queue-job textarea[name=params]", '{"epochs": 0}')
    page.fill("#param-rm-epochs", "3")  # typed behind the editor: closing it puts the JSON into the fields
    page.click("#queue-job details.raw-json summary")
    page.wait_for_function("document.getElementById('param-rm-epochs').value === '0'")
    page.fill("#param-rm-epochs", "2")
    page.fill("#param-rm-sft_version", str(sft.id))
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/api/v1/jobs")) as sent:
        page.click("#queue-job button[type=submit]")
    assert sent.value.post_data_json == {"kind": "train_reward", "params": {"sft_version": sft.id, "epochs": 2}}
    page.wait_for_url("**/jobs/*")
    assert "train_reward" in page.inner_text("body")


def test_rounds_policies_and_human_evaluation_on_the_page(page, live_server, tmp_path):
    from app.models import Round, RoundStatus, RoundStep, TaskKind, TaskStatus
    from app.services.prompts import get_or_create_prompt
    from app.services.tasks import NewCompletion, create_task
    from tests.agreement.helpers import add_ranking
    from tests.factories import Factory

    with live_server.session() as s:
        user_service.create_user(s, username="rounds-researcher", password=PASSWORD, role=Role.researcher)
        sft = ModelVersion(kind=ModelKind.sft, name="rounds-sft", path=str(tmp_path / "sft"))
        s.add(sft)
        s.flush()
        rm = ModelVersion(kind=ModelKind.reward, name="rounds-rm", path=str(tmp_path / "rm"), parent_id=sft.id,
                          metrics={"val_accuracy": 0.7})  # fmt: skip
        s.add(rm)
        s.flush()
        evaluation = {"rm_win_rate": 0.8, "reward_gain": 0.5, "kl": 1.25, "alignment_tax": 1.02,
                      "policy_reward": 0.4, "baseline_version": sft.id, "job_id": 9}  # fmt: skip
        policy = ModelVersion(kind=ModelKind.policy, name="rounds-ppo", path=str(tmp_path / "ppo"), parent_id=sft.id,
                              metrics={"reward_version": rm.id, "mean_score": 0.45, "kl": 1.5,
                                       "eval": {str(sft.id): evaluation}})  # fmt: skip
        s.add(policy)
        s.flush()
        s.add(Round(status=RoundStatus.succeeded, step=RoundStep.done, start_policy_id=sft.id,
                    reward_model_id=rm.id, policy_model_id=policy.id))  # fmt: skip
        labeler = Factory(s).labeler()
        for n in range(3):  # labelers prefer the policy's outputs in 3 eval tasks
            prompt, _ = get_or_create_prompt(s, text=f"models page eval prompt {n}")
            outputs = [NewCompletion(text=f"{n} ppo {i}", model_version_id=policy.id) for i in range(2)]
            outputs += [NewCompletion(text=f"{n} sft {i}", model_version_id=sft.id) for i in range(2)]
            task = create_task(s, prompt=prompt, completions=outputs, kind=TaskKind.eval)
            add_ranking(s, task=task, user=labeler, order=[[0], [1], [2], [3]])
            task.status = TaskStatus.complete  # ranked: never served to the other browser tests' labelers
    login(page, "rounds-researcher", PASSWORD)
    page.goto("/models")
    row = page.locator(f"#policy-table tr[data-policy-id='{policy.id}']").inner_text()
    assert "0.800" in row and "1.020" in row and "1.00 [" in row and "(n=12)" in row
    round_row = page.locator("#rounds-table tbody tr").first.inner_text()
    assert "succeeded" in round_row and "0.700" in round_row and "0.400" in round_row and "1.250" in round_row
    ratings = page.inner_text("#ratings-table")
    assert ratings.index("rounds-ppo") < ratings.index("rounds-sft")  # the preferred version is rated higher
    page.click("#start-round details.raw-json summary")
    page.fill("#start-round textarea[name=params]", '{"policy": {"reward_version": 3}}')
    page.click("#start-round button[type=submit]")
    page.wait_for_selector("#round-error:has-text('set by the round')")
    page.click("#start-round details.raw-json summary")
    page.wait_for_selector("#start-round details.raw-json:not([open])")
    page.fill("#param-round-min_new_rankings", "4")
    page.click("#start-round details.param-section:has(#param-round-sample-n_unlabeled) summary")
    page.fill("#param-round-sample-n_unlabeled", "2")
    page.click("#start-round button[type=submit]")
    page.wait_for_selector("#rounds-table tbody tr:has-text('running')")
