"""The models page's three pictures of learning, as plain data for Chart.js (pure: model rows in, dicts out).

* reward vs KL: each policy version at (KL from its SFT ancestor, its score), the SFT baseline at KL 0, and best-of-n
  sampling from the SFT model as a curve where an evaluation measured it: the picture of over-optimisation (a policy
  below the best-of-n curve at the same KL got less reward for its divergence). The score is the gold score where a
  simulated campaign measured one (the reward the labelers' preference really is), else the reward model's score.
* reward-model accuracy per version: validation pairs and held-out labelers, each with a 95% interval.
* human evaluation per policy version: win rate against its parent (interval clustered by ranking), and the
  per-criterion rates of the eval rankings (mean 1-7 rating, share flagged per content flag), InstructGPT's
  "metadata" comparison.

Where the figures come from (the contract with the worker's jobs; every key optional):
* policy `metrics`: `method` ("ppo" | "dpo"; also `params.method`; "ppo" when absent), `kl` and `mean_score` (the
  training run's last steps), `eval[<baseline id>]` = an evaluation: `kl`, `policy_reward`, `baseline_reward`,
  `reward_version`, `job_id`, and where measured `best_of_n` = [{`n`, `kl`, `reward` or `gold`}], `policy_gold`,
  `sft_gold` (the chart reads the evaluation against the version's SFT ancestor: its KL is from that model);
  `gold` = a simulated campaign's report for the version (`policy_gold`, `sft_gold`, `policy_kl`,
  `best_of_n` = [{`n`, `kl`, `gold`}], as `app.simulate.report.policy_section` makes it).
* reward `metrics`: `val_accuracy`, `val_pairs`, `val_held_out_labeler_accuracy`, and where the trainer stored them
  `val_accuracy_low`/`_high`, `val_held_out_labeler_pairs` or `val_held_out_labeler_accuracy_low`/`_high`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from app.metrics import ratio_interval_from_sums
from app.models import FLAGS, ModelKind, ModelVersion, Round
from app.services.evaluation import HumanEvaluation, VersionCriteria

DEFAULT_METHOD = "ppo"
FLAG_TITLES = {
    "fails_instruction": "fails the instruction",
    "inappropriate_for_assistant": "inappropriate",
    "hallucination": "hallucination",
    "satisfies_constraint": "satisfies the constraint",
    "sexual_content": "sexual content",
    "violent_content": "violent content",
    "encourages_harm": "encourages harm",
    "denigrates_protected_class": "denigrates a protected class",
    "harmful_advice": "harmful advice",
    "expresses_opinion": "expresses an opinion",
    "moral_judgment": "moral judgment",
}


def training_method(model: ModelVersion) -> str:
    """'ppo' or 'dpo' (whatever the version says), 'ppo' for versions made before methods were recorded."""
    metrics = model.metrics or {}
    method = metrics.get("method") or (metrics.get("params") or {}).get("method")
    return str(method).lower() if method else DEFAULT_METHOD


def newest_eval(model: ModelVersion | None) -> dict[str, Any]:
    """The version's most recent evaluation (by job id) against any baseline; {} when none."""
    evals = (model.metrics or {}).get("eval", {}) if model is not None else {}
    return max(evals.values(), key=lambda e: e.get("job_id") or 0) if evals else {}


def wilson(p: float, n: float) -> tuple[float | None, float | None]:
    """95% Wilson interval of a share p over n independent trials (None, None when n < 1)."""
    if n < 1:
        return None, None
    y = p * n
    low, high = ratio_interval_from_sums(int(n), y, n, y, y, n, min_units=1)
    return float(low), float(high)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value == value else None


def sft_ancestor(model: ModelVersion, by_id: Mapping[int, ModelVersion]) -> int | None:
    """The SFT version a policy descends from (following parent_id), or None."""
    seen: set[int] = set()
    node: ModelVersion | None = model
    while node is not None and node.id not in seen:
        if node.kind == ModelKind.sft:
            return node.id
        seen.add(node.id)
        node = by_id.get(node.parent_id) if node.parent_id is not None else None
    return None


