"""A tiny campaign on the test server: the gate, the position-bias column and agreement as the temperatures predict."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.simulate.driver import CampaignConfig, run_campaign
from app.simulate.gold import resolve_gold
from app.simulate.profiles import parse_mix
from app.simulate.report import build_report, fetch_product_view
from app.simulate.synthetic import synthetic_tasks
from tests.simulate.conftest import SCREENING_SET_SIZE, SimServer, sim_server_on


def import_tasks(sim: SimServer, n: int, *, k: int = 5, overlap: int = 2) -> None:
    with httpx.Client(base_url=sim.base_url) as http:
        token = http.post("/api/v1/auth/token", data={"username": sim.admin, "password": sim.password}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        for body in synthetic_tasks(n, k=k, seed=3, overlap=overlap):
            assert http.post("/api/v1/tasks", json=body, headers=headers).status_code == 201


@pytest.fixture(scope="module")
def report(migrated_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One campaign for the module's tests (they only read its report)."""
    with sim_server_on(migrated_db, tmp_path_factory.mktemp("campaign")) as sim:
        yield run_small_campaign(sim)


def run_small_campaign(sim_server: SimServer) -> dict:
    import_tasks(sim_server, 14)
    cfg = CampaignConfig(
        base_url=sim_server.base_url,
        admin_username=sim_server.admin,
        admin_password=sim_server.password,
        gold=resolve_gold("sentiment"),
        mix=parse_mix("careful:2,random:2,first-shown:1"),
        screening_tasks=SCREENING_SET_SIZE,
        gold_tasks=2,
        concurrency=3,
        seed=11,
        run_name="t",
    )
    campaign = run_campaign(cfg)
    view = fetch_product_view(sim_server.base_url, username=sim_server.admin, password=sim_server.password)
    return build_report(campaign, view, cutoffs=(0.75, 0.75))


def by_profile(report: dict) -> dict[str, dict]:
    return {p["profile"]: p for p in report["profiles"]}


def test_careful_labelers_end_active_and_random_ones_do_not(report):
    profiles = by_profile(report)
    assert [d["status"] for d in profiles["careful"]["labelers_detail"]] == ["active", "active"]
    assert all(d["status"] == "pending_review" for d in profiles["random"]["labelers_detail"])
    assert profiles["careful"]["gate"]["should_pass"] is True
    assert profiles["random"]["gate"]["should_pass"] is False
    # active careful labelers went on to production work; the others stopped at the gate (403)
    assert profiles["careful"]["rankings"] > 2 * SCREENING_SET_SIZE
    assert profiles["random"]["rankings"] == 2 * SCREENING_SET_SIZE


def test_first_shown_bias_shows_in_the_position_bias_column(report):
    profiles = by_profile(report)
    first = profiles["first-shown"]
    assert first["position_bias"] == 1.0  # always put the first output shown best
    assert first["position_chance"] == pytest.approx(1 / 5)
    assert profiles["careful"]["position_bias"] < 0.8


def test_agreement_with_gold_is_within_tolerance_of_what_the_temperature_predicts(report):
    for p in report["profiles"]:
        gold = p["agreement_with_gold"]
        assert gold["tolerance"] >= 0.01
        assert abs(gold["measured"] - gold["expected"]) <= gold["tolerance"], p["profile"]
        assert gold["within_tolerance"] is True
    careful = by_profile(report)["careful"]["agreement_with_gold"]
    assert careful["method"] == "exact" and careful["expected"] > 0.85


def test_the_product_measures_the_same_agreement_with_researchers_as_the_simulator(report):
    for p in report["profiles"]:
        measured = p["agreement_with_researchers"]
        assert measured["n_gold"] >= SCREENING_SET_SIZE * p["labelers"]
        assert measured["product"] == pytest.approx(measured["simulator"], abs=1e-9), p["profile"]
        assert p["max_abs_diff_product_vs_simulator"] == pytest.approx(0.0, abs=1e-12), p["profile"]
    assert report["campaign"]["researcher_rankings"] == SCREENING_SET_SIZE + 2


def test_wait_for_tasks_starts_once_a_sampling_job_has_made_enough_tasks(sim_server):
    import threading
    import time

    def sampler() -> None:  # stands in for the worker: tasks appear a moment after the campaign starts
        time.sleep(1.0)
        import_tasks(sim_server, 6, k=4, overlap=1)

    thread = threading.Thread(target=sampler)
    thread.start()
    cfg = CampaignConfig(
        base_url=sim_server.base_url,
        admin_username=sim_server.admin,
        admin_password=sim_server.password,
        gold=resolve_gold("length:12"),
        mix=parse_mix("careful:1"),
        screening_tasks=SCREENING_SET_SIZE,
        gold_tasks=0,
        wait_for_tasks_s=20,
        run_name="w",
    )
    campaign = run_campaign(cfg)
    thread.join()
    assert campaign.tasks_made == {"screening": SCREENING_SET_SIZE, "gold": 0}
    assert len(campaign.records) == SCREENING_SET_SIZE + 6  # the screening copies, then every production task
