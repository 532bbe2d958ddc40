"""Job params forms generated from the params models' JSON Schemas (app/services/param_forms.py)."""

from __future__ import annotations

import json

from app.models import JobKind
from app.schemas.jobs import JOB_KINDS
from app.services.param_forms import INT_LIST, form_for


def _by_name(kind: JobKind, **kwargs):  # type: ignore[no-untyped-def]
    return {f["name"]: f for f in form_for(JOB_KINDS[kind].params_model, **kwargs)}


def test_every_kind_gets_a_field_per_param_with_its_help_and_default():
    for kind, spec in JOB_KINDS.items():
        fields = _by_name(kind)
        assert list(fields) == list(spec.params_model.model_fields), kind
        for name, f in fields.items():
            model_field = spec.params_model.model_fields[name]
            assert f["help"] == model_field.description, (kind, name)
            assert json.loads(f["default_json"]) == json.loads(
                json.dumps(model_field.get_default(call_default_factory=True), default=str)
            ), (kind, name)


def test_controls_and_browser_checks_follow_the_schema():
    sample = _by_name(JobKind.sample)
    assert sample["k"]["control"] == "number" and sample["k"]["attrs"] == {"step": "1", "min": "4", "max": "9"}
    assert sample["top_p"]["attrs"] == {"step": "any", "data-exclusive-min": "0.0", "max": "1.0"}
    assert sample["split"]["control"] == "select" and sample["split"]["nullable"]
    assert sample["split"]["options"] == ["train", "validation", "eval"]
    assert sample["prompt_ids"]["kind"] == "int-list" and sample["prompt_ids"]["attrs"]["pattern"] == INT_LIST
    reward = _by_name(JobKind.train_reward)
    assert reward["active_only"]["control"] == "checkbox" and reward["active_only"]["checked"]
    assert reward["since"]["control"] == "datetime-local" and reward["since"]["nullable"]
    assert reward["exclude_flags"]["kind"] == "str-list" and reward["exclude_flags"]["default_json"] == "[]"
    assert not reward["exclude_flags"]["nullable"]  # its default comes from a factory: [] (the schema says nothing)
    assert reward["learning_rate"]["value"] == "9e-06" and reward["learning_rate"]["default_text"] == "9e-06"
    assert _by_name(JobKind.export)["format"]["options"] == ["pairs", "rankings"]


def test_values_prefix_skip_and_ids():
    fields = _by_name(JobKind.sample, values={"n_unlabeled": 20, "prompt_ids": [3, 4]}, prefix="sample.",
                      skip=("policy_version",), id_prefix="round-")  # fmt: skip
    assert "policy_version" not in fields
    assert fields["n_unlabeled"]["value"] == "20" and fields["prompt_ids"]["value"] == "3, 4"
    assert fields["k"]["path"] == "sample.k" and fields["k"]["id"] == "param-round-sample-k"
