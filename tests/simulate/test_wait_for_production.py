"""The campaign waits for enough production tasks to build its screening set, past its timeout while a sampling job
is still making them (the demo on a slow machine used to start with a short screening set and stall)."""

from __future__ import annotations

from app.simulate.driver import wait_for_production


class SlowSampling:
    """A server whose sampling job adds one task per look and ends once it has made `total`."""

    def __init__(self, total: int) -> None:
        self.made, self.total = 0, total

    def count_tasks(self, *, kind: str | None = None) -> int:
        self.made = min(self.made + 1, self.total)
        return self.made

    def sampling_in_progress(self) -> bool:
        return self.made < self.total


def test_keeps_waiting_while_sampling_runs():
    server = SlowSampling(total=12)
    assert wait_for_production(server, 10, timeout_s=0.0, every_s=0.0)  # type: ignore[arg-type]
    assert server.made >= 10


def test_gives_up_when_sampling_has_ended_short():
    server = SlowSampling(total=3)
    assert not wait_for_production(server, 10, timeout_s=0.0, every_s=0.0)  # type: ignore[arg-type]
    assert server.made == 3
