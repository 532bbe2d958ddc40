"""Job params as HTML forms, generated from each params model's JSON Schema (pydantic's `model_json_schema`).

`fields_from_schema` turns a schema into one field per property: its control (number, checkbox, select, text,
date-time, or JSON text for anything else), the constraints the browser checks before a submit (min, max, step,
pattern, required), the default, the help text (the field's docstring) and the value to show. Pure: schema in,
plain dicts out; the template only renders them and `app/static/js/param-form.js` reads them back into JSON.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import BaseModel

INT_LIST = r"\s*-?\d+(\s*,\s*-?\d+)*\s*"
"""What a list of integers looks like in its text box: comma-separated."""
STR_LIST = r"\s*[A-Za-z0-9_.\-]+(\s*,\s*[A-Za-z0-9_.\-]+)*\s*"


def _resolve(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the property's own schema with $ref resolved, whether null is allowed)."""
    nullable = False
    options = prop.get("anyOf")
    if options:
        kept = [o for o in options if o.get("type") != "null"]
        nullable = len(kept) < len(options)
        base = dict(kept[0]) if len(kept) == 1 else {"type": "json"}
    else:
        base = dict(prop)
    ref = base.get("$ref")
    if ref:
        base = {**defs.get(ref.rsplit("/", 1)[-1], {}), **{k: v for k, v in base.items() if k != "$ref"}}
    return base, nullable


def _number_attrs(schema: Mapping[str, Any], integer: bool) -> dict[str, str]:
    attrs = {"step": "1" if integer else "any"}
    if "minimum" in schema:
        attrs["min"] = str(schema["minimum"])
    if "exclusiveMinimum" in schema:
        if integer:
            attrs["min"] = str(int(schema["exclusiveMinimum"]) + 1)
        else:
            attrs["data-exclusive-min"] = str(schema["exclusiveMinimum"])
    if "maximum" in schema:
        attrs["max"] = str(schema["maximum"])
    return attrs


def _control(schema: Mapping[str, Any]) -> tuple[str, str, dict[str, str], list[str]]:
    """(control, kind, attrs, options) of one property's schema."""
    kind = schema.get("type")
    if "enum" in schema:
        return "select", "enum", {}, [str(v) for v in schema["enum"]]
    if kind == "boolean":
        return "checkbox", "boolean", {}, []
    if kind in ("integer", "number"):
        return "number", str(kind), _number_attrs(schema, kind == "integer"), []
    if kind == "string" and schema.get("format") == "date-time":
        return "datetime-local", "datetime", {}, []
    if kind == "string":
        return "text", "string", {}, []
    if kind == "array" and (schema.get("items") or {}).get("type") in ("integer", "string"):
        ints = schema["items"]["type"] == "integer"
        pattern = INT_LIST if ints else STR_LIST
        return "text", "int-list" if ints else "str-list", {"pattern": pattern}, []
    return "textarea", "json", {}, []


def _shown(value: Any, kind: str) -> str:
    """The value as its input shows it."""
    if value is None:
        return ""
    if kind in ("int-list", "str-list"):
        return ", ".join(str(v) for v in value)
    if kind == "json":
        return json.dumps(value)
    if kind == "datetime":
        return str(value)[:16]
    return str(value)


def fields_from_schema(
    schema: Mapping[str, Any],
    *,
    prefix: str = "",
    values: Mapping[str, Any] | None = None,
    skip: Collection[str] = (),
    id_prefix: str = "",
    defaults: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One form field per property of a params model's JSON Schema (in declaration order); `values` overrides the
    defaults shown, `skip` leaves properties out (e.g. those a round fills in), `prefix` nests names ("sample."),
    `id_prefix` keeps element ids unique when several kinds' forms share a page; `defaults` gives what the schema
    cannot (a default made by a factory, such as an empty list)."""
    defs = schema.get("$defs", {})
    required = set(schema.get("required", ()))
    fields = []
    for name, prop in schema.get("properties", {}).items():
        if name in skip:
            continue
        own, nullable = _resolve(prop, defs)
        control, kind, attrs, options = _control(own)
        default = (defaults or {}).get(name, prop.get("default", own.get("default")))
        value = (values or {}).get(name, default)
        fields.append(
            {
                "name": name,
                "path": prefix + name,
                "id": "param-" + id_prefix + (prefix + name).replace(".", "-"),
                "help": prop.get("description") or own.get("description") or "",
                "control": control,
                "kind": kind,
                "attrs": attrs,
                "options": options,
                "nullable": nullable or name not in required and default is None,
                "required": name in required,
                "default_json": json.dumps(default),
                "default_text": "none" if default is None else _shown(default, kind) or '""',
                "value": _shown(value, kind),
                "checked": bool(value) if kind == "boolean" else False,
            }
        )
    return fields


def model_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """Every field's default as JSON would carry it, factories called (`[]` where the schema says nothing)."""
    return {
        name: json.loads(json.dumps(field.get_default(call_default_factory=True), default=str))
        for name, field in model.model_fields.items()
    }


def form_for(model: type[BaseModel], **options: Any) -> list[dict[str, Any]]:
    """fields_from_schema for a params model, with its factory defaults."""
    return fields_from_schema(model.model_json_schema(), defaults=model_defaults(model), **options)
