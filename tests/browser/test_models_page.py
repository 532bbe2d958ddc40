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

    params = page.input_value("#queue-job textarea[name=params]")
    assert '"active_only": true' in params and '"epochs": 1' in params  # every param at its default
    page.fill("#queue-job textarea[name=params]", '{"epochs": 0}')
    page.click("#queue-job button[type=submit]")
    page.wait_for_selector("#queue-error:has-text('epochs')")
    page.fill("#queue-job textarea[name=params]", f'{{"sft_version": {sft.id}, "epochs": 2}}')
    page.click("#queue-job button[type=submit]")
    page.wait_for_url("**/jobs/*")
    assert "train_reward" in page.inner_text("body")
