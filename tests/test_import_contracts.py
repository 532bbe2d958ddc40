"""The import-linter contracts (pyproject.toml, checked by `lint-imports` in CI) stay complete as app/ grows."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import app

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _contract(name_start: str) -> dict:
    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    [found] = [c for c in contracts if c["name"].startswith(name_start)]
    return found


def test_metrics_contract_forbids_every_other_module_of_app():
    others = {f"app.{m.name}" for m in pkgutil.iter_modules(app.__path__) if m.name != "metrics"}
    forbidden = set(_contract("app.metrics is pure math")["forbidden_modules"])
    assert others <= forbidden, f"add {sorted(others - forbidden)} to the app.metrics contract in pyproject.toml"


def test_web_side_contract_covers_trainer_and_torch():
    contract = _contract("The web side")
    assert contract["source_modules"] == ["app"]
    assert {"trainer", "torch", "transformers"} <= set(contract["forbidden_modules"])


def test_trainer_contracts_cover_every_method_package():
    """Every package of trainer but common and jobs is a method package: independent of the others, and never
    imported by common (pyproject.toml's two trainer contracts list them all); cycles are checked in all of it."""
    import trainer

    packages = {f"trainer.{m.name}" for m in pkgutil.iter_modules(trainer.__path__) if m.ispkg}
    methods = packages - {"trainer.common", "trainer.jobs"}
    assert methods, packages
    independent = set(_contract("The method packages of trainer")["modules"])
    assert independent == methods, f"list exactly {sorted(methods)} in the independence contract"
    assert methods <= set(_contract("trainer.common is the shared core")["forbidden_modules"])
    assert _contract("No import cycles")["ancestors"] == ["app", "trainer"]


MAX_LINES = 400


def test_no_python_file_is_over_the_line_limit():
    """One module a concern: a file that grows past the limit is split (the layout issue's rule), tests included."""
    root = Path(__file__).resolve().parent.parent
    files = [
        p for top in ("app", "trainer", "tests", "bench", "scripts", "migrations") for p in (root / top).rglob("*.py")
    ]
    assert len(files) > 100
    long = {str(p.relative_to(root)): n for p in files if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
