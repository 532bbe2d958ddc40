"""How long the ranklab web process takes from exec to its first answered /healthz, against a bare FastAPI app.

    python bench/web_startup.py --runs 5

Prints a markdown row for docs/benchmarks.md. Also checks that the web process imported no torch.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BARE_APP = """
from fastapi import FastAPI
app = FastAPI()
@app.get("/healthz")
def healthz():
    return {"status": "ok"}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _time_to_first_response(app_ref: str, env: dict[str, str], cwd: str) -> float:
    port = _free_port()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app_ref, "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - start
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"{app_ref} exited with {proc.returncode}") from None
                time.sleep(0.01)
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="start-ups to time for each app")
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/bench.db"
        env = {**os.environ, "RANKLAB_DATABASE_URL": db, "RANKLAB_DATA_DIR": tmp, "PYTHONPATH": f"{root}:{tmp}"}
        from app.migrate import upgrade

        upgrade(db)
        Path(tmp, "bare_app.py").write_text(BARE_APP)
        code = "import sys, app.main; print(','.join(m for m in ('torch', 'transformers') if m in sys.modules))"
        heavy = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True)
        ranklab = [_time_to_first_response("app.main:app", env, str(root)) for _ in range(args.runs)]
        bare = [_time_to_first_response("bare_app:app", env, tmp) for _ in range(args.runs)]
    r, b = statistics.median(ranklab), statistics.median(bare)
    print(f"torch/transformers imported by app.main: {heavy.stdout.strip() or 'none'}")
    print(f"| app | median s to first /healthz (n={args.runs}) | ratio |")
    print("|---|---|---|")
    print(f"| ranklab web (app.main:app, SQLite) | {r:.3f} | {r / b:.2f}x |")
    print(f"| bare FastAPI app | {b:.3f} | 1.00x |")


if __name__ == "__main__":
    main()
