"""A torchrun launch that fails says which rank failed and why: the failing rank's own traceback and stderr tail."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from trainer.common.launch import RanksFailed, launch, write_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("how", ["raise", "abort"])
def test_a_failed_rank_reports_its_own_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    (tmp_path / "pids").mkdir()
    spec = write_spec(tmp_path / "run" / "spec.json", how=how, pids=str(tmp_path / "pids"))
    with pytest.raises(RanksFailed) as failed:
        launch(spec, module="tests.trainer.failing_rank", processes=2, on_metrics=lambda step, metrics: None,
               should_stop=lambda: False, stop_file=tmp_path / "stop", poll_s=0.2)  # fmt: skip
    report = str(failed.value)
    assert report.startswith("torchrun with 2 processes failed.")
    # The failing rank's own stderr comes first, with its last words and its error.
    assert report.index("--- rank 1 stderr") < report.index("--- rank 0 stderr") < report.index("--- torchrun ---")
    rank1 = report.split("--- rank 1 stderr", 1)[1].split("--- rank 0 stderr", 1)[0]
    assert "rank 1: about to fail" in rank1
    if how == "raise":
        assert "Traceback" in rank1 and "ValueError: rank 1 cannot go on: the data ran out" in rank1
        assert 'failing_rank.py", line' in rank1
    else:
        assert "SIGABRT" in report.split("--- torchrun ---", 1)[1]  # torchrun's summary names the signal
    assert re.search(r"rank\s*:\s*1 \(local_rank: 1\)", report)  # torchrun's root cause: rank 1


class Cancelled(Exception):
    pass


def test_a_cancelled_job_stops_its_ranks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`should_stop` raising (the job was cancelled or taken from the worker) ends torchrun and every rank."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    pids = tmp_path / "pids"
    pids.mkdir()
    spec = write_spec(tmp_path / "run" / "spec.json", how="wait", pids=str(pids))

    def cancelled_once_both_ranks_run() -> bool:
        if len(list(pids.iterdir())) == 2:
            raise Cancelled("the job was cancelled")
        return False

    with pytest.raises(Cancelled):
        launch(spec, module="tests.trainer.failing_rank", processes=2, on_metrics=lambda step, metrics: None,
               should_stop=cancelled_once_both_ranks_run, stop_file=tmp_path / "stop", poll_s=0.2)  # fmt: skip
    for pid in (int(p.read_text()) for p in pids.iterdir()):
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
