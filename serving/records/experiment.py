"""Champion/challenger outcomes from the audit trail: per arm, what was served and what customers
did with it (clicked, purchased, not relevant, reported), each share with its 95% Wilson interval,
and the challenger's difference from the champion with a 95% interval (Newcombe's method, from the
two Wilson intervals). Counted from the records, never from counters: a share is distinct
(response, offer) pairs with that feedback over the offers served in that arm since the
experiment began."""

from __future__ import annotations

import math
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from serving.records.audit import cases_table, feedback_table, served_table

OUTCOMES = ("clicked", "purchased", "not_relevant")
Z95 = 1.959963984540054


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a binomial share (None without trials)."""
    if trials == 0:
        return None
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials ** 2))
    # the interval holds p; rounding alone could put an end a hair past it (at 0 or 1 successes)
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def newcombe(a: tuple[int, int], b: tuple[int, int]) -> tuple[float, float, float] | None:
    """(difference b - a of two shares, low, high): Newcombe's hybrid score interval (1998,
    method 10), which stays inside [-1, 1] and behaves for small counts, unlike the Wald one."""
    (sa_, na), (sb, nb) = a, b
    if na == 0 or nb == 0:
        return None
    pa, pb = sa_ / na, sb / nb
    (la, ua), (lb, ub) = wilson(sa_, na), wilson(sb, nb)
    d = pb - pa
    return (d, d - math.sqrt((pb - lb) ** 2 + (ua - pa) ** 2),
            d + math.sqrt((ub - pb) ** 2 + (pa - la) ** 2))


def arm_outcomes(engine: Engine, since: datetime, until: datetime) -> dict[str, dict]:
    """Per arm recorded since `since`: responses, customers, offers served, and each outcome's
    count, share and interval."""
    s, f, c = served_table.c, feedback_table.c, cases_table.c
    window = sa.and_(s.arm.is_not(None), s.endpoint == "offers", s.served_at >= since,
                     s.served_at <= until)
    out: dict[str, dict] = {}
    with engine.connect() as connection:
        served = connection.execute(
            sa.select(s.arm, sa.func.count(), sa.func.count(sa.distinct(s.customer_id)),
                      sa.func.coalesce(sa.func.sum(s.n_offers), 0))
            .where(window).group_by(s.arm)).all()
        for arm, responses, customers, offers in served:
            out[arm] = {"responses": responses, "customers": customers,
                        "offers_served": int(offers)}
        pairs = sa.select(s.arm, f.kind, f.request_id, f.offer_id).join(
            served_table, f.request_id == s.request_id).where(
            window, f.kind.in_(OUTCOMES), sa.or_(f.offer_served.is_(None),
                                                 f.offer_served.is_(True))).distinct().subquery()
        counts = connection.execute(sa.select(pairs.c.arm, pairs.c.kind, sa.func.count())
                                    .group_by(pairs.c.arm, pairs.c.kind)).all()
        reports = connection.execute(
            sa.select(s.arm, sa.func.count()).join(served_table, c.request_id == s.request_id)
            .where(window, c.kind == "report").group_by(s.arm)).all()
    found = {(arm, kind): n for arm, kind, n in counts}
    for arm, figures in out.items():
        for kind in OUTCOMES:
            n = found.get((arm, kind), 0)
            interval = wilson(n, figures["offers_served"])
            figures[kind] = {"count": n, "share": n / figures["offers_served"]
                             if figures["offers_served"] else None,
                             "interval": list(interval) if interval else None}
        figures["reports"] = 0
    for arm, n in reports:
        if arm in out:
            out[arm]["reports"] = n
    return out


def compare_arms(outcomes: dict[str, dict]) -> dict[str, dict | None]:
    """The challenger's share minus the champion's, per outcome, with its interval."""
    champion, challenger = outcomes.get("champion"), outcomes.get("challenger")
    out: dict[str, dict | None] = {}
    for kind in OUTCOMES:
        if champion is None or challenger is None:
            out[kind] = None
            continue
        difference = newcombe((champion[kind]["count"], champion["offers_served"]),
                              (challenger[kind]["count"], challenger["offers_served"]))
        out[kind] = None if difference is None else {
            "difference": difference[0], "interval": [difference[1], difference[2]]}
    return out
