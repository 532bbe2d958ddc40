"""Registered model versions as the trainers use them: an id and a Hugging Face folder that exists."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from app.models import ModelKind, ModelVersion
from app.services import model_registry as registry


@dataclass(frozen=True)
class Version:
    """A model version's id and folder."""

    id: int
    path: Path


def model_folder(model: ModelVersion) -> Version:
    """The version's folder, or FileNotFoundError naming it when it is gone (or has no config.json)."""
    path = Path(model.path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the folder of model version {model.id} was not found (or has no config.json): {path}")
    return Version(model.id, path)


def sft_ancestor(session: Session, model: ModelVersion) -> ModelVersion:
    """Follow `parent_id` from a policy version up to the SFT version it descends from."""
    seen = set()
    while model.kind != ModelKind.sft:
        if model.parent_id is None or model.id in seen:
            raise ValueError(f"model version {model.id} has no SFT ancestor to serve as the reference policy")
        seen.add(model.id)
        model = registry.get_model(session, model_id=model.parent_id)
    return model
