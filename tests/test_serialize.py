from app.services.serialize import json_safe


def test_non_finite_floats_become_null_at_any_depth():
    value = {"a": float("nan"), "b": [1.0, float("inf"), {"c": -float("inf")}], "d": (1, "x"), 2: 0.5}
    assert json_safe(value) == {"a": None, "b": [1.0, None, {"c": None}], "d": [1, "x"], "2": 0.5}
