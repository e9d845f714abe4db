"""Trending: upvotes decayed by age, as on link aggregators.

    score = (upvotes + 1) / (age_hours + 2) ** GRAVITY

``age_hours`` counts from the day the paper was put on the daily feed (its publication when it never
was). GRAVITY = 1.5: a paper with 10 upvotes today outranks one with 40 from four days ago
((11 / 26^1.5 ≈ 0.083) > (41 / 122^1.5 ≈ 0.030)). The +1 lets new papers without votes be ordered by
freshness; the +2 hours keeps the first hours from dominating.
"""

from __future__ import annotations

from datetime import datetime

GRAVITY = 1.5


def trending_score(paper: dict, now: datetime | None = None) -> float:
    start = paper.get("submitted_on_daily_at") or paper.get("published_at")
    now = now or datetime.utcnow()
    age_hours = max(0.0, (now - start).total_seconds() / 3600) if start else 24 * 365.0
    return (paper.get("upvotes", 0) + 1) / (age_hours + 2) ** GRAVITY
