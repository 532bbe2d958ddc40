"""The OpenAPI schema tells the truth about errors: the app's own error bodies and every status it can return."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.factories import Factory, token_headers


def test_every_operation_documents_the_real_error_model(client: TestClient) -> None:
    schema = client.get("/api/openapi.json").json()
    assert "HTTPValidationError" not in json.dumps(schema)
    assert schema["paths"] and all(p.startswith("/api/") or p == "/healthz" for p in schema["paths"])
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            where = f"{method.upper()} {path}"
            assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ValidationError")
            for status in ("500", "503"):
                assert responses[status]["content"]["application/json"]["schema"]["$ref"].endswith("/Error"), where
            if "{" in path:
                assert "404" in responses, where
            if path.startswith("/api/v1/") and path != "/api/v1/auth/token":
                assert {"401", "403"} <= set(responses), where
    token = schema["paths"]["/api/v1/auth/token"]["post"]["responses"]
    assert {"401", "429"} <= set(token) and "Retry-After" in token["429"]["headers"]
    assert "410" in schema["paths"]["/api/v1/labeling/assignments/{assignment_id}/ranking"]["post"]["responses"]


def test_the_documented_validation_error_is_what_the_app_answers(client: TestClient, factory: Factory) -> None:
    import jsonschema_rs

    schema = client.get("/api/openapi.json").json()["components"]["schemas"]
    headers = token_headers(client, factory.researcher())
    bad = client.post("/api/v1/tasks", json={"prompt": "hi", "completions": "not a list"}, headers=headers)
    assert bad.status_code == 422
    jsonschema_rs.validate(schema["ValidationError"], bad.json())
    malformed = client.post(
        "/api/v1/tasks", content=b"{not json", headers={**headers, "Content-Type": "application/json"}
    )
    assert malformed.status_code in (400, 422)
    jsonschema_rs.validate(schema["Error"], malformed.json())
    missing = client.get("/api/v1/tasks/123456789", headers=headers)
    assert missing.status_code == 404
    jsonschema_rs.validate(schema["Error"], missing.json())
