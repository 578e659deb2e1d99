"""The public statistics: what was served, clicked, bought, reported and handed to a person, over
the last day, the last week and since launch, computed from the audit trail (never from counters)."""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from serving.records.audit import POSITIVE_KINDS, cases_table, feedback_table, served_table


def compute_stats(engine: Engine, now: datetime) -> dict:
    """The public figures over the last day, the last week and since launch, from the records."""
    windows = {"day": now - timedelta(days=1), "week": now - timedelta(days=7), "all": None}
    out = {"computed_at": now.isoformat(), "windows": {}}
    with engine.connect() as connection:
        for name, since in windows.items():
            out["windows"][name] = _window(connection, since, now)
    return out


def _window(connection, since: datetime | None, until: datetime) -> dict:
    s, f, c = served_table.c, feedback_table.c, cases_table.c

    def within(column):
        return sa.and_(column >= since, column <= until) if since is not None else column <= until

    # feedback naming an offer its response did not serve counts for nothing
    genuine = sa.or_(f.offer_served.is_(None), f.offer_served.is_(True))

    served = connection.execute(
        sa.select(s.endpoint, s.n_offers, s.latency_ms).where(within(s.served_at))).all()
    offers_served = sum(r.n_offers for r in served if r.endpoint == "offers")
    latencies = sorted(r.latency_ms for r in served if r.latency_ms is not None)
    kinds = dict(connection.execute(
        sa.select(f.kind, sa.func.count()).where(within(f.created_at), genuine)
        .group_by(f.kind)).all())
    distinct = {kind: connection.execute(
        sa.select(sa.func.count()).select_from(
            sa.select(f.request_id, f.offer_id).where(within(f.created_at), genuine,
                                                      f.kind == kind)
            .distinct().subquery())).scalar_one() for kind in POSITIVE_KINDS}
    total_feedback = sum(kinds.values())
    positive = sum(kinds.get(kind, 0) for kind in POSITIVE_KINDS)
    opened = dict(connection.execute(
        sa.select(c.kind, sa.func.count()).where(within(c.opened_at)).group_by(c.kind)).all())
    resolved = dict(connection.execute(
        sa.select(c.kind, sa.func.count())
        .where(c.resolved_at.is_not(None), within(c.resolved_at)).group_by(c.kind)).all())
    return {
        "since": None if since is None else since.isoformat(),
        "offer_responses": sum(1 for r in served if r.endpoint == "offers"),
        "explanations": sum(1 for r in served if r.endpoint == "why"),
        "offers_served": offers_served,
        "clicked_share": _share(distinct["clicked"], offers_served),
        "purchased_share": _share(distinct["purchased"], offers_served),
        "feedback": total_feedback,
        "positive_feedback_share": _share(positive, total_feedback),
        "reports": {"opened": opened.get("report", 0), "resolved": resolved.get("report", 0)},
        "handoffs": {"opened": opened.get("talk_to_person", 0),
                     "resolved": resolved.get("talk_to_person", 0)},
        "latency_ms": {"median": statistics.median(latencies) if latencies else None,
                       "p95": _percentile(latencies, 0.95)},
    }


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    if not values:
        return None
    rank = max(1, -(-int(q * 1000 * len(values)) // 1000))
    return values[min(rank, len(values)) - 1]