def _measure(model: ModelVersion, sft: int | None) -> dict[str, Any]:
    """(KL, score) of one policy version by gold and by reward model, against its SFT ancestor, with the SFT model's
    own score and best-of-n where measured. Only an evaluation against the SFT ancestor counts (an evaluation against
    another baseline measures KL from that one); without one, PPO's own last steps (KL to its SFT reference)."""
    metrics, gold = model.metrics or {}, (model.metrics or {}).get("gold") or {}
    ev = dict((metrics.get("eval") or {}).get(str(sft), {})) if sft is not None else {}
    out: dict[str, Any] = {"baseline": sft}
    gold_score = _number(ev.get("policy_gold", gold.get("policy_gold")))
    gold_kl = _number(ev.get("kl", gold.get("policy_kl")))
    if gold_score is not None and gold_kl is not None:
        curve = ev.get("best_of_n") if "policy_gold" in ev else gold.get("best_of_n")
        out["gold"] = {"kl": gold_kl, "score": gold_score, "base": _number(ev.get("sft_gold", gold.get("sft_gold"))),
                       "best_of_n": _curve(curve or [], "gold"), "reward_version": None}  # fmt: skip
    rm_score = _number(ev.get("policy_reward", metrics.get("mean_score")))
    rm_kl = _number(ev.get("kl", metrics.get("kl")))
    if rm_score is not None and rm_kl is not None:
        out["rm"] = {"kl": rm_kl, "score": rm_score, "base": _number(ev.get("baseline_reward")),
                     "best_of_n": _curve(ev.get("best_of_n") or [], "reward"),
                     "reward_version": ev.get("reward_version", metrics.get("reward_version"))}  # fmt: skip
    return out


def _curve(points: Iterable[Mapping[str, Any]], key: str) -> list[dict[str, float]]:
    got = [
        {"n": float(p["n"]), "kl": float(p["kl"]), "score": float(p[key])}
        for p in points
        if _number(p.get("kl")) is not None and _number(p.get(key)) is not None and _number(p.get("n")) is not None
    ]
    return sorted(got, key=lambda p: p["kl"])


def reward_vs_kl(models: list[ModelVersion]) -> dict[str, Any]:
    """Points per policy version (by method), SFT baselines at KL 0 and best-of-n curves, on one score: the gold
    score when any version has one (simulated campaigns), else the reward model's score."""
    by_id = {m.id: m for m in models}
    policies = sorted((m for m in models if m.kind == ModelKind.policy), key=lambda m: m.id)
    measured = [(m, _measure(m, sft_ancestor(m, by_id))) for m in policies]
    kind = "gold" if any("gold" in got for _, got in measured) else "rm"
    points, baselines, curves, missing = [], {}, [], []
    for model, got in measured:
        figure = got.get(kind)
        if figure is None:
            missing.append(model.id)
            continue
        base, rm = got["baseline"], figure["reward_version"]
        point = {"version": model.id, "name": model.name, "method": training_method(model), "kl": figure["kl"],
                 "score": figure["score"], "baseline": base, "reward_version": rm}  # fmt: skip
        points.append(point)
        if figure["base"] is not None and base is not None:
            name = by_id[base].name if base in by_id else f"v{base}"
            baselines[(base, rm)] = {"version": base, "name": name, "kl": 0.0, "score": figure["base"],
                                     "reward_version": rm}  # fmt: skip
        if figure["best_of_n"]:
            label = f"best-of-n from v{base} (evaluation of v{model.id})"
            curves.append({"label": label, "points": figure["best_of_n"]})
    return {
        "score": "gold score" if kind == "gold" else "reward-model score",
        "points": points,
        "baselines": list(baselines.values()),
        "best_of_n": curves,
        "missing": missing,
    }


def rm_accuracy(models: list[ModelVersion], rounds: list[Round]) -> dict[str, Any]:
    """Validation and held-out-labeler pairwise accuracy of each reward version (oldest first), with 95% intervals
    (the trainer's own when stored; else Wilson over the validation pairs, which counts pairs of one ranking as
    independent and so errs narrow; none for held-out labelers without their pair count)."""
    round_of = {r.reward_model_id: r.id for r in rounds if r.reward_model_id}
    rows = []
    for model in sorted((m for m in models if m.kind == ModelKind.reward), key=lambda m: m.id):
        metrics = model.metrics or {}
        label = f"v{model.id}" + (f" (round {round_of[model.id]})" if model.id in round_of else "")
        held_out = _accuracy(metrics, "val_held_out_labeler_accuracy", "val_held_out_labeler_pairs")
        validation = _accuracy(metrics, "val_accuracy", "val_pairs")
        rows.append({"version": model.id, "label": label, "validation": validation, "held_out": held_out})
    return {"rows": rows}


