import json

import pytest
from datasets import load_dataset

from app.models import Prompt, Split, TaskKind, UserStatus
from app.services import exports
from tests.agreement.helpers import add_ranking, make_task, singletons
from tests.factories import token_headers


@pytest.fixture
def seeded(db, factory):
    """One gold task (researcher + two labelers) and one production task ranked with a tie and a flag."""
    researcher, good, paused = factory.researcher(), factory.labeler(), factory.labeler(status=UserStatus.paused)
    gold = make_task(db, kind=TaskKind.gold, k=4)
    add_ranking(db, task=gold, user=researcher, order=singletons([0, 1, 2, 3]))
    add_ranking(db, task=gold, user=good, order=singletons([0, 1, 3, 2]))  # 5/6 with the researcher
    add_ranking(db, task=gold, user=paused, order=singletons([3, 2, 1, 0]))  # 0/6
    prod = make_task(db, k=4)
    db.get(Prompt, gold.prompt_id).split, db.get(Prompt, prod.prompt_id).split = Split.train, Split.eval
    add_ranking(db, task=prod, user=good, order=[[2], [0, 1], [3]], flags={3: ["sexual_content"]})
    return {"researcher": researcher, "good": good, "paused": paused, "gold": gold, "prod": prod}


def _get(client, headers, **params):
    resp = client.get("/api/v1/export/comparisons", params=params, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in resp.text.splitlines()]


def test_pairs_export_round_trips_through_datasets(client, seeded, settings, tmp_path, db):
    headers = token_headers(client, seeded["researcher"])
    lines = _get(client, headers, format="pairs")
    # 6 strict pairs per full gold ranking x 3, and 1*2 + 1*1 + 2*1 = 5 on the tied production ranking
    assert len(lines) == 6 * 3 + 5
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    ds = load_dataset("json", data_files=str(path), split="train")
    assert ds.num_rows == 23
    assert {"prompt", "chosen", "rejected", "task_id", "ranking_id", "labeler", "labeler_agreement"} <= set(
        ds.column_names
    )
    prod_rows = [r for r in ds if r["task_id"] == seeded["prod"].id]
    texts = [item.completion.text for item in seeded["prod"].items]
    assert all(
        r["prompt"] == [{"role": "user", "content": db.get(Prompt, seeded["prod"].prompt_id).text}] for r in prod_rows
    )
    assert all(r["chosen"][0]["role"] == r["rejected"][0]["role"] == "assistant" for r in ds)
    assert {(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in prod_rows} == {
        (texts[2], texts[0]),
        (texts[2], texts[1]),
        (texts[2], texts[3]),
        (texts[0], texts[3]),
        (texts[1], texts[3]),
    }
    good_rows = [r for r in ds if r["labeler"] == exports.pseudonym(seeded["good"].id, settings=settings)]
    assert good_rows and all(r["labeler_agreement"] == pytest.approx(5 / 6) for r in good_rows)
    assert str(seeded["good"].id) not in {r["labeler"] for r in ds}


def test_rankings_export_and_filters(client, seeded, tmp_path):
    headers = token_headers(client, seeded["researcher"])
    rankings = _get(client, headers, format="rankings")
    assert len(rankings) == 4
    prod = next(r for r in rankings if r["task_id"] == seeded["prod"].id)
    assert prod["buckets"] == [[0], [1, 2], [3]] and len(prod["completions"]) == 4
    path = tmp_path / "rankings.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in rankings))
    assert load_dataset("json", data_files=str(path), split="train").num_rows == 4

    flagged = _get(client, headers, format="rankings", exclude_flags="sexual_content")
    prod = next(r for r in flagged if r["task_id"] == seeded["prod"].id)
    assert prod["buckets"] == [[0], [1, 2]] and len(prod["completions"]) == 3

    active = {r["ranking_id"] for r in _get(client, headers, format="rankings", active_only="true")}
    assert len(active) == 3  # the paused labeler's ranking is left out
    agreeing = _get(client, headers, format="rankings", min_agreement=0.8)
    assert {r["by_researcher"] for r in agreeing} == {True, False} and len(agreeing) == 3
    assert {r["task_id"] for r in _get(client, headers, format="pairs", split="eval")} == {seeded["prod"].id}


def test_export_rejects_unknown_flags_and_labelers(client, seeded, factory):
    headers = token_headers(client, seeded["researcher"])
    resp = client.get("/api/v1/export/comparisons", params={"exclude_flags": "rude"}, headers=headers)
    assert resp.status_code == 422 and "unknown flags" in resp.json()["detail"]
    labeler = token_headers(client, factory.labeler())
    assert client.get("/api/v1/export/comparisons", headers=labeler).status_code == 403


def test_export_date_and_model_filters_over_http(client, seeded):
    headers = token_headers(client, seeded["researcher"])
    assert len(_get(client, headers, format="rankings", since="2000-01-01T00:00:00")) == 4
    assert _get(client, headers, format="rankings", until="2000-01-01T00:00:00Z") == []
    assert _get(client, headers, format="rankings", model_versions=[987654]) == []
    bad = client.get(
        "/api/v1/export/comparisons", params={"since": "2030-01-01", "until": "2020-01-01"}, headers=headers
    )
    assert bad.status_code == 422 and bad.json()["detail"] == "since must be before until"
