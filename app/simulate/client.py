"""The public ranklab HTTP API, as the simulator uses it (bearer tokens; nothing but /api/v1)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx


class ApiError(RuntimeError):
    """A request the server refused; the message carries its status and detail."""

    def __init__(self, response: httpx.Response) -> None:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        super().__init__(f"{response.request.method} {response.request.url.path}: {response.status_code} {detail}")
        self.status_code = response.status_code


class Api:
    """One account's session with the server (its own connection pool; one per thread is safest)."""

    def __init__(self, base_url: str, *, timeout: float = 60.0, transport: httpx.BaseTransport | None = None) -> None:
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)
        self.username = ""

    def close(self) -> None:
        self.http.close()

    def login(self, username: str, password: str) -> Api:
        """OAuth2 password flow; later requests carry the bearer token."""
        resp = self.http.post("/api/v1/auth/token", data={"username": username, "password": password})
        self._check(resp)
        self.http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
        self.username = username
        return self

    def _check(self, resp: httpx.Response) -> httpx.Response:
        if resp.status_code >= 400:
            raise ApiError(resp)
        return resp

    def get(self, path: str, **params: Any) -> Any:
        return self._check(self.http.get(path, params=params)).json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._check(self.http.post(path, json=body)).json()

    # --- accounts (admin) ---
    def create_user(self, *, username: str, password: str, role: str, status: str | None = None) -> dict[str, Any]:
        body = {"username": username, "password": password, "role": role}
        if status:
            body["status"] = status
        return dict(self.post("/api/v1/users", body))

    def users(self, role: str | None = None) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/users", **({"role": role} if role else {})))

    # --- tasks and prompts (researcher) ---
    def tasks(self, *, kind: str | None = None, page: int = 500) -> Iterator[dict[str, Any]]:
        """Every task (of a kind), newest first, page by page."""
        offset = 0
        while True:
            params: dict[str, Any] = {"limit": page, "offset": offset, **({"kind": kind} if kind else {})}
            body = self.get("/api/v1/tasks", **params)
            yield from body["items"]
            offset += len(body["items"])
            if not body["items"] or offset >= body["total"]:
                return

    def count_tasks(self, *, kind: str | None = None) -> int:
        return int(self.get("/api/v1/tasks", limit=1, **({"kind": kind} if kind else {}))["total"])

    def task(self, task_id: int) -> dict[str, Any]:
        return dict(self.get(f"/api/v1/tasks/{task_id}"))

    def create_task(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post("/api/v1/tasks", body))

    def promote_gold(self, task_id: int) -> dict[str, Any]:
        return dict(self.post(f"/api/v1/tasks/{task_id}/promote-gold", {}))

    def prompt_ids(self, *, split: str) -> set[int]:
        ids: set[int] = set()
        while True:
            body = self.get("/api/v1/prompts", split=split, limit=500, offset=len(ids))
            ids.update(p["id"] for p in body["items"])
            if not body["items"] or len(ids) >= body["total"]:
                return ids

    def prompt_messages(self, *, split: str, limit: int) -> list[list[dict[str, str]]]:
        """Up to `limit` prompts (their conversations) of a split, lowest ids first."""
        found: list[list[dict[str, str]]] = []
        while len(found) < limit:
            body = self.get("/api/v1/prompts", split=split, limit=min(500, limit - len(found)), offset=len(found))
            found += [p["messages"] for p in body["items"]]
            if not body["items"] or len(found) >= body["total"]:
                break
        return found

    def models(self) -> list[dict[str, Any]]:
        """Every registered model version (id, kind, path, parent_id, metrics)."""
        return list(self.get("/api/v1/models"))

    def sampling_in_progress(self) -> bool:
        """Whether a sampling job is queued or running (more tasks are on their way)."""
        return any(self.get("/api/v1/jobs", kind="sample", status=s, limit=1) for s in ("queued", "running"))

    def agreement_labelers(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/agreement/labelers"))

    # --- labeling (anyone who ranks) ---
    def next_assignment(self, task_type: str = "ranking") -> dict[str, Any] | None:
        """The next assignment of this type (ranking or demonstration); None when there is nothing to do (204).
        Raises ApiError (403: not allowed)."""
        resp = self.http.get("/api/v1/labeling/next", params={"type": task_type})
        if resp.status_code == 204:
            return None
        return dict(self._check(resp).json())

    def submit(self, assignment_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post(f"/api/v1/labeling/assignments/{assignment_id}/ranking", body))

    def submit_demonstration(self, assignment_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post(f"/api/v1/labeling/assignments/{assignment_id}/demonstration", body))

    # --- demonstrations (researcher) ---
    def create_demonstration_tasks(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post("/api/v1/demonstrations/tasks", body))

    def demonstrations(self, *, status: str, limit: int = 500) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/demonstrations", status=status, limit=limit)["items"])

    def review_demonstration(self, demonstration_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post(f"/api/v1/demonstrations/{demonstration_id}/review", body))


def wait_for_server(base_url: str, *, timeout_s: float) -> bool:
    """Poll /healthz until the server answers (it may still be starting next to us)."""

    def up() -> bool:
        try:
            return httpx.get(f"{base_url.rstrip('/')}/healthz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    return wait_until(up, timeout_s=timeout_s, every_s=1.0)


def wait_until(predicate: Any, *, timeout_s: float, every_s: float = 2.0) -> bool:
    """Poll predicate() until it is true or the time is up; returns its last answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(every_s, max(0.0, deadline - time.monotonic())))
