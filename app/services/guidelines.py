"""Labeling guidelines: a versioned markdown page that researchers edit."""

from __future__ import annotations

from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.models import Guideline, User

MAX_GUIDELINE_CHARS = 200_000
# Raw HTML in the markdown is escaped, and markdown-it refuses javascript:/data: links.
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")


def current_version(session: Session) -> int | None:
    """The newest guideline version number, or None before the first is published."""
    return session.scalar(select(func.max(Guideline.version)))


def get_guideline(session: Session, *, version: int | None = None) -> Guideline | None:
    """One version (the newest when not given); None when nothing is published; NotFound for a missing version."""
    if version is None:
        return session.scalars(select(Guideline).order_by(Guideline.version.desc()).limit(1)).first()
    found = session.scalar(select(Guideline).where(Guideline.version == version))
    if found is None:
        raise NotFound(f"no guideline version {version}")
    return found


def list_versions(session: Session) -> list[Guideline]:
    """Every published version, newest first."""
    return list(session.scalars(select(Guideline).order_by(Guideline.version.desc())))


def publish_guideline(session: Session, *, body: str, author: User | None) -> Guideline:
    """Store the text as the next version."""
    if not body.strip():
        raise InvalidInput("the guidelines are empty")
    if len(body) > MAX_GUIDELINE_CHARS:
        raise InvalidInput(f"the guidelines are longer than {MAX_GUIDELINE_CHARS} characters")
    guideline = Guideline(
        version=(current_version(session) or 0) + 1, body=body, author_id=author.id if author else None
    )
    session.add(guideline)
    session.flush()
    return guideline


def render_markdown(body: str) -> Markup:
    """Safe HTML for a markdown text (raw HTML in it is shown as text)."""
    return Markup(_markdown.render(body))  # noqa: S704 - markdown-it escapes raw HTML (html=False)
