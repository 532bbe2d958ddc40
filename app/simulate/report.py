"""The learning report: what each profile did against the gold, what the product measured, what the gate decided.

Figures "as the product measured them" come from the researcher API (`/api/v1/agreement/labelers`); the
simulator's own figures come from the gold it knows. Both are side by side so either can be checked.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app import metrics
from app.simulate import profiles as pr
from app.simulate.client import Api
from app.simulate.demonstrations import demonstration_section
from app.simulate.driver import Campaign, RankingRecord
from app.simulate.gold import BatchScorer, GoldPreference

TOLERANCE_SDS = 3.0
"""A measured agreement is 'as expected' within this many standard deviations of its sampling spread."""
MIN_TOLERANCE = 0.01
"""...and never tighter than this (a spread of ~0 on a handful of tasks would demand an exact hit)."""
GATE_STATUSES = ("active", "pending_review", "rejected", "screening", "paused", "suspended")


@dataclass
class ProductView:
    """What the product reports about the campaign's labelers, through the researcher API."""

    labelers: dict[str, dict[str, Any]]  # username -> /agreement/labelers row
    task_kinds: dict[int, str]  # gold and screening task ids -> kind


def fetch_product_view(base_url: str, *, username: str, password: str) -> ProductView:
    """Read the agreement rows and which tasks are gold or screening, as a researcher or admin."""
    api = Api(base_url).login(username, password)
    try:
        rows = {r["username"]: r for r in api.agreement_labelers()}
        kinds = {t["id"]: kind for kind in ("gold", "screening") for t in api.tasks(kind=kind)}
    finally:
        api.close()
    return ProductView(rows, kinds)


def pooled_agreement(records: Sequence[RankingRecord]) -> tuple[float | None, int]:
    """(pooled agreement with the gold order, gold-strict pairs) over submitted rankings, as DESIGN.md defines it:
    over the pairs the gold orders strictly, same order 1, tied by the labeler 0.5, reversed 0.

    Written as a plain loop over pairs, independently of ``app.metrics``, so the report checks the product."""
    score = total = 0.0
    for r in records:
        gold = pr.gold_ranks(r.scores)
        i, j = np.triu_indices(gold.size, 1)
        strict = gold[i] != gold[j]
        same = np.sign(r.ranks[i] - r.ranks[j]) * np.sign(gold[i] - gold[j])  # 1 same, 0 tied, -1 reversed
        score += float(((same[strict] + 1) / 2).sum())
        total += int(strict.sum())
    return (score / total if total else None), int(total)


def tied_share(records: Sequence[RankingRecord]) -> float | None:
    """Share of the gold-strict pairs that the labeler tied (the product shows it beside agreement)."""
    tied = total = 0
    for r in records:
        gold = pr.gold_ranks(r.scores)
        i, j = np.triu_indices(gold.size, 1)
        strict = gold[i] != gold[j]
        tied += int((r.ranks[i] == r.ranks[j])[strict].sum())
        total += int(strict.sum())
    return tied / total if total else None


def _weighted(rows: Sequence[dict[str, Any]], key: str, weight: str) -> float | None:
    pairs = [(r[key], r[weight]) for r in rows if r.get(key) is not None and r.get(weight)]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else None


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def gold_section(
    profile: pr.Profile, gold: GoldPreference, records: Sequence[RankingRecord], rng: np.random.Generator
) -> dict[str, Any]:
    """Measured agreement with gold against what the profile's temperature (or bias) predicts on the same tasks."""
    measured, pairs = pooled_agreement(records)
    expect = pr.expected_agreement(profile, gold, [r.task_scores() for r in records], rng=rng)
    tolerance = None if expect.sd is None else max(TOLERANCE_SDS * expect.sd, MIN_TOLERANCE)
    within = None
    if measured is not None and expect.agreement is not None and tolerance is not None:
        within = abs(measured - expect.agreement) <= tolerance
    return {
        "measured": measured,
        "tied_share": tied_share(records),
        "pairs": pairs,
        "expected": expect.agreement,
        "sd": expect.sd,
        "tolerance": tolerance,
        "within_tolerance": within,
        "method": expect.method,
    }


