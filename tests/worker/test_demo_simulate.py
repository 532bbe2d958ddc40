"""`ranklab demo --simulate`: the demo set-up, then the demo campaign (`ranklab simulate --demo`), wired up."""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import app.cli.simulate as simulate_cli
import app.config
import app.db
import trainer.cli as trainer_cli
import trainer.sampling.job
from app.cli import cli
from app.services import demo as demo_service
from app.simulate.profiles import parse_mix

trainer_cli.register_trainer_commands()


def test_demo_help_offers_simulate():
    result = CliRunner().invoke(cli, ["demo", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--simulate" in result.output and "--url" in result.output


class _Sessions:
    @contextmanager
    def begin(self) -> Any:
        yield None


def test_demo_simulate_runs_the_campaign_after_the_set_up(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(app.db, "get_sessionmaker", lambda: _Sessions())
    monkeypatch.setattr(demo_service, "create_demo_accounts", lambda s: calls.append("accounts") or [])
    monkeypatch.setattr(demo_service, "import_mtbench_prompts", lambda s: calls.append("prompts") or ([1], 1))
    model = SimpleNamespace(name="smollm2", id=1, path="/models/smollm2")
    monkeypatch.setattr(trainer.sampling.job, "ensure_default_sft_version", lambda s, data_dir: model)
    monkeypatch.setattr(trainer_cli, "run_demo_campaign", lambda url: calls.append(f"campaign {url}"))
    result = CliRunner().invoke(
        cli, ["demo", "--no-sample", "--simulate", "--url", "http://h:1"], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 0, result.output
    assert calls == ["accounts", "prompts", "campaign http://h:1"]
    assert "waiting up to 900 s for ranklab at http://h:1 and for 16 SmolLM2 tasks" in result.output


def test_demo_without_simulate_runs_no_campaign(monkeypatch):
    monkeypatch.setattr(app.db, "get_sessionmaker", lambda: _Sessions())
    monkeypatch.setattr(demo_service, "create_demo_accounts", lambda s: [])
    monkeypatch.setattr(demo_service, "import_mtbench_prompts", lambda s: ([1], 0))
    model = SimpleNamespace(name="smollm2", id=1, path="/models/smollm2")
    monkeypatch.setattr(trainer.sampling.job, "ensure_default_sft_version", lambda s, data_dir: model)
    monkeypatch.setattr(trainer_cli, "run_demo_campaign", lambda url: pytest.fail("no campaign without --simulate"))
    result = CliRunner().invoke(cli, ["demo", "--no-sample"])
    assert result.exit_code == 0, result.output
    assert "simulated labelers" not in result.output


def test_run_demo_campaign_is_simulate_demo(monkeypatch, tmp_path):
    """The campaign gets exactly `ranklab simulate --demo`'s settings: local admin, demo mix, long wait, the URL."""
    seen: dict[str, Any] = {}
    monkeypatch.setenv("RANKLAB_DATA_DIR", str(tmp_path))
    app.config.get_settings.cache_clear()
    monkeypatch.setattr(simulate_cli, "_local_admin", lambda run: ("sim-admin", "pw"))
    monkeypatch.setattr(simulate_cli, "_retire_local_admin", lambda name: seen.setdefault("retired", name))

    def stop(cfg: Any) -> Any:
        seen["cfg"] = cfg
        raise RuntimeError("stop here")

    monkeypatch.setattr(simulate_cli, "_progress_run", stop)
    try:
        with pytest.raises(typer.Exit) as exit_info:
            trainer_cli.run_demo_campaign("http://h:1")
    finally:
        app.config.get_settings.cache_clear()
    assert exit_info.value.exit_code == 1
    cfg = seen["cfg"]
    assert cfg.base_url == "http://h:1" and cfg.admin_username == "sim-admin"
    assert cfg.wait_for_tasks_s == simulate_cli.DEMO_WAIT_S
    assert [(p.name, n) for p, n in cfg.mix] == [(p.name, n) for p, n in parse_mix(simulate_cli.DEMO_MIX)]
    assert seen["retired"] == "sim-admin"
