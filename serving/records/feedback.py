"""Feedback on served offers, and the cases staff handle: a report or a request to talk to a person
opens a case that an admin moves through its statuses."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from serving.records.audit import CLOSED_STATUSES, cases_table, feedback_table, utc
from serving.records.controls import add_control
from serving.records.database import begin_write


def record_feedback(engine: Engine, *, request_id: str, customer_id: str, offer_id: str, kind: str,
                    text: str | None, case_id: str | None, now: datetime,
                    offer_served: bool | None = True,
                    control: tuple[str, str] | None = None) -> None:
    """The feedback row, the case it opens (case_id given) and the control it sets ((kind,
    value): "not relevant", "see less"), in one transaction. offer_served None: the response's
    audit record is not written yet (its writer settles it)."""
    with begin_write(engine) as connection:
        if control is not None:
            add_control(connection, customer_id, *control, now)
        if case_id is not None:
            connection.execute(sa.insert(cases_table).values(
                case_id=case_id, customer_id=customer_id, request_id=request_id,
                offer_id=offer_id, kind=kind, text=text, status="open", opened_at=now,
                updated_at=now))
        connection.execute(sa.insert(feedback_table).values(
            request_id=request_id, customer_id=customer_id, offer_id=offer_id, kind=kind,
            text=text, created_at=now, case_id=case_id, offer_served=offer_served))


def list_cases(engine: Engine, status: str | None, limit: int) -> list[dict]:
    """Cases, oldest first, optionally of one status."""
    query = sa.select(cases_table).order_by(cases_table.c.opened_at, cases_table.c.case_id)
    if status is not None:
        query = query.where(cases_table.c.status == status)
    with engine.connect() as connection:
        return [case_dict(row) for row in connection.execute(query.limit(limit)).all()]


def update_case(engine: Engine, case_id: str, status: str, note: str | None,
                now: datetime) -> dict | None:
    """The case after setting its status (and note); None when there is no such case. A closing
    status keeps the first time the case was resolved."""
    where = cases_table.c.case_id == case_id
    with begin_write(engine) as connection:
        row = connection.execute(sa.select(cases_table).where(where)).first()
        if row is None:
            return None
        values = {"status": status, "updated_at": now,
                  "resolved_at": (row.resolved_at or now) if status in CLOSED_STATUSES else None}
        if note is not None:
            values["note"] = note
        connection.execute(sa.update(cases_table).where(where).values(**values))
        return case_dict(connection.execute(sa.select(cases_table).where(where)).first())


def case_dict(row) -> dict:
    return {
        "case_id": row.case_id, "customer_id": row.customer_id, "request_id": row.request_id,
        "offer_id": row.offer_id, "kind": row.kind, "text": row.text, "status": row.status,
        "opened_at": utc(row.opened_at).isoformat(), "updated_at": utc(row.updated_at).isoformat(),
        "resolved_at": None if row.resolved_at is None else utc(row.resolved_at).isoformat(),
        "note": row.note,
    }


def open_contact_case(engine: Engine, *, customer_id: str, text: str, case_id: str,
                      now: datetime) -> dict:
    """A request to talk to a person that names no offer."""
    with begin_write(engine) as connection:
        connection.execute(sa.insert(cases_table).values(
            case_id=case_id, customer_id=customer_id, request_id=None, offer_id=None,
            kind="talk_to_person", text=text, status="open", opened_at=now, updated_at=now))
        return case_dict(connection.execute(sa.select(cases_table).where(
            cases_table.c.case_id == case_id)).first())


def customer_cases(engine: Engine, customer_id: str) -> list[dict]:
    """The customer's own cases, newest first."""
    query = (sa.select(cases_table).where(cases_table.c.customer_id == customer_id)
             .order_by(cases_table.c.opened_at.desc(), cases_table.c.case_id))
    with engine.connect() as connection:
        return [case_dict(row) for row in connection.execute(query)]
