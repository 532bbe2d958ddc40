"""The campaign: accounts, screening and gold tasks, a simulated researcher, then labelers ranking concurrently.

Everything goes through the public API (`app.simulate.client.Api`), so the screening gate, hidden gold checks,
leases and overlap treat the simulated labelers exactly as they treat people.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.simulate import profiles as pr
from app.simulate.client import Api, ApiError, wait_for_server, wait_until
from app.simulate.demonstrations import DemonstrationRun, demonstrator_account, run_demonstrations
from app.simulate.gold import GoldPreference, Prompt
from app.simulate.shared import Budget, Cached

logger = logging.getLogger(__name__)


@dataclass
class CampaignConfig:
    """What `ranklab simulate` runs."""

    base_url: str
    """The running ranklab, e.g. http://127.0.0.1:8000."""
    admin_username: str
    """An admin account: creates the simulated accounts."""
    admin_password: str = field(repr=False)
    """Its password (never logged)."""
    gold: GoldPreference
    """The known preference everyone ranks by (researchers exactly, labelers through their profile)."""
    mix: list[tuple[pr.Profile, int]]
    """Labeler profiles and how many of each."""
    max_rankings: int | None = None
    """Stop after this many labeler rankings (None: when every labeler's queue is empty)."""
    screening_tasks: int = 10
    """Make sure this many screening tasks exist: missing ones are copies of unranked production tasks."""
    gold_tasks: int = 5
    """Make sure this many hidden gold tasks exist: missing ones are unranked production tasks, promoted."""
    concurrency: int = 4
    """Labelers ranking at the same time (threads)."""
    seed: int = 0
    """Seeds every labeler's choices (the server's display shuffle is its own)."""
    run_name: str = ""
    """Prefix of the accounts made (default: sim-<random>), so campaigns on one server never collide."""
    wait_for_tasks_s: float = 0.0
    """Wait up to this long for the server and for enough production tasks (a sampling job running), and keep
    polling an empty queue while a sampling job is queued or running, up to this long without a new task;
    0: stop as soon as the queue is empty."""
    poll_s: float = 0.2
    """Pause between looks at an empty queue."""
    demonstrations: int = 0
    """After the rankings, a simulated researcher makes this many demonstration tasks and a demonstrator writes them
    (the gold-best sample edited toward the gold); the researcher reviews them (app.simulate.demonstrations)."""
    demonstration_starting_points: int = 4
    """Sampled outputs each demonstration task offers to start from."""


@dataclass
class SimLabeler:
    """One simulated account."""

    username: str
    profile: pr.Profile
    index: int
    api: Api
    idle_since: float | None = None
    idle_looks: int = 0


@dataclass
class RankingRecord:
    """One submitted ranking with what the simulator knows: gold scores, items in fixed (sorted id) order."""

    username: str
    profile: str
    task_id: int
    completion_ids: list[int]
    scores: np.ndarray  # (K,)
    lengths: np.ndarray  # (K,)
    first_shown: int
    ranks: np.ndarray  # (K,) as submitted
    flags: list[list[str]]

    def task_scores(self) -> pr.TaskScores:
        return pr.TaskScores(self.scores, self.lengths, self.first_shown)


@dataclass
class Campaign:
    """What a campaign did: who, what they ranked, how long it took."""

    config: CampaignConfig
    labelers: list[SimLabeler]
    researcher: str
    records: list[RankingRecord]
    researcher_records: list[RankingRecord]
    tasks_made: dict[str, int]
    seconds: float
    demonstrations: DemonstrationRun | None = None


class GoldCache:
    """Gold scores by completion id (scoring with a model is the slow part; each output is scored once)."""

    def __init__(self, gold: GoldPreference) -> None:
        self.gold = gold
        self.scores: dict[int, float] = {}
        self.lock = threading.Lock()

    def task(self, prompt: Prompt, texts: dict[int, str], ids: list[int]) -> np.ndarray:
        # one scorer call at a time: a model gold is not meant to be run from several threads at once
        with self.lock:
            todo = [i for i in ids if i not in self.scores]
            if todo:
                fresh = self.gold.scores(prompt, [texts[i] for i in todo])
                self.scores.update(zip(todo, fresh.tolist(), strict=True))
            return np.array([self.scores[i] for i in ids], dtype=np.float64)


def answer(
    api: Api, assignment: dict[str, Any], *, judge: Callable[..., pr.Judgement], cache: GoldCache, who: str, key: str
) -> RankingRecord:
    """Rank one assignment with `judge(scores=, lengths=, first_shown=)` and submit it."""
    shown = [c["id"] for c in assignment["completions"]]
    texts = {c["id"]: c["text"] for c in assignment["completions"]}
    ids = sorted(shown)
    scores = cache.task(assignment["prompt"]["messages"], texts, ids)
    lengths = np.array([len(texts[i]) for i in ids], dtype=np.int64)
    j = judge(scores=scores, lengths=lengths, first_shown=ids.index(shown[0]))
    body = {
        "ranking": pr.buckets(j.ranks.tolist(), ids),
        "ratings": {str(i): r for i, r in zip(ids, j.ratings, strict=True)},
        "flags": {str(i): f for i, f in zip(ids, j.flags, strict=True) if f},
        "note": "",
        "idempotency_key": key,
    }
    stored = api.submit(assignment["assignment_id"], body)
    return RankingRecord(who, "", stored["task_id"], ids, scores, lengths, ids.index(shown[0]), j.ranks, j.flags)


