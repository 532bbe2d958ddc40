"""`ranklab simulate` end to end against the live test server: synthetic tasks, a campaign, the JSON report."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from app.cli import cli
from trainer.cli import install_reward_model_gold, register_trainer_commands

register_trainer_commands()
install_reward_model_gold()


def test_simulate_command_runs_a_campaign_and_writes_the_report(sim_server, tmp_path, monkeypatch):
    import app.cli.simulate as simulate_cli

    monkeypatch.setattr(simulate_cli, "LOG_EVERY_S", 0.0)  # the output is no terminal: progress comes as lines
    report_path = tmp_path / "report.json"
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--url", sim_server.base_url,
            "--admin", sim_server.admin,
            "--synthetic-tasks", "8",
            "--screening-tasks", "5",
            "--gold-tasks", "1",
            "--labelers", "careful:1,random:1",
            "--rankings", "12",
            "--demonstrations", "3",
            "--seed", "4",
            "--run-name", "cli",
            "--report", str(report_path),
        ],
        env={"RANKLAB_ADMIN_PASSWORD": sim_server.password},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["campaign"]["labeler_rankings"] == 12  # stops at --rankings
    assert report["campaign"]["tasks_made"] == {"screening": 5, "gold": 1}
    assert [p["profile"] for p in report["profiles"]] == ["careful", "random"]
    assert "careful" in result.output and "rankings" in result.output
    # the simulated demonstrator wrote 3 answers from the tasks' samples, edited toward the gold, and all passed review
    demos = report["demonstrations"]
    assert (demos["tasks"], demos["written"], demos["rewritten"], demos["accepted"]) == (3, 3, 3, 3)
    assert demos["gold_mean"] > demos["best_sample_gold_mean"] >= demos["sample_gold_mean"]
    assert "demonstrations: 3 written" in result.output
    progress = [line for line in result.output.splitlines() if line.startswith("simulated rankings: ")]
    assert progress and progress[-1].startswith("simulated rankings: 12 of 12 in "), result.output


def test_simulate_refuses_an_unknown_profile(sim_server):
    result = CliRunner().invoke(
        cli, ["simulate", "--url", sim_server.base_url, "--admin", "x", "--labelers", "sloppy:1"]
    )
    assert result.exit_code != 0
    assert "unknown labeler profile" in result.output


@pytest.fixture
def data_dir_env(tmp_path, monkeypatch):
    """RANKLAB_DATA_DIR for this test's CLI calls (settings re-read now and again after the test)."""
    import app.config

    monkeypatch.setenv("RANKLAB_DATA_DIR", str(tmp_path / "data"))
    app.config.get_settings.cache_clear()
    yield tmp_path / "data"
    app.config.get_settings.cache_clear()


def test_simulate_only_policy_takes_best_of_and_sampling_options(sim_server, tiny_model_dir, tmp_path, data_dir_env):
    from app.models import ModelKind, Split
    from app.services import model_registry
    from app.services.prompts import get_or_create_prompt

    with sim_server.server.session() as s:
        sft = model_registry.register_model(s, kind=ModelKind.sft, name="tiny", path=tiny_model_dir)
        same = model_registry.register_model(s, kind=ModelKind.policy, name="same", path=tiny_model_dir,
                                             parent_id=sft.id)  # fmt: skip
        get_or_create_prompt(s, text="a held-out prompt", split=Split.eval)
        version = same.id
    report_path = tmp_path / "policy.json"
    result = CliRunner().invoke(
        cli,
        [
            "simulate", "--url", sim_server.base_url, "--admin", sim_server.admin, "--gold", "length:3",
            "--only-policy", "--policy-version", str(version), "--policy-prompts", "1", "--policy-samples", "2",
            "--best-of", "1,2,4,16", "--policy-max-new-tokens", "5", "--policy-batch-size", "7",
            "--report", str(report_path),
        ],
        env={"RANKLAB_ADMIN_PASSWORD": sim_server.password},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    policy = json.loads(report_path.read_text())["policy"]
    assert [b["n"] for b in policy["best_of_n"]] == [1, 2, 4, 16] and policy["policy_kl"] == 0.0
    # the SFT samples went to the data folder's cache, for the next policy measured against the same SFT model
    (cached,) = (data_dir_env / "cache" / "sft-samples").glob("*.json")
    assert len(json.loads(cached.read_text())) == 16
    bad = CliRunner().invoke(
        cli, ["simulate", "--url", sim_server.base_url, "--admin", "x", "--only-policy", "--policy-version", "2",
              "--best-of", "0,2"],
    )  # fmt: skip
    assert bad.exit_code != 0 and "--best-of" in bad.output
