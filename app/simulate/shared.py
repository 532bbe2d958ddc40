"""What the campaign's labeler threads share: the rankings budget and a cached yes/no question to the server."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class Budget:
    """Rankings left to hand out (None: unlimited), shared by the labeler threads.

    A take is held until it is settled: used (a ranking was stored) or given back (no work, 403, an error). While
    other labelers hold the last takes, a labeler waits for them to settle instead of concluding that the budget is
    spent: a labeler that failed screening holds the last take only until its 403 comes back, and the labeler that
    still has work must get it then.
    """

    def __init__(self, total: int | None) -> None:
        self.left, self.held = total, 0
        self.cond = threading.Condition()

    def take(self) -> bool:
        with self.cond:
            if self.left is None:
                return True
            while self.left <= 0 and self.held > 0:
                self.cond.wait()
            if self.left <= 0:
                return False
            self.left -= 1
            self.held += 1
            return True

    def settle(self, *, used: bool) -> None:
        with self.cond:
            if self.left is None:
                return
            self.held -= 1
            if not used:
                self.left += 1
            self.cond.notify_all()


class Cached:
    """A yes/no question to the server, asked at most every `every_s` seconds by all threads together."""

    def __init__(self, ask: Callable[[], bool], *, every_s: float) -> None:
        self.ask, self.every_s, self.lock = ask, every_s, threading.Lock()
        self.answer, self.at = False, -math.inf

    def __call__(self) -> bool:
        with self.lock:
            if time.monotonic() - self.at >= self.every_s:
                self.answer, self.at = self.ask(), time.monotonic()
            return self.answer