def wait_for_production(admin: Api, need: int, *, timeout_s: float, every_s: float = 2.0) -> bool:
    """Wait up to `timeout_s` for `need` production tasks, and past it for as long as a sampling job is still
    making them: a screening set short of its size would leave every simulated labeler stuck in screening."""
    logger.info("waiting up to %.0f s for %d production tasks", timeout_s, need)
    enough = lambda: admin.count_tasks(kind="production") >= need  # noqa: E731
    if wait_until(enough, timeout_s=timeout_s, every_s=every_s):
        return True
    while admin.sampling_in_progress():
        logger.info("a sampling job is still running: waiting for %d production tasks (%d so far)", need,
                    admin.count_tasks(kind="production"))  # fmt: skip
        if wait_until(enough, timeout_s=30 * every_s, every_s=every_s):
            return True
    return enough()


def prepare_tasks(admin: Api, cfg: CampaignConfig) -> dict[str, int]:
    """Wait for production tasks if asked, then top up screening (copies) and hidden gold (promotions)."""
    missing_screening = max(0, cfg.screening_tasks - admin.count_tasks(kind="screening"))
    missing_gold = max(0, cfg.gold_tasks - admin.count_tasks(kind="gold"))
    need = missing_screening + missing_gold + 1
    if cfg.wait_for_tasks_s > 0:
        wait_for_production(admin, need, timeout_s=cfg.wait_for_tasks_s)
    fresh = [t for t in admin.tasks(kind="production") if t["rankings"] == 0 and t["slots_taken"] == 0]
    fresh.reverse()  # oldest first: the newest are what labelers are served first
    made = {"screening": 0, "gold": 0}
    for t in fresh[:missing_screening]:
        detail = admin.task(t["id"])
        texts = [c["text"] for c in detail["completions"]]
        admin.create_task({"prompt": t["prompt_id"], "completions": texts, "kind": "screening", "model": "copy"})
        made["screening"] += 1
    for t in fresh[missing_screening : missing_screening + missing_gold]:
        admin.promote_gold(t["id"])
        made["gold"] += 1
    return made


def create_accounts(admin: Api, cfg: CampaignConfig, run: str) -> tuple[Api, list[SimLabeler]]:
    """A researcher and the labelers (in screening), logged in; passwords live only in this process."""
    researcher = _account(admin, cfg, f"{run}-researcher", "researcher")
    labelers: list[SimLabeler] = []
    for profile, count in cfg.mix:
        for n in range(1, count + 1):
            api = _account(admin, cfg, f"{run}-{profile.name}-{n}", "labeler")
            labelers.append(SimLabeler(api.username, profile, len(labelers), api))
    return researcher, labelers


def _account(admin: Api, cfg: CampaignConfig, username: str, role: str) -> Api:
    password = secrets.token_urlsafe(18)
    admin.create_user(username=username, password=password, role=role)
    return Api(cfg.base_url).login(username, password)


def rank_as_researcher(api: Api, cfg: CampaignConfig, cache: GoldCache) -> list[RankingRecord]:
    """The researcher ranks every gold and screening task it is served, by the gold itself."""
    records = []
    while (a := api.next_assignment()) is not None:

        def by_gold(*, scores: np.ndarray, lengths: np.ndarray, first_shown: int) -> pr.Judgement:
            return pr.researcher_judgement(cfg.gold, scores)

        key = f"{api.username}-{a['assignment_id']}"
        records.append(answer(api, a, judge=by_gold, cache=cache, who=api.username, key=key))
    return records


IDLE_LOOKS = 4
"""Empty answers in a row before a labeler decides the queue is empty."""


