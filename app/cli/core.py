"""`ranklab migrate` and `ranklab serve`."""

from __future__ import annotations

import typer

from app.cli import cli


@cli.command()
def migrate(revision: str = typer.Argument("head", help="Alembic revision to upgrade to.")) -> None:
    """Upgrade the database schema (RANKLAB_DATABASE_URL) to the latest revision."""
    from app import migrate as m
    from app.config import get_settings

    settings = get_settings()
    m.upgrade(settings.sqlalchemy_url, revision)
    typer.echo(f"database is at revision {revision}")
    if revision == "head":
        from app.db import get_sessionmaker
        from app.services.agreement import aggregates

        with get_sessionmaker()() as session, session.begin():
            if aggregates.is_empty(session):  # just migrated to the aggregates: fill them once
                n = aggregates.rebuild(session, window=settings.gold_window)
                typer.echo(f"agreement aggregates built from {n} rankings")


@cli.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Number of uvicorn worker processes."),
    reload: bool = typer.Option(False, help="Reload on code changes (development)."),
    forwarded_allow_ips: str = typer.Option(
        "",
        help="Proxies whose X-Forwarded-For/-Proto are believed (comma-separated, or '*' when only a proxy can "
        "reach the server). Default: none, so nobody can fake the client address that the failed-login limit "
        "counts; give your TLS proxy's address (127.0.0.1 when it runs on this host and nothing else does).",
    ),
) -> None:
    """Run the web server (uvicorn). Run `ranklab migrate` first; the server never migrates."""
    import uvicorn

    from app.config import DEV_KEY_WARNING, get_settings

    if get_settings().uses_development_key:
        typer.secho(f"WARNING: {DEV_KEY_WARNING}", fg=typer.colors.RED, bold=True, err=True)

    uvicorn.run(
        "app.main:app",
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        proxy_headers=bool(forwarded_allow_ips),
        forwarded_allow_ips=forwarded_allow_ips or None,
        access_log=False,
        log_config=None,
    )