def gate_section(
    profile: pr.Profile,
    gold: GoldPreference,
    screening: Sequence[RankingRecord],
    rows: Sequence[dict[str, Any]],
    *,
    cutoffs: tuple[float, float],
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The gate's decisions for a profile, and what it should have decided from the profile's expected scores."""
    counts = Counter(r["status"] for r in rows)
    expect = pr.simulate_expectation(profile, gold, [r.task_scores() for r in screening], rng=rng)
    should_pass = None
    if expect.agreement is not None and expect.flag_agreement is not None:
        should_pass = expect.agreement >= cutoffs[0] and expect.flag_agreement >= cutoffs[1]
    decided = [r for r in rows if r["status"] in ("active", "pending_review", "rejected")]
    correct = None
    if decided and should_pass is not None:
        correct = sum((r["status"] == "active") == should_pass for r in decided) / len(decided)
    return {
        **{f"share_{s}": counts.get(s, 0) / len(rows) if rows else None for s in GATE_STATUSES if counts.get(s)},
        "share_active": counts.get("active", 0) / len(rows) if rows else None,
        "expected_agreement": expect.agreement,
        "expected_flag_agreement": expect.flag_agreement,
        "should_pass": should_pass,
        "decided_as_expected": correct,
    }


def build_report(
    campaign: Campaign,
    view: ProductView,
    *,
    cutoffs: tuple[float, float] = (0.75, 0.75),
    seed: int = 0,
) -> dict[str, Any]:
    """The whole report as plain JSON-able data (see `format_report` for the table)."""
    cfg = campaign.config
    rng = np.random.default_rng([seed, 99])
    profiles = []
    for profile, _count in cfg.mix:
        mine = [r for r in campaign.records if r.profile == profile.name]
        names = [lab.username for lab in campaign.labelers if lab.profile.name == profile.name]
        rows = [view.labelers[n] for n in names if n in view.labelers]
        on_gold = [r for r in mine if r.task_id in view.task_kinds]
        screening = [r for r in mine if view.task_kinds.get(r.task_id) == "screening"]
        details = [_labeler_detail(row, [r for r in on_gold if r.username == row["username"]]) for row in rows]
        diffs = [
            abs(d["agreement_with_researchers"] - d["simulator_agreement_on_gold"])
            for d in details
            if d["agreement_with_researchers"] is not None and d["simulator_agreement_on_gold"] is not None
        ]
        profiles.append(
            {
                "profile": profile.name,
                "temperature": None if math.isinf(profile.temperature) else profile.temperature,
                "bias": profile.bias,
                "labelers": len(names),
                "rankings": len(mine),
                "agreement_with_gold": gold_section(profile, cfg.gold, mine, rng),
                "agreement_with_researchers": {
                    # pooled over the profile's labelers, each weighted by their gold rankings
                    "product": _weighted(rows, "agreement_with_researchers", "n_gold"),
                    "simulator": pooled_agreement(on_gold)[0],
                    "n_gold": sum(r["n_gold"] for r in rows),
                },
                "position_bias": _mean([r["position_bias"] for r in rows]),
                "position_chance": _mean([r["position_chance"] for r in rows]),
                "flag_agreement": _mean([r["flag_agreement"] for r in rows]),
                "gate": gate_section(profile, cfg.gold, screening, rows, cutoffs=cutoffs, rng=rng),
                "labelers_detail": details,
                "max_abs_diff_product_vs_simulator": max(diffs, default=None),
            }
        )
    return {
        "campaign": {
            "base_url": cfg.base_url,
            "gold": cfg.gold.name,
            "mix": {p.name: n for p, n in cfg.mix},
            "seed": cfg.seed,
            "labeler_rankings": len(campaign.records),
            "researcher_rankings": len(campaign.researcher_records),
            "seconds": round(campaign.seconds, 2),
            "rankings_per_second": round(len(campaign.records) / campaign.seconds, 2) if campaign.seconds else None,
            "tasks_made": campaign.tasks_made,
            "screening_cutoff": cutoffs[0],
            "flag_cutoff": cutoffs[1],
        },
        "profiles": profiles,
        **({"demonstrations": demonstration_section(campaign.demonstrations)} if campaign.demonstrations else {}),
    }


def _labeler_detail(row: dict[str, Any], on_gold: Sequence[RankingRecord]) -> dict[str, Any]:
    """One labeler as the product shows them, with the simulator's own agreement on the same gold tasks."""
    keys = ("username", "status", "n_rankings", "agreement_with_researchers", "n_gold", "screening_agreement")
    detail = {k: row.get(k) for k in (*keys, "screening_flag_agreement", "position_bias", "flag_agreement")}
    detail["simulator_agreement_on_gold"] = pooled_agreement(on_gold)[0]
    return detail


def reward_model_section(
    api: Api,
    gold: GoldPreference,
    scorer: BatchScorer,
    *,
    mix: Sequence[tuple[pr.Profile, int]],
    splits: Sequence[str] = ("validation", "eval"),
) -> dict[str, Any]:
    """A reward model's agreement with the gold order on the tasks of held-out prompts, next to what a
    Plackett-Luce labeler of each temperature in the mix would be expected to reach on the same tasks."""
    held_out = set().union(*(api.prompt_ids(split=s) for s in splits))
    seen: set[int] = set()
    agree, comparable = 0.0, 0
    tasks: list[pr.TaskScores] = []
    for summary in api.tasks():
        if summary["prompt_id"] not in held_out or summary["kind"] == "screening" or summary["id"] in seen:
            continue
        seen.add(summary["id"])
        detail = api.task(summary["id"])
        prompt, texts = detail["prompt"]["messages"], [c["text"] for c in detail["completions"]]
        scores = gold.scores(prompt, texts)
        rm = np.asarray(scorer([prompt] * len(texts), texts), dtype=np.float64)
        a, c = metrics.pairwise_agreement_batch(pr.gold_ranks(rm)[None, :], pr.gold_ranks(scores)[None, :])
        agree, comparable = agree + float(a[0]), comparable + int(c[0])
        tasks.append(pr.TaskScores(scores, np.array([len(t) for t in texts]), 0))
    expected = {p.name: pr.pl_expected_agreement(tasks, p.temperature) for p, _ in mix if p.bias == "none" and tasks}
    return {
        "splits": list(splits),
        "tasks": len(tasks),
        "pairs": comparable,
        "agreement_with_gold": agree / comparable if comparable else None,
        "expected_labeler_agreement_same_tasks": expected,
    }


def sft_ancestor(models: Sequence[dict[str, Any]], version: int) -> dict[str, Any]:
    """The SFT version a policy descends from, following `parent_id` through the registry. An SFT version that
    `train_sft` made from another model is measured against that parent (its own starting point): the nearest SFT or
    base ancestor; a root SFT version is its own baseline."""
    by_id = {m["id"]: m for m in models}
    model = by_id.get(version)
    if model is None or model["kind"] == "reward":
        raise ValueError(f"no policy or SFT model with id {version}")
    if model["kind"] == "sft" and by_id.get(model.get("parent_id")) is not None:
        model = by_id[model["parent_id"]]
        if model["kind"] == "base":
            return model
    while model["kind"] != "sft":
        model = by_id.get(model["parent_id"])
        if model is None:
            raise ValueError(f"model {version} has no SFT ancestor in the registry")
    return model


def policy_section(
    api: Api,
    gold: GoldPreference,
    evaluate: Callable[..., dict[str, Any]],
    *,
    policy_version: int,
    picker: BatchScorer | None = None,
    prompts: int = 16,
    splits: Sequence[str] = ("eval", "validation"),
    **options: Any,
) -> dict[str, Any]:
    """A policy's mean gold score and KL against its SFT parent on held-out prompts, with best-of-n from SFT at
    the same KLs (picked by `picker`, a reward model, or by the gold itself as an upper bound)."""
    models = api.models()
    policy = next((m for m in models if m["id"] == policy_version), None)
    if policy is None:
        raise ValueError(f"no model version {policy_version}")
    sft = sft_ancestor(models, policy_version)
    conversations: list[list[dict[str, str]]] = []
    for split in splits:
        conversations += api.prompt_messages(split=split, limit=prompts - len(conversations))
    if not conversations:
        raise ValueError("no eval or validation prompts to measure the policy on")
    figures = evaluate(
        Path(policy["path"]), Path(sft["path"]), conversations, gold.score_batch, picker=picker, **options
    )
    return {"policy_version": policy_version, "sft_version": sft["id"], **figures}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:5.1f}"


