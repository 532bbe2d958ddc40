"""Over real HTTP (uvicorn): a response is sent only after its transaction committed.

FastAPI runs a yield dependency's exit code after the response by default; the session dependency is declared with
scope="function" so a client that acts on a response (next -> submit) never races the commit.
"""

from __future__ import annotations

import time

import httpx
from sqlalchemy import event, select

from app.models import Prompt, Role
from app.services import users as user_service

PASSWORD = "commit-order-pass"


def test_response_waits_for_commit(live_server):
    with live_server.session() as s:
        user_service.create_user(s, username="commit-order", password=PASSWORD, role=Role.researcher)
    engine = live_server.sessions.kw["bind"]
    base = live_server.base_url
    token = httpx.post(f"{base}/api/v1/auth/token", data={"username": "commit-order", "password": PASSWORD}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}

    def slow_commit(conn) -> None:  # type: ignore[no-untyped-def]
        time.sleep(0.4)

    event.listen(engine, "commit", slow_commit)
    try:
        resp = httpx.post(
            f"{base}/api/v1/prompts", json={"prompts": [{"text": "committed before the answer?"}]}, headers=headers
        )
    finally:
        event.remove(engine, "commit", slow_commit)
    assert resp.status_code == 201, resp.text
    with live_server.session() as s:
        assert s.scalar(select(Prompt).where(Prompt.text == "committed before the answer?")) is not None
