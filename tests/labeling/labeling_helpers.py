"""What the labeling API tests share: the endpoints and a row count."""

from sqlalchemy import func, select

from app.models import Ranking, RankingItem

NEXT = "/api/v1/labeling/next"


def submit_url(assignment_id):
    return f"/api/v1/labeling/assignments/{assignment_id}/ranking"


def lease_url(assignment_id):
    return f"/api/v1/labeling/assignments/{assignment_id}/lease"


def counts(db):
    return (
        db.scalar(select(func.count()).select_from(Ranking)),
        db.scalar(select(func.count()).select_from(RankingItem)),
    )
