"""The README's settings table, generated from the Settings class (field docstrings are the documentation)."""

from __future__ import annotations

import json
from typing import Any

from app.config import Settings

_SHOWN_DEFAULTS = {
    "data_dir": "./data",
    "database_url": "SQLite file in the data folder",
    "secret_key": "a development key",
    "cookie_secure": "auto",
    "metrics_token": "unset",
}
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"


def _default(name: str, value: Any) -> str:
    if name in _SHOWN_DEFAULTS:
        return _SHOWN_DEFAULTS[name]
    if isinstance(value, list):
        return f"`{json.dumps(value, separators=(',', ':'))}`"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def settings_table() -> str:
    """Markdown table of every setting: variable, default, meaning."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        rows.append(f"| `RANKLAB_{name.upper()}` | {_default(name, field.default)} | {field.description or ''} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
