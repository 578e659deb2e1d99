"""Champion/challenger for notebooks and `trustrec experiment show`: the arms' outcomes from the
audit trail as a table (one row per arm and outcome, share with its 95% interval) and a plot.

    from trustrec import notebook as tr
    table = tr.experiment_table()            # $TRUSTREC_DATABASE_URL and the Redis of serving
    tr.plot_experiment(table)
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import redis
from matplotlib.figure import Figure

from serving.arms import ARMS
from serving.records.database import create_schema, make_engine
from serving.records.experiment import OUTCOMES, arm_outcomes, compare_arms
from serving.redis_store import DEFAULT_PREFIX, RedisModelStore


def experiment_table(database_url: str | None = None, client: redis.Redis | None = None,
                     prefix: str = DEFAULT_PREFIX) -> pd.DataFrame:
    """Per arm and outcome: count, offers served, share, 95% interval, and the challenger's
    difference from the champion with its interval. Empty when no experiment runs."""
    if client is None:
        from serving.publish import connect

        client = connect(None)
    store = RedisModelStore(client, prefix)
    challenger = store.challenger()
    columns = ["arm", "version", "outcome", "count", "offers_served", "share", "low", "high",
               "difference", "difference low", "difference high"]
    if challenger is None:
        return pd.DataFrame(columns=columns)
    engine = make_engine(database_url)
    try:
        create_schema(engine)
        outcomes = arm_outcomes(engine, datetime.fromisoformat(challenger.since),
                                datetime.now(UTC))
    finally:
        engine.dispose()
    differences = compare_arms(outcomes)
    versions = {"champion": store.current_version(), "challenger": challenger.version}
    rows = []
    for arm in ARMS:
        figures = outcomes.get(arm)
        for kind in OUTCOMES:
            outcome = figures[kind] if figures else {"count": 0, "share": None, "interval": None}
            low, high = outcome["interval"] or (None, None)
            difference = differences.get(kind) if arm == "challenger" else None
            rows.append([arm, versions[arm], kind, outcome["count"],
                         figures["offers_served"] if figures else 0, outcome["share"], low, high,
                         *((difference["difference"], *difference["interval"]) if difference
                           else (None, None, None))])
    return pd.DataFrame(rows, columns=columns)


def plot_experiment(table: pd.DataFrame) -> Figure:
    """Each outcome's share per arm with its 95% interval."""
    figure = Figure(figsize=(3.2 * max(1, len(OUTCOMES)), 3))
    for i, kind in enumerate(OUTCOMES):
        ax = figure.add_subplot(1, len(OUTCOMES), i + 1)
        rows = table[table["outcome"] == kind]
        for position, (_, row) in enumerate(rows.iterrows()):
            if pd.isna(row["share"]):
                continue
            ax.errorbar(position, row["share"], yerr=[[row["share"] - row["low"]],
                                                      [row["high"] - row["share"]]],
                        fmt="o", capsize=4)
        ax.set_xticks(range(len(rows)), list(rows["arm"]))
        ax.set_xlim(-0.5, len(rows) - 0.5)
        ax.set_title(kind.replace("_", " "), fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure
