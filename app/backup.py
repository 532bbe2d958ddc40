"""Backups of the labels: a consistent snapshot of the database plus the model registry's manifest, and restores.

`backup(url, folder)` writes a new folder:

* `database.sqlite3` (SQLite): a copy made with SQLite's online backup API while the server keeps running. The copy
  reads one snapshot (WAL: writers go on meanwhile), so it holds whole transactions only.
* `database.dump` (PostgreSQL): `pg_dump --format=custom` run on a snapshot exported from a REPEATABLE READ
  transaction, which also counts the rows of every table and reads the model registry: the manifest describes
  exactly what the dump holds.
* `manifest.json`: the backend, the schema revision, the rows of every table, a SHA-256 of the database file, and
  every model version (path, files and their sizes, whether they were on disk). Model files are not copied (they are
  large and rebuilt by jobs); back up the data folder's `models/` with your usual tools if you need them.

`restore(url, folder)` checks the file against the manifest, refuses a database that holds any row, loads the
backup (SQLite's backup API into the file; `pg_restore --single-transaction`), then counts every table against the
manifest. The CLI commands are `ranklab backup PATH` and `ranklab restore PATH` (docs/operations.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, func, inspect, select, table, text
from sqlalchemy.engine import URL, make_url

from app.storage import atomic_dir

FORMAT = 1
"""Version of the backup folder's layout (manifest.json says which)."""
SQLITE_FILE, PG_FILE, MANIFEST = "database.sqlite3", "database.dump", "manifest.json"


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says why and what to do."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _counts(conn: Connection) -> dict[str, int]:
    """Rows of every table the database has (its own bookkeeping tables aside)."""
    names = sorted(n for n in inspect(conn).get_table_names() if not n.startswith("sqlite_"))
    return {name: int(conn.execute(select(func.count()).select_from(table(name))).scalar_one()) for name in names}


def _revision(conn: Connection) -> str | None:
    if "alembic_version" not in inspect(conn).get_table_names():
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _models(conn: Connection) -> list[dict[str, Any]]:
    """Every registered model version with the files of its folder (as they are on this machine now)."""
    if "model_versions" not in inspect(conn).get_table_names():
        return []
    rows = conn.execute(text("SELECT id, kind, name, path, parent_id, job_id FROM model_versions ORDER BY id"))
    models = []
    for id_, kind, name, path, parent_id, job_id in rows:
        folder = Path(path or "")
        files = (
            {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
            if path and folder.is_dir()
            else {}
        )
        models.append(
            {"id": id_, "kind": kind, "name": name, "path": path, "parent_id": parent_id, "job_id": job_id,
             "present": bool(files), "files": files, "bytes": sum(files.values())}
        )  # fmt: skip
    return models


def _describe(conn: Connection) -> dict[str, Any]:
    return {"revision": _revision(conn), "tables": _counts(conn), "models": _models(conn)}


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored; use a file")
    return Path(url.database)


@contextmanager
def _new_folder(folder: Path) -> Iterator[Path]:
    """A temporary folder beside `folder`, renamed to it when complete (a half-written backup never looks whole)."""
    if folder.exists():
        if not folder.is_dir() or any(folder.iterdir()):
            raise BackupError(f"{folder} already exists and is not empty; give a new folder for the backup")
        folder.rmdir()
    with atomic_dir(folder) as partial:
        yield partial


def backup(database_url: str, folder: Path) -> dict[str, Any]:
    """Write a consistent snapshot of the database at `database_url` and its manifest into the new `folder`."""
    url, started = make_url(database_url), time.monotonic()
    with _new_folder(Path(folder)) as partial:
        if url.get_backend_name() == "sqlite":
            described = _backup_sqlite(_sqlite_path(url), partial / SQLITE_FILE)
            name = SQLITE_FILE
        elif url.get_backend_name() == "postgresql":
            described = _backup_postgres(url, partial / PG_FILE)
            name = PG_FILE
        else:
            raise BackupError(f"backups support SQLite and PostgreSQL, not {url.get_backend_name()}")
        manifest = {
            "format": FORMAT,
            "backend": url.get_backend_name(),
            "database_file": name,
            "sha256": _sha256(partial / name),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **described,
            "seconds": round(time.monotonic() - started, 3),
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _backup_sqlite(source: Path, target: Path) -> dict[str, Any]:
    if not source.is_file():
        raise BackupError(f"there is no SQLite database at {source}")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=60)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)  # one step: the whole database as of one read snapshot, while writers go on (WAL)
        dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
    finally:
        dst.close()
        src.close()
    engine = create_engine(f"sqlite:///{target}")
    try:
        with engine.connect() as conn:
            return _describe(conn)
    finally:
        engine.dispose()


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection URI (no password in it) and the environment carrying the password."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return url.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


def _pg_tool(name: str, server_major: int) -> str:
    """The `pg_dump` / `pg_restore` matching the server: Debian's versioned folder first, then the PATH."""
    for candidate in (f"/usr/lib/postgresql/{server_major}/bin/{name}", shutil.which(name)):
        if candidate and Path(candidate).is_file():
            out = subprocess.run([candidate, "--version"], capture_output=True, text=True, check=False).stdout
            found = re.search(r"(\d+)(?:\.\d+)?", out)
            if found and int(found.group(1)) >= server_major:
                return candidate
    raise BackupError(
        f"no {name} for PostgreSQL {server_major} or newer was found; install the client of the server's version "
        f"(Debian/Ubuntu: apt-get install postgresql-client-{server_major})"
    )


def _server_major(conn: Connection) -> int:
    return int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise BackupError(f"{what} failed: {done.stderr.strip() or done.stdout.strip()}")


def _backup_postgres(url: URL, target: Path) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                pg_dump = _pg_tool("pg_dump", _server_major(conn))
                snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                described = _describe(conn)  # the same snapshot the dump reads
                uri, env = _libpq(url)
                command = [pg_dump, "--format=custom", "--no-owner", f"--snapshot={snapshot}", f"--file={target}", uri]
                _run(command, env, "pg_dump")
    finally:
        engine.dispose()
    return described


def _check_empty(conn: Connection, where: str) -> None:
    filled = {name: n for name, n in _counts(conn).items() if n and name != "alembic_version"}
    if filled:
        listed = ", ".join(f"{name} ({n} rows)" for name, n in sorted(filled.items())[:5])
        raise BackupError(
            f"the database at {where} is not empty: {listed}; restore into a new database (or one only migrated)"
        )


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise BackupError(f"{folder} has no {MANIFEST}; is it a folder written by `ranklab backup`?")
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{folder} is a backup of format {manifest.get('format')}; this ranklab reads {FORMAT}")
    data = Path(folder) / manifest["database_file"]
    if not data.is_file() or _sha256(data) != manifest["sha256"]:
        raise BackupError(f"{data} is missing or does not match the SHA-256 in the manifest; the backup is damaged")
    return manifest


def restore(database_url: str, folder: Path) -> dict[str, Any]:
    """Load the backup in `folder` into the empty database at `database_url`; returns the counts and notes."""
    url, folder = make_url(database_url), Path(folder)
    manifest = _read_manifest(folder)
    if manifest["backend"] != url.get_backend_name():
        raise BackupError(
            f"this is a {manifest['backend']} backup; restore it into a {manifest['backend']} database, not "
            f"{url.get_backend_name()}"
        )
    where = url.render_as_string(hide_password=True)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            _check_empty(conn, where)
            server_major = _server_major(conn) if url.get_backend_name() == "postgresql" else 0
    finally:
        engine.dispose()
    if url.get_backend_name() == "sqlite":
        _restore_sqlite(folder / manifest["database_file"], _sqlite_path(url))
    else:
        uri, env = _libpq(url)
        dump = str(folder / manifest["database_file"])
        flags = ["--no-owner", "--no-privileges", "--clean", "--if-exists", "--single-transaction", "--exit-on-error"]
        command = [_pg_tool("pg_restore", server_major), *flags, f"--dbname={uri}", dump]
        _run(command, env, "pg_restore")
    return _verify(url, manifest)


def _restore_sqlite(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target, timeout=60)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=WAL")
    finally:
        dst.close()
        src.close()


def _verify(url: URL, manifest: dict[str, Any]) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            counts = _counts(conn)
    finally:
        engine.dispose()
    wrong = {t: (n, counts.get(t)) for t, n in manifest["tables"].items() if counts.get(t) != n}
    if wrong:
        raise BackupError(f"the restored tables do not match the manifest (expected, found): {wrong}")
    notes = []
    from app.migrate import head_revision

    if manifest["revision"] != head_revision():
        notes.append(f"the backup is at schema revision {manifest['revision']}: run `ranklab migrate` before serving")
    missing = [m["id"] for m in manifest["models"] if m["present"] and not Path(m["path"]).is_dir()]
    if missing:
        notes.append(
            f"the files of model versions {', '.join(map(str, missing))} are not at their paths on this machine: "
            "copy RANKLAB_DATA_DIR/models from where they were (manifest.json lists every file)"
        )
    return {"tables": counts, "notes": notes}
