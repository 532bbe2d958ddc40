"""Fixtures of the labeling tests."""

import pytest

from tests.factories import make_task, token_headers
from tests.labeling.labeling_helpers import NEXT


@pytest.fixture
def labeler_task(client, factory, db):
    """An active labeler with a leased 4-output task."""
    task = make_task(db, k=4)
    labeler = factory.labeler()
    headers = token_headers(client, labeler)
    got = client.get(NEXT, headers=headers)
    assert got.status_code == 200, got.text
    return labeler, headers, task, got.json()
