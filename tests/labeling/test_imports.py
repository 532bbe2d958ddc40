import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from sqlalchemy import func, select

from app.errors import InvalidInput
from app.migrate import upgrade
from app.models import Prompt, Ranking, RankingTask, Split
from app.services.imports import parse_prompts, parse_tasks
from tests.factories import browser_login, make_task


def _jsonl(rows):
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode()


def test_parse_prompts_jsonl_and_csv():
    items = parse_prompts(_jsonl([{"text": "a", "split": "eval", "metadata": {"x": 1}}, "", {"prompt": "b"}]))
    assert [(p.text, p.split, p.metadata) for p in items] == [("a", Split.eval, {"x": 1}), ("b", None, {})]
    csv_items = parse_prompts(b'text,split,topic\nhello,validation,greeting\n"multi\nline",,\n', filename="p.csv")
    assert [(p.text, p.split, p.metadata) for p in csv_items] == [
        ("hello", Split.validation, {"topic": "greeting"}),
        ("multi\nline", None, {}),
    ]


def test_bad_prompt_lines_are_all_reported_with_line_numbers():
    data = _jsonl([{"text": "fine"}, "{not json", {"text": ""}, {"text": "ok", "split": "test"}, [1, 2]])
    with pytest.raises(InvalidInput) as err:
        parse_prompts(data)
    msg = err.value.message
    assert "nothing was imported" in msg and "4 bad line(s)" in msg
    for fragment in ("line 2: not valid JSON", "line 3: prompt text is empty", "line 4: split 'test'", "line 5:"):
        assert fragment in msg
    assert err.value.details["lines"] == [2, 3, 4, 5]
    with pytest.raises(InvalidInput, match="'text' column"):
        parse_prompts(b"prompt,split\nx,train\n", filename="p.csv")


def test_parse_tasks_checks_every_line():
    good = {"prompt": "p", "completions": ["a", "b", "c", "d"], "model": "m", "kind": "eval", "overlap": 2}
    assert parse_tasks(_jsonl([good]))[0].overlap == 2
    bad = [
        good,
        {**good, "completions": ["a"] * 3},
        {**good, "kind": "weird"},
        {**good, "overlap": 0},
        {"prompt": True},
    ]
    with pytest.raises(InvalidInput) as err:
        parse_tasks(_jsonl(bad))
    assert err.value.details["lines"] == [2, 3, 4, 5] and "4 to 9 completions, got 3" in err.value.message


def test_upload_prompts_page_imports_whole_file_or_nothing(client, factory, db):
    csrf = browser_login(client, factory.researcher())
    before = db.scalar(select(func.count()).select_from(Prompt))
    bad = _jsonl([{"text": "upload one"}, {"text": " "}])
    resp = client.post("/prompts/upload", data={"csrf_token": csrf}, files={"file": ("p.jsonl", bad)})
    assert resp.status_code == 422 and "line 2: prompt text is empty" in resp.text
    assert db.scalar(select(func.count()).select_from(Prompt)) == before
    good = _jsonl([{"text": "upload one"}, {"text": "upload two"}, {"text": "UPLOAD one"}])
    resp = client.post("/prompts/upload", data={"csrf_token": csrf}, files={"file": ("p.jsonl", good)})
    assert resp.status_code == 200 and "Imported 2 new prompt(s); 1 duplicate(s) skipped." in resp.text
    assert db.scalar(select(func.count()).select_from(Prompt)) == before + 2
    listing = client.get("/prompts", params={"q": "upload t"})
    assert "upload two" in listing.text and "upload one" not in listing.text


