"""Pydantic request/response models (XCreate / XRead); one module per feature, account models here."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.models import Role, UserStatus


class TokenRead(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class UserCreate(BaseModel):
    username: str = Field(min_length=3, max_length=64)
    password: str = Field(min_length=8, max_length=256)
    role: Role
    status: UserStatus | None = None


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=256)
    new_password: str = Field(min_length=8, max_length=256)


class UserUpdate(BaseModel):
    status: UserStatus
    reason: str = ""


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    role: Role
    status: UserStatus
    created_at: datetime
    last_login_at: datetime | None


class HealthRead(BaseModel):
    status: str
    database: str
    db_roundtrip_ms: float
