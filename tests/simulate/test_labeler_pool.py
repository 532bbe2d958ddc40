"""The labeler pool's shared budget: a take held by a labeler about to be refused must not end another's work.

CI once stopped `ranklab simulate --rankings 12` at 11: the labeler that had failed screening held the last take
while its 403 was on the way, and the careful labeler, asking at that moment, concluded the budget was spent.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from app.simulate.client import ApiError
from app.simulate.driver import CampaignConfig, GoldCache, SimLabeler, _LabelerPool
from app.simulate.gold import resolve_gold
from app.simulate.profiles import parse_mix
from app.simulate.shared import Budget


def _taker(budget: Budget, out: list[bool]) -> threading.Thread:
    thread = threading.Thread(target=lambda: out.append(budget.take()), daemon=True)
    thread.start()
    return thread


def test_the_last_take_waits_for_a_held_one_and_gets_it_when_it_is_given_back() -> None:
    budget = Budget(1)
    assert budget.take()
    got: list[bool] = []
    waiter = _taker(budget, got)
    waiter.join(timeout=0.3)
    assert waiter.is_alive() and got == []  # neither granted nor refused while the take is held
    budget.settle(used=False)
    waiter.join(timeout=5)
    assert got == [True]


def test_the_last_take_is_refused_once_the_held_one_is_used() -> None:
    budget = Budget(1)
    assert budget.take()
    got: list[bool] = []
    waiter = _taker(budget, got)
    budget.settle(used=True)
    waiter.join(timeout=5)
    assert got == [False]
    assert not budget.take()  # spent, nobody holding: refused at once


def test_an_unlimited_budget_never_waits() -> None:
    budget = Budget(None)
    assert all(budget.take() for _ in range(100))
    budget.settle(used=False)


class _FakeApi:
    """next_assignment/submit as the server answers them, without a server."""

    def __init__(self, name: str, *, refuse_after: threading.Event | None = None) -> None:
        self.username, self.refuse_after, self.submitted, self.next_id = name, refuse_after, 0, 0

    def next_assignment(self) -> dict[str, Any]:
        if self.refuse_after is not None:  # failed screening: 403, slowly, once the other labeler has ranked
            self.refuse_after.wait(timeout=10)
            time.sleep(0.3)
            request = httpx.Request("GET", "http://sim/api/v1/assignments/next")
            raise ApiError(httpx.Response(403, json={"detail": "screening failed"}, request=request))
        self.next_id += 1
        base = 10 * self.next_id
        return {
            "assignment_id": self.next_id,
            "prompt": {"messages": [{"role": "user", "content": "Say something."}]},
            "completions": [{"id": base + i, "text": t} for i, t in enumerate(["good day", "bad day", "a day"])],
        }

    def submit(self, assignment_id: int, body: dict[str, Any]) -> dict[str, Any]:
        self.submitted += 1
        return {"task_id": assignment_id}


def test_a_refused_labeler_holding_the_last_take_does_not_stop_the_one_with_work() -> None:
    ranked_once = threading.Event()
    gold = resolve_gold("sentiment")
    cfg = CampaignConfig(base_url="http://sim", admin_username="admin", admin_password="x", gold=gold,
                         mix=parse_mix("careful:1,random:1"), max_rankings=2, concurrency=2)  # fmt: skip
    careful_api = _FakeApi("careful")
    refused_api = _FakeApi("random", refuse_after=ranked_once)
    profiles = [p for p, _ in cfg.mix]
    labelers = [SimLabeler("random", profiles[1], 0, refused_api), SimLabeler("careful", profiles[0], 1, careful_api)]  # type: ignore[arg-type]
    pool = _LabelerPool(cfg, GoldCache(gold), on_ranking=lambda done: ranked_once.set())
    records = pool.run(labelers)
    # the careful labeler asked for its second ranking while the refused one held the last take: it waited, got it
    assert careful_api.submitted == 2
    assert [r.username for r in records] == ["careful", "careful"]
