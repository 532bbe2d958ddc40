"""`ranklab users create|list|set-password|sign-out`."""

from __future__ import annotations

import sys

import typer

from app.cli import cli
from app.models import Role, UserStatus

users_cli = typer.Typer(help="Manage accounts.", no_args_is_help=True)
cli.add_typer(users_cli, name="users")


@users_cli.command("create")
def create(
    username: str = typer.Argument(..., help="Login name (3-64 letters, digits, _ . @ -)."),
    role: Role = typer.Option(..., "--role", help="labeler, researcher or admin."),
    status: UserStatus | None = typer.Option(None, help="Initial status (labelers default to screening)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
) -> None:
    """Create an account. The password is asked for at a prompt unless --password-stdin is given."""
    from app.db import get_sessionmaker
    from app.errors import DomainError
    from app.services import users as user_service

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with get_sessionmaker().begin() as session:
        try:
            user = user_service.create_user(session, username=username, password=password, role=role, status=status)
        except DomainError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(f"created {user.role.value} {user.username!r} (id {user.id}, status {user.status.value})")


@users_cli.command("list")
def list_(role: Role | None = typer.Option(None, help="Only this role.")) -> None:
    """List accounts."""
    from rich.console import Console
    from rich.table import Table

    from app.db import get_sessionmaker
    from app.services import users as user_service

    table = Table("id", "username", "role", "status", "created")
    with get_sessionmaker()() as session:
        for u in user_service.list_users(session, role=role):
            table.add_row(str(u.id), u.username, u.role.value, u.status.value, f"{u.created_at:%Y-%m-%d %H:%M}")
    Console().print(table)


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("New password", hide_input=True, confirmation_prompt=True))


@users_cli.command("set-password")
def set_password(
    username: str = typer.Argument(..., help="The account's login name."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
) -> None:
    """Set a new password; the user is signed out everywhere (every session and API token)."""
    from sqlalchemy import func, select

    from app.db import get_sessionmaker
    from app.errors import DomainError
    from app.models import User
    from app.services import users as user_service

    with get_sessionmaker().begin() as session:
        user = session.scalar(select(User).where(func.lower(User.username) == username.lower()))
        if user is None:
            typer.echo(f"error: no user named {username!r}", err=True)
            raise typer.Exit(1)
        try:
            user_service.set_password(session, user=user, password=_read_password(password_stdin), actor=None)
        except DomainError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(f"password of {user.username!r} changed; every session and API token of theirs is signed out")
