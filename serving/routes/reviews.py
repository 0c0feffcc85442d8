"""Routes for the human review queue (scope ``review`` or ``admin``): list, read and decide the
reviews of the caller's tenant. A reviewer without ``admin`` sees only reviews of answers whose every
retrieved document it may read now (``answer.visibility``), as ``GET /v1/feedback`` does."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Path, Query

from answer.reviews import Review, ReviewStatus, decide_review, get_review, list_reviews
from serving.deps import PrincipalDep, ServicesDep
from serving.protocol_reviews import ReviewDecisionRequest, ReviewPage, WireReview
from sourcebook.keys import Principal

router = APIRouter()
ReviewId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _groups(principal: Principal) -> tuple[str, ...] | None:
    principal.require_any("review", "admin")
    return None if "admin" in principal.scopes else principal.groups


@router.get("/v1/reviews")
async def reviews(
    services: ServicesDep,
    principal: PrincipalDep,
    status: ReviewStatus | None = None,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ReviewPage:
    """The tenant's reviews, oldest first; ``next_after`` pages on."""
    groups = _groups(principal)

    def load() -> list[Review]:
        with services.pool.connection() as conn:
            return list_reviews(
                conn, tenant_id=principal.tenant_id, groups=groups, status=status, after_id=after, limit=limit
            )

    rows = await anyio.to_thread.run_sync(load)
    return ReviewPage(data=[WireReview.of(r) for r in rows], next_after=rows[-1].id if len(rows) == limit else None)


@router.get("/v1/reviews/{review_id}")
async def review(review_id: ReviewId, services: ServicesDep, principal: PrincipalDep) -> WireReview:
    groups = _groups(principal)

    def load() -> Review:
        with services.pool.connection() as conn:
            return get_review(conn, review_id, tenant_id=principal.tenant_id, groups=groups)

    return WireReview.of(await anyio.to_thread.run_sync(load))


@router.post("/v1/reviews/{review_id}")
async def decide(
    review_id: ReviewId, body: ReviewDecisionRequest, services: ServicesDep, principal: PrincipalDep
) -> WireReview:
    """Approve, correct or reject a pending review, as the caller's key; a decided one is 409."""
    groups = _groups(principal)

    def store() -> Review:
        with services.pool.connection() as conn:
            return decide_review(
                conn,
                review_id,
                tenant_id=principal.tenant_id,
                groups=groups,
                reviewer_key_id=principal.key_id,
                decision=body.to_decision(),
            )

    return WireReview.of(await anyio.to_thread.run_sync(store))
