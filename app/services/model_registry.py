"""The model registry: ModelVersion rows for SFT, reward and policy models (Hugging Face-format folders)."""

from __future__ import annotations

import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.models import ModelKind, ModelVersion
from app.services.serialize import json_safe
from app.storage import atomic_dir

REGISTRY_LOCK_KEY = 0x72616E6B6C6162  # "ranklab"
"""PostgreSQL advisory lock that serialises find-or-register (SQLite transactions are serialised already)."""
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def check_model_dir(path: Path) -> Path:
    """The resolved folder if it looks like a Hugging Face model (config, weights, tokenizer); InvalidInput if not."""
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder; give the folder of a Hugging Face-format model")
    if not (folder / "config.json").is_file():
        raise InvalidInput(f"{folder} has no config.json; is it a Hugging Face-format model folder?")
    if not any(next(folder.glob(p), None) for p in WEIGHT_PATTERNS):
        raise InvalidInput(f"{folder} has no weights (*.safetensors or pytorch_model*.bin)")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise InvalidInput(f"{folder} has no tokenizer files (tokenizer.json or tokenizer_config.json)")
    return folder


def copy_into_data_dir(
    source: Path,
    *,
    data_dir: Path,
    kind: ModelKind,
    name: str,
    on_bytes: Callable[[int, int], None] | None = None,
) -> Path:
    """Copy a checked model folder to `data_dir/models/<kind>-<name>-<random>`; returns the new folder.

    Copied through `atomic_dir` (a temporary folder renamed at the end), so an interrupted copy never looks like a
    model. `on_bytes(done, total)` reports progress after each file.
    """
    source = check_model_dir(source)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"
    target = Path(data_dir) / "models" / f"{kind.value}-{slug}-{secrets.token_hex(3)}"
    files = [f for f in sorted(source.rglob("*")) if f.is_file() and ".git" not in f.relative_to(source).parts]
    total, done = sum(f.stat().st_size for f in files), 0
    with atomic_dir(target) as partial:
        for f in files:
            dest = partial / f.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
            done += f.stat().st_size
            if on_bytes is not None:
                on_bytes(done, total)
    return target


def register_model(
    session: Session,
    *,
    kind: ModelKind,
    name: str,
    path: Path | str,
    parent_id: int | None = None,
    job_id: int | None = None,
    metrics: dict[str, Any] | None = None,
) -> ModelVersion:
    """Add a model version after checking its folder is a complete Hugging Face model."""
    folder = check_model_dir(Path(path))
    if not name.strip():
        raise InvalidInput("a model needs a name")
    if parent_id is not None and session.get(ModelVersion, parent_id) is None:
        raise InvalidInput(f"parent model {parent_id} does not exist")
    version = ModelVersion(
        kind=kind,
        name=name.strip(),
        path=str(folder),
        parent_id=parent_id,
        job_id=job_id,
        metrics=json_safe(dict(metrics or {})),
    )
    session.add(version)
    session.flush()
    return version


def get_model(session: Session, *, model_id: int) -> ModelVersion:
    """The model version with this id, or NotFound."""
    model = session.get(ModelVersion, model_id)
    if model is None:
        raise NotFound(f"no model version with id {model_id}")
    return model


def list_models(session: Session, *, kind: ModelKind | None = None) -> list[ModelVersion]:
    """Every model version, newest first."""
    stmt = select(ModelVersion).order_by(ModelVersion.id.desc())
    if kind is not None:
        stmt = stmt.where(ModelVersion.kind == kind)
    return list(session.scalars(stmt))


def find_by_path(session: Session, *, path: Path | str) -> ModelVersion | None:
    """The newest version registered for this folder, if any."""
    folder = str(Path(path).expanduser().resolve())
    return session.scalar(select(ModelVersion).where(ModelVersion.path == folder).order_by(ModelVersion.id.desc()))


def find_or_register(
    session: Session, *, kind: ModelKind, name: str, path: Path | str, metrics: dict[str, Any] | None = None
) -> ModelVersion:
    """The version registered for this folder, registering it first if none is; once, even when two ask at once."""
    if session.get_bind().dialect.name == "postgresql":  # held until this transaction ends
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REGISTRY_LOCK_KEY})
    found = find_by_path(session, path=path)
    if found is not None:
        return found
    return register_model(session, kind=kind, name=name, path=path, metrics=metrics)


def newest_model(session: Session, *, kind: ModelKind) -> ModelVersion | None:
    """The newest version of one kind."""
    return session.scalar(select(ModelVersion).where(ModelVersion.kind == kind).order_by(ModelVersion.id.desc()))


def default_policy(session: Session) -> ModelVersion | None:
    """What sampling uses by default: the newest policy, else the newest SFT model."""
    return newest_model(session, kind=ModelKind.policy) or newest_model(session, kind=ModelKind.sft)


def policy_for(session: Session, *, version_id: int | None) -> ModelVersion | None:
    """The chosen SFT/policy version (InvalidInput when it is not one), or the default."""
    if version_id is None:
        return default_policy(session)
    model = session.get(ModelVersion, version_id)
    if model is None or model.kind == ModelKind.reward:
        raise InvalidInput(f"no SFT or policy model with id {version_id}")
    return model