def _accuracy(metrics: Mapping[str, Any], key: str, pairs_key: str) -> dict[str, Any] | None:
    value = _number(metrics.get(key))
    if value is None:
        return None
    low, high = _number(metrics.get(f"{key}_low")), _number(metrics.get(f"{key}_high"))
    pairs = _number(metrics.get(pairs_key))
    how = "stored by the trainer"
    if low is None or high is None:
        low, high = wilson(value, pairs) if pairs else (None, None)
        how = "Wilson over pairs" if pairs else "no pair count: no interval"
    return {"value": value, "low": low, "high": high, "n": int(pairs) if pairs else None, "interval": how}


def human_eval(models: list[ModelVersion], human: HumanEvaluation, criteria: list[VersionCriteria]) -> dict[str, Any]:
    """Per policy version: human win rate against its parent (interval clustered by ranking); per version met in
    eval tasks: mean rating and the share flagged per flag."""
    wins = []
    for model in sorted((m for m in models if m.kind == ModelKind.policy), key=lambda m: m.id):
        pair = next((p for p in human.pairs if {p.a, p.b} == {model.id, model.parent_id}), None)
        if pair is None:
            continue
        mine = pair.a == model.id
        rate = pair.win_rate if mine else 1 - pair.win_rate
        low, high = (pair.low, pair.high) if mine else (1 - pair.high, 1 - pair.low)
        wins.append({"version": model.id, "parent": model.parent_id, "method": training_method(model),
                     "label": f"v{model.id} vs v{model.parent_id}", "win_rate": rate,
                     "low": _number(low), "high": _number(high), "comparisons": pair.comparisons,
                     "rankings": pair.rankings})  # fmt: skip
    names = {m.id: m.name for m in models}
    per_version: list[dict[str, Any]] = [
        {"version": c.version, "label": f"v{c.version} {names.get(c.version, '')}".strip(), "outputs": c.outputs,
         "rankings": c.rankings, "mean_rating": c.mean_rating, "rated": c.rated,
         "flags": {f: {"share": s.value, "low": _number(s.low), "high": _number(s.high)} for f, s in c.flags.items()}}
        for c in criteria
    ]  # fmt: skip
    used = [f for f in FLAGS if any(v["flags"][f]["share"] > 0 for v in per_version)]
    return {"wins": wins, "criteria": per_version, "flags": used, "flag_titles": {f: FLAG_TITLES[f] for f in FLAGS}}


def _f(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _rm(point: Mapping[str, Any]) -> str:
    return f"v{point['reward_version']}" if point.get("reward_version") else "—"


def _interval(low: float | None, high: float | None) -> str:
    return "—" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"


def chart_tables(charts: Mapping[str, Any]) -> dict[str, list[list[str]]]:
    """The charts' numbers as text rows, for the tables beside them (a canvas says nothing to a screen reader)."""
    reward_kl = charts["reward_kl"]
    rows = [
        [f"v{p['version']} {p['name']}", p["method"], _f(p["kl"]), _f(p["score"]), _rm(p)] for p in reward_kl["points"]
    ]
    rows += [[f"v{b['version']} {b['name']} (SFT)", "—", "0", _f(b["score"]), _rm(b)] for b in reward_kl["baselines"]]
    rows += [
        [c["label"], f"best-of-{int(p['n'])}", _f(p["kl"]), _f(p["score"])]
        for c in reward_kl["best_of_n"]
        for p in c["points"]
    ]
    accuracy = []
    for r in charts["rm_accuracy"]["rows"]:
        for key, title in (("validation", "validation"), ("held_out", "held-out labelers")):
            a = r[key]
            if a is not None:
                n = "—" if a["n"] is None else str(a["n"])
                accuracy.append([r["label"], title, _f(a["value"]), _interval(a["low"], a["high"]), n, a["interval"]])
    human = charts["human"]
    wins = [
        [w["label"], w["method"], _f(w["win_rate"]), _interval(w["low"], w["high"]), str(w["comparisons"])]
        for w in human["wins"]
    ]
    criteria = [
        [v["label"], str(v["outputs"]), _f(v["mean_rating"], 2)]
        + [f"{100 * v['flags'][f]['share']:.1f}%" for f in human["flags"]]
        for v in human["criteria"]
    ]
    return {"reward_kl": rows, "rm_accuracy": accuracy, "wins": wins, "criteria": criteria}
