"""Typed domain errors, mapped to HTTP responses in one place (app.main)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """An error a person can act on; `status_code` is the HTTP status it maps to."""

    status_code = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(DomainError):
    status_code = 422


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class Forbidden(DomainError):
    status_code = 403


class NotAuthenticated(DomainError):
    status_code = 401


class Gone(DomainError):
    status_code = 410


class RateLimited(DomainError):
    status_code = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s
