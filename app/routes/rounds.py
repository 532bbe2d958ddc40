"""Rounds of the loop (researchers): start one, follow them, cancel one. The worker advances them."""

from __future__ import annotations

from fastapi import APIRouter, Query

from app.deps import CurrentResearcher, SessionDep, SettingsDep
from app.schemas.rounds import RoundParams, RoundRead
from app.services import rounds as round_service

router = APIRouter(prefix="/api/v1", tags=["rounds"])


@router.post("/rounds", response_model=RoundRead, status_code=201, name="create_round")
def create_round(body: RoundParams, session: SessionDep, settings: SettingsDep, user: CurrentResearcher) -> RoundRead:
    """Start a round: sample with the newest policy now; rank, reward model, PPO and evaluation follow."""
    round_ = round_service.create_round(session, params=body, created_by=user, max_attempts=settings.job_max_attempts)
    return RoundRead.model_validate(round_)


@router.get("/rounds", response_model=list[RoundRead], name="list_rounds")
def list_rounds(session: SessionDep, _user: CurrentResearcher, limit: int = Query(50, ge=1, le=500)) -> list[RoundRead]:
    return [RoundRead.model_validate(r) for r in round_service.list_rounds(session, limit=limit)]


@router.get("/rounds/{round_id}", response_model=RoundRead, name="get_round")
def get_round(round_id: int, session: SessionDep, _user: CurrentResearcher) -> RoundRead:
    return RoundRead.model_validate(round_service.get_round(session, round_id=round_id))


@router.post("/rounds/{round_id}/cancel", response_model=RoundRead, name="cancel_round")
def cancel_round(round_id: int, session: SessionDep, user: CurrentResearcher) -> RoundRead:
    return RoundRead.model_validate(round_service.cancel_round(session, round_id=round_id, actor=user))