class _LabelerPool:
    """Labelers take turns on `concurrency` threads: one ranking per turn, until nobody has work left."""

    def __init__(
        self,
        cfg: CampaignConfig,
        cache: GoldCache,
        on_ranking: Callable[[int], None] | None,
        sampling: Callable[[], bool] | None = None,
    ) -> None:
        self.cfg, self.cache, self.on_ranking = cfg, cache, on_ranking
        self.sampling = Cached(sampling, every_s=5.0) if sampling else None
        self.turns: queue.Queue[SimLabeler] = queue.Queue()
        self.records: list[RankingRecord] = []
        self.lock = threading.Lock()
        self.budget = Budget(cfg.max_rankings)
        self.stop = threading.Event()
        self.active = 0

    def run(self, labelers: list[SimLabeler]) -> list[RankingRecord]:
        for lab in labelers:
            self.turns.put(lab)
        self.active = len(labelers)
        with ThreadPoolExecutor(max_workers=max(1, min(self.cfg.concurrency, len(labelers)))) as pool:
            futures = [pool.submit(self._work) for _ in range(max(1, min(self.cfg.concurrency, len(labelers))))]
            for f in futures:
                f.result()  # re-raises a thread's error
        return self.records

    def _work(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    lab = self.turns.get(timeout=0.1)
                except queue.Empty:
                    with self.lock:
                        if self.active == 0:
                            return
                    continue
                if self._turn(lab):
                    self.turns.put(lab)
                else:
                    with self.lock:
                        self.active -= 1
        except BaseException:
            self.stop.set()
            raise

    def _turn(self, lab: SimLabeler) -> bool:
        """One next + submit; False once this labeler is done (no work, not allowed, or the budget is spent)."""
        if not self.budget.take():
            return False
        outcome = "failed"
        try:
            outcome = self._rank(lab)
        finally:
            self.budget.settle(used=outcome == "ranked")
        if outcome == "idle":  # the take is back in the budget while this labeler waits
            return self._idle(lab)
        return outcome == "ranked"

    def _rank(self, lab: SimLabeler) -> str:
        """ "ranked" (one ranking stored), "idle" (no task now) or "refused" (403: this labeler is done)."""
        try:
            assignment = lab.api.next_assignment()
        except ApiError as exc:
            if exc.status_code == 403:  # pending review, rejected or paused: the gate has spoken
                return "refused"
            raise
        if assignment is None:
            return "idle"
        lab.idle_since = None
        rng = np.random.default_rng([self.cfg.seed, lab.index, min(c["id"] for c in assignment["completions"])])

        def by_profile(*, scores: np.ndarray, lengths: np.ndarray, first_shown: int) -> pr.Judgement:
            return pr.judge(
                lab.profile, self.cfg.gold, scores=scores, lengths=lengths, first_shown=first_shown, rng=rng
            )

        key = f"{lab.username}-{assignment['assignment_id']}"
        record = answer(lab.api, assignment, judge=by_profile, cache=self.cache, who=lab.username, key=key)
        record.profile = lab.profile.name
        with self.lock:
            self.records.append(record)
            done = len(self.records)
        if self.on_ranking:
            self.on_ranking(done)
        return "ranked"

    def _idle(self, lab: SimLabeler) -> bool:
        """An empty queue: look again a little later (a lease race, or a sampling job still adding tasks)."""
        now = time.monotonic()
        if lab.idle_since is None:
            lab.idle_since, lab.idle_looks = now, 0
        lab.idle_looks += 1
        patience = 2 * self.cfg.poll_s
        if self.sampling is not None and self.sampling():
            patience = max(patience, self.cfg.wait_for_tasks_s)
        # a free task can be locked by another labeler's request for a moment (204): give up only after several
        # empty looks, however slow the server is
        if now - lab.idle_since > patience and lab.idle_looks >= IDLE_LOOKS:
            return False
        time.sleep(self.cfg.poll_s if patience <= 2 * self.cfg.poll_s else max(self.cfg.poll_s, 2.0))
        return True


def run_campaign(cfg: CampaignConfig, *, on_ranking: Callable[[int], None] | None = None) -> Campaign:
    """Set up the accounts and tasks, let the researcher rank the gold, then run the labelers to the end."""
    started = time.monotonic()
    run = cfg.run_name or f"sim-{secrets.token_hex(3)}"
    if cfg.wait_for_tasks_s > 0 and not wait_for_server(cfg.base_url, timeout_s=cfg.wait_for_tasks_s):
        raise RuntimeError(f"no ranklab answered at {cfg.base_url}/healthz within {cfg.wait_for_tasks_s:.0f} s")
    admin = Api(cfg.base_url).login(cfg.admin_username, cfg.admin_password)
    researcher: Api | None = None
    labelers: list[SimLabeler] = []
    try:
        made = prepare_tasks(admin, cfg)
        researcher, labelers = create_accounts(admin, cfg, run)
        cache = GoldCache(cfg.gold)
        researcher_records = rank_as_researcher(researcher, cfg, cache)
        logger.info("researcher %s ranked %d gold/screening tasks", researcher.username, len(researcher_records))
        sampling = admin.sampling_in_progress if cfg.wait_for_tasks_s > 0 else None
        records = _LabelerPool(cfg, cache, on_ranking, sampling).run(labelers)
        demos = None
        if cfg.demonstrations:
            demonstrator = demonstrator_account(admin, cfg.base_url, run)
            try:
                demos = run_demonstrations(
                    admin, researcher, demonstrator, gold=cfg.gold, count=cfg.demonstrations,
                    starting_points=cfg.demonstration_starting_points,
                )  # fmt: skip
            finally:
                demonstrator.close()
        return Campaign(
            cfg, labelers, researcher.username, records, researcher_records, made, time.monotonic() - started, demos
        )
    finally:
        for api in [admin, *([researcher] if researcher else []), *(lab.api for lab in labelers)]:
            api.close()
