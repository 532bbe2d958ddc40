import json
import logging

from app.logging_setup import JsonFormatter, redact
from tests.factories import PASSWORD


def _record(msg: str, **extra) -> logging.LogRecord:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, msg, None, None)
    for k, v in extra.items():
        setattr(record, k, v)
    return record


def test_json_lines_with_extra_fields():
    line = JsonFormatter().format(_record("request", path="/healthz", status=200))
    data = json.loads(line)
    assert data["msg"] == "request" and data["path"] == "/healthz" and data["status"] == 200
    assert data["level"] == "INFO" and "ts" in data


def test_secrets_are_redacted():
    line = JsonFormatter().format(_record("login password=hunter22 token: abc.def", password="hunter22", api_token="t"))
    assert "hunter22" not in line and "abc.def" not in line
    data = json.loads(line)
    assert data["password"] == "***" and data["api_token"] == "***"
    assert redact({"nested": {"Authorization": "Bearer x"}}) == {"nested": {"Authorization": "***"}}


def test_request_logs_never_contain_credentials(client, factory, caplog):
    user = factory.labeler()
    with caplog.at_level(logging.DEBUG):
        resp = client.post("/api/v1/auth/token", data={"username": user.username, "password": PASSWORD})
        token = resp.json()["access_token"]
        client.get(f"/healthz?token={token}", headers={"Authorization": f"Bearer {token}"})
    formatter = JsonFormatter()
    text = "\n".join(formatter.format(r) for r in caplog.records)
    assert "/api/v1/auth/token" in text  # the access log saw the request
    assert PASSWORD not in text and token not in text


def test_words_that_only_contain_a_credential_name_are_kept():
    assert redact("sampled 2988 tokens at 5.2 tokens/s") == "sampled 2988 tokens at 5.2 tokens/s"
    assert redact("passwords are stored as argon2 hashes") == "passwords are stored as argon2 hashes"
    assert redact("Authorization: Bearer abc.def") == "Authorization: *** ***"
    assert redact("GET /x?access_token=zzz&y=1") == "GET /x?access_token=***&y=1"
