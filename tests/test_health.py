import subprocess
import sys


def test_healthz_reports_database_roundtrip(client, database_url):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok"
    assert body["database"] == ("sqlite" if database_url.startswith("sqlite") else "postgresql")
    assert body["db_roundtrip_ms"] >= 0


def test_web_app_imports_no_torch():
    code = "import sys, app.main; bad=[m for m in ('torch','transformers') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