def test_upload_prompts_csv_with_a_split_ratio(client, factory, db):
    csrf = browser_login(client, factory.researcher())
    rows = "text,topic\n" + "".join(f"csv upload prompt {i},t{i % 3}\n" for i in range(40))
    resp = client.post(
        "/prompts/upload",
        data={"csrf_token": csrf, "split_ratio": "0.5,0.5,0"},
        files={"file": ("p.csv", rows.encode())},
    )
    assert resp.status_code == 200 and "Imported 40 new prompt(s); 0 duplicate(s) skipped." in resp.text
    stored = db.scalars(select(Prompt).where(Prompt.text.like("csv upload prompt %"))).all()
    splits = Counter(p.split.value for p in stored)
    assert len(stored) == 40 and set(splits) <= {"train", "validation"} and splits["train"] > 0 < splits["validation"]
    assert {p.meta["topic"] for p in stored} == {"t0", "t1", "t2"}
    bad = client.post(
        "/prompts/upload", data={"csrf_token": csrf, "split_ratio": "0.5,0.6"}, files={"file": ("p.csv", rows.encode())}
    )
    assert bad.status_code == 422


def test_upload_tasks_page_and_task_detail(client, factory, db):
    csrf = browser_login(client, factory.researcher())
    row = {"prompt": "Uploaded <b>task</b> prompt", "completions": ["w", "x", "y", "z"], "model": "ext"}
    bad = _jsonl([row, {**row, "completions": ["a"] * 10}])
    resp = client.post("/tasks/upload", data={"csrf_token": csrf}, files={"file": ("t.jsonl", bad)})
    assert resp.status_code == 422 and "line 2: a ranking task needs 4 to 9 completions, got 10" in resp.text
    assert db.scalar(select(func.count()).select_from(RankingTask).where(RankingTask.created_by_id.is_not(None))) == 0
    resp = client.post("/tasks/upload", data={"csrf_token": csrf}, files={"file": ("t.jsonl", _jsonl([row, row]))})
    assert resp.status_code == 200 and "Imported 2 task(s)." in resp.text
    assert "Uploaded &lt;b&gt;task&lt;/b&gt; prompt" in resp.text
    task = make_task(db, k=4, prompt_text="Searchable zebra prompt")
    detail = client.get(f"/tasks/{task.id}")
    assert detail.status_code == 200 and "No rankings yet." in detail.text
    listing = client.get("/tasks", params={"q": "zebra"}).text
    assert f"/tasks/{task.id}" in listing and "Uploaded &lt;b&gt;task" not in listing
    labeler = factory.labeler()
    ids = [i.completion_id for i in task.items]
    buckets = [[ids[2]], ids[:2] + ids[3:]]
    db.add(Ranking(task_id=task.id, labeler_id=labeler.id, idempotency_key="detail", buckets=buckets))
    db.flush()
    detail = client.get(f"/tasks/{task.id}").text
    assert labeler.username in detail and "No rankings yet." not in detail


def test_researcher_pages_are_for_researchers(client, factory):
    browser_login(client, factory.labeler())
    assert client.get("/prompts", headers={"accept": "text/html"}).status_code == 403
    assert client.get("/tasks", headers={"accept": "text/html"}).status_code == 403


def test_cli_imports(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url, "head")
    env = {**os.environ, "RANKLAB_DATABASE_URL": url, "RANKLAB_DATA_DIR": str(tmp_path)}

    def run(*args):
        cmd = [sys.executable, "-c", "from trainer.cli import main; main()", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

    prompts = tmp_path / "prompts.csv"
    prompts.write_text("text,split\nFirst prompt,train\nSecond prompt,\nfirst  PROMPT,\n")
    out = run("import", "prompts", str(prompts), "--split-ratio", "0,0,1")
    assert out.returncode == 0, out.stderr
    assert "created 2 prompt(s), 1 duplicate(s) skipped" in out.stdout
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        _jsonl([{"prompt": 1, "completions": list("abcd")}, {"prompt": "new", "completions": list("abc")}]).decode()
    )
    bad = run("import", "tasks", str(tasks))
    assert bad.returncode == 1 and "line 2" in bad.stderr and "got 3" in bad.stderr
    tasks.write_text(
        _jsonl([{"prompt": 1, "completions": list("abcd")}, {"prompt": "new", "completions": list("abcde")}]).decode()
    )
    ok = run("import", "tasks", str(tasks))
    assert ok.returncode == 0 and "created 2 task(s)" in ok.stdout, ok.stderr