def format_report(report: dict[str, Any]) -> str:
    """A readable fixed-width table of the report (percentages)."""
    head = (
        f"{'profile':<12} {'lab':>3} {'rank':>5} {'gold':>6} {'expect':>6} {'tol':>5} {'ok':>3} "
        f"{'res(p)':>6} {'res(s)':>6} {'pos':>5} {'chance':>6} {'flags':>5} "
        f"{'active':>6} {'review':>6} {'should':>6} {'right':>5}"
    )
    lines = [head, "-" * len(head)] if report.get("profiles") else []
    for p in report.get("profiles", []):
        g, r, gate = p["agreement_with_gold"], p["agreement_with_researchers"], p["gate"]
        ok = {True: "yes", False: "NO", None: "-"}[g["within_tolerance"]]
        should = {True: "pass", False: "fail", None: "-"}[gate["should_pass"]]
        lines.append(
            f"{p['profile']:<12} {p['labelers']:>3} {p['rankings']:>5} {_pct(g['measured']):>6} "
            f"{_pct(g['expected']):>6} {_pct(g['tolerance']):>5} {ok:>3} {_pct(r['product']):>6} "
            f"{_pct(r['simulator']):>6} {_pct(p['position_bias']):>5} {_pct(p['position_chance']):>6} "
            f"{_pct(p['flag_agreement']):>5} {_pct(gate.get('share_active')):>6} "
            f"{_pct(gate.get('share_pending_review')):>6} {should:>6} {_pct(gate['decided_as_expected']):>5}"
        )
    c = report.get("campaign")
    if c:
        lines.append(
            f"gold {c['gold']}; {c['labeler_rankings']} labeler + {c['researcher_rankings']} researcher rankings in "
            f"{c['seconds']} s ({c['rankings_per_second']} /s); cutoffs {c['screening_cutoff']}/{c['flag_cutoff']}"
        )
    d = report.get("demonstrations")
    if d and d.get("written"):
        best = d["best_sample_gold_mean"]
        lines.append(
            f"demonstrations: {d['written']} written ({d['rewritten']} rewritten from a sample), {d['accepted']} "
            f"accepted; gold {d['gold_mean']:.3f} vs best sample {'-' if best is None else f'{best:.3f}'}"
        )
    rm = report.get("reward_model")
    if rm:
        expected = ", ".join(f"{k} {_pct(v).strip()}" for k, v in rm["expected_labeler_agreement_same_tasks"].items())
        lines.append(
            f"reward model {rm.get('path', '')}: agreement with gold {_pct(rm['agreement_with_gold']).strip()}% on "
            f"{rm['tasks']} held-out tasks ({rm['pairs']} pairs); expected of labelers there: {expected}"
        )
    pol = report.get("policy")
    if pol:
        lines.append(
            f"policy {pol['policy_version']} vs SFT {pol['sft_version']} on {pol['prompts']} held-out prompts: gold "
            f"{pol['policy_gold']:.3f} vs {pol['sft_gold']:.3f} (gain {pol.get('gain', 0.0):+.3f} +- "
            f"{pol.get('gain_se', float('nan')):.3f} SE by prompt), KL {pol['policy_kl']:.2f} nats; best-of-n from SFT "
            f"({pol['picker']}): "
            + ", ".join(f"n={b['n']} KL {b['kl']:.2f} gold {b['gold']:.3f}" for b in pol["best_of_n"])
        )
    return "\n".join(lines)
