"""`lora` and `max_memory_gb` job params: validated by the web side, refused with a 422 that names the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.schemas.params import LoraParams
from app.schemas.training import TrainPolicyParams, TrainRewardParams
from tests.factories import token_headers


def test_defaults_and_off_by_default() -> None:
    lora = LoraParams()
    assert (lora.r, lora.alpha, lora.dropout, lora.target_modules) == (16, 32, 0.05, None)
    assert TrainRewardParams().lora is None and TrainPolicyParams().lora is None
    parsed = TrainPolicyParams.from_params({"lora": {"r": 8, "target_modules": ["q_proj", "v_proj"]}})
    assert parsed.lora == LoraParams(r=8, target_modules=["q_proj", "v_proj"])
    assert TrainRewardParams.from_params({"lora": {}, "max_memory_gb": 12.5}).max_memory_gb == 12.5


@pytest.mark.parametrize(
    ("lora", "field", "says"),
    [
        ({"r": 0}, "r", "greater than or equal to 1"),
        ({"r": 2.5}, "r", "integer"),
        ({"alpha": 0}, "alpha", "greater than or equal to 1"),
        ({"dropout": 1.0}, "dropout", "less than 1"),
        ({"dropout": -0.1}, "dropout", "greater than or equal to 0"),
        ({"target_modules": []}, "target_modules", "at least 1 item"),
        ({"target_modules": [" "]}, "target_modules", "non-empty module name"),
        ({"rank": 8}, "rank", "Extra inputs are not permitted"),
    ],
)
def test_bad_lora_is_refused_naming_the_field(lora, field, says) -> None:
    with pytest.raises(ValidationError) as caught:
        TrainRewardParams.from_params({"lora": lora})
    errors = caught.value.errors()
    assert [e["loc"] for e in errors] == [("lora", field)]
    assert says in errors[0]["msg"]


def test_max_memory_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        TrainPolicyParams.from_params({"max_memory_gb": 0})


def test_api_answers_422_naming_the_lora_field(client, factory) -> None:
    headers = token_headers(client, factory.researcher())
    resp = client.post("/api/v1/jobs", json={"kind": "train_reward", "params": {"lora": {"r": 0}}}, headers=headers)
    assert resp.status_code == 422, resp.text
    assert "params.lora.r" in resp.json()["detail"] and "greater than or equal to 1" in resp.json()["detail"]
