"""Every kind of notice an institute can receive has the words telling it what to do, and the API and the
event contract agree on the kinds."""

from __future__ import annotations

from typing import get_args

from services.export.notices import ACTIONS
from services.export.schemas import NoticeRead
from shared.contracts.domain_events import NoticeData


def _kinds(annotation: object) -> set[str]:
    return set(get_args(annotation))


def test_every_kind_of_notice_says_what_the_institute_must_do() -> None:
    kinds = _kinds(NoticeData.model_fields["kind"].annotation)
    assert kinds == {"destroy", "restrict", "restriction_lifted", "rectify"}
    assert set(ACTIONS) == kinds
    assert _kinds(NoticeRead.model_fields["kind"].annotation) == kinds
    assert all("acknowledge" in text.lower() for text in ACTIONS.values())
