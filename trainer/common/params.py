"""Job params are the one source of a training method's settings and their defaults.

A job's params model (`app/schemas`, torch-free, what the web side validates and documents) names every setting a
user chooses, with its default. A trainer's config dataclass names the same settings the same way, takes its
defaults for them from the params model (`job_default`), and adds only knobs no job exposes; `config_from_params`
builds the config from validated params by name, so nothing is mapped by hand and no default is written twice.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from pydantic import BaseModel

Config = TypeVar("Config")


def job_default(params_model: type[BaseModel], name: str) -> Any:
    """The default of the params model's field `name` (KeyError for a name the job does not have)."""
    field = params_model.model_fields[name]
    if field.default_factory is not None:
        raise TypeError(f"{params_model.__name__}.{name} has a default factory; give the config a literal default")
    return field.default


def shared_fields(config_cls: type[Any], params_model: type[BaseModel]) -> list[str]:
    """The config fields that are job params (same name)."""
    return [f.name for f in dataclasses.fields(config_cls) if f.name in params_model.model_fields]


def config_from_params(config_cls: type[Config], params: BaseModel, **overrides: Any) -> Config:
    """`config_cls` with every field the params also have copied from them, then `overrides`."""
    values = {name: getattr(params, name) for name in shared_fields(config_cls, type(params))}
    return config_cls(**(values | overrides))
