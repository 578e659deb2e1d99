"""A customer's controls over their offers (serving.records.controls) and their data:

/v1/customers/{id}/controls (GET, POST) and /v1/customers/{id}/controls/{kind}/{value} (to undo
one, method DELETE): offers not relevant, categories to see less of, purchases not to use; each
applies from the next request.
GET /v1/customers/{id}/data-export: every record held about the customer, as one JSON document.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import redis
from flask import Blueprint, current_app, g, jsonify

from explain.templates import Templates
from serving.api import params
from serving.auth import ADMIN, STOREFRONT, current_principal, require
from serving.controls import LEARNED_NOTE, SEE_LESS_ATTRIBUTE
from serving.errors import ApiError, bad_parameter
from serving.explaining import served
from serving.records.consent import check_name
from serving.records.controls import (
    LEAVE_OUT,
    NOT_RELEVANT,
    SEE_LESS,
    controls_of,
    correct_attributes,
    correction_history,
    corrections_of,
    record_control,
    remove_control,
)
from serving.records.export import customer_rows
from serving.schemas.requests import AttributesUpdate, Control

log = logging.getLogger(__name__)

bp = Blueprint("controls", __name__, url_prefix="/v1/customers/<customer_id>")

TEXTS = {
    NOT_RELEVANT: "You marked {name} not relevant: it is left out of your offers.",
    SEE_LESS: "You asked to see less of {name}: such offers are placed lower.",
    LEAVE_OUT: "You asked not to use {name}, a past purchase: it no longer counts among your "
               "purchases.",
}


@bp.get("/controls")
@require(STOREFRONT, ADMIN, own_customer=True)
def list_controls(customer_id: str):
    customer_id = params.customer_id(customer_id)
    params.no_query()
    return jsonify(_body(customer_id))


@bp.post("/controls")
@require(STOREFRONT, ADMIN, own_customer=True)
def add(customer_id: str):
    customer_id = params.customer_id(customer_id)
    params.no_query()
    body = params.body(Control)
    services = current_app.extensions["trustrec"]
    _check(services, customer_id, body.kind, body.value)
    created = record_control(services.engine, customer_id, body.kind, body.value,
                             datetime.now(UTC))
    _apply(services, customer_id)
    response = jsonify(_body(customer_id))
    response.status_code = 201 if created else 200
    return response


@bp.delete("/controls/<kind>/<path:value>")
@require(STOREFRONT, ADMIN, own_customer=True)
def undo(customer_id: str, kind: str, value: str):
    customer_id = params.customer_id(customer_id)
    params.no_query()
    if kind not in TEXTS:
        raise bad_parameter("kind", f"kind must be one of {', '.join(TEXTS)}")
    services = current_app.extensions["trustrec"]
    if not remove_control(services.engine, customer_id, kind, value):
        raise ApiError(404, "unknown_control", f"no {kind} control for {value!r}", "value")
    _apply(services, customer_id)
    return jsonify(_body(customer_id))


@bp.get("/attributes")
@require(STOREFRONT, ADMIN, own_customer=True)
def attributes(customer_id: str):
    customer_id = params.customer_id(customer_id)
    params.no_query()
    return jsonify(_attributes_body(customer_id))


@bp.put("/attributes")
@require(STOREFRONT, ADMIN, own_customer=True)
def correct(customer_id: str):
    customer_id = params.customer_id(customer_id)
    params.no_query()
    body = params.body(AttributesUpdate)
    services = current_app.extensions["trustrec"]
    known = services.consents.taxonomy.attributes
    for name in body.values:
        if name not in known:
            raise bad_parameter(f"values.{name}", f"unknown customer attribute {name!r}; known: "
                                                  f"{', '.join(sorted(known))}")
    correct_attributes(services.engine, customer_id, body.values, current_principal().actor,
                       datetime.now(UTC))
    _apply(services, customer_id)
    return jsonify(_attributes_body(customer_id))


@bp.get("/data-export")
@require(STOREFRONT, ADMIN, own_customer=True)
def export(customer_id: str):
    customer_id = params.customer_id(customer_id)
    params.no_query()
    services = current_app.extensions["trustrec"]
    services.audit.flush()  # this worker's queued records are the customer's too
    view = services.cache.customer(customer_id)
    response = jsonify({
        "request_id": g.request_id, "customer_id": customer_id,
        "exported_at": datetime.now(UTC).isoformat(),
        "model": {"version": view.model.version, "known": view.state.known,
                  "attributes": {k: str(v) for k, v in view.state.attributes.items()},
                  "history": list(view.state.history)},
        "records": customer_rows(services.engine, customer_id),
    })
    response.headers["Content-Disposition"] = f'attachment; filename="trustrec-{customer_id}.json"'
    return response


def _check(services, customer_id: str, kind: str, value: str) -> None:
    """A control names something that exists: an offer of the catalog, a category of it, or one
    of the customer's own past purchases."""
    check_name(value, "value")
    version = served(services.cache.snapshot())
    if kind == NOT_RELEVANT and value not in version.offer_columns:
        raise ApiError(400, "unknown_offer", f"no offer {value!r} in the current catalog", "value")
    if kind == SEE_LESS and (SEE_LESS_ATTRIBUTE not in version.offer_attributes
                             or version.outside(SEE_LESS_ATTRIBUTE, value) is None):
        raise bad_parameter("value", f"no offer has {SEE_LESS_ATTRIBUTE} {value!r}")
    if kind == LEAVE_OUT and value not in services.cache.customer(customer_id).state.history:
        raise bad_parameter("value", f"{value!r} is not one of the customer's past purchases")


def _apply(services, customer_id: str) -> None:
    try:
        services.controls.changed(customer_id)
    except redis.RedisError:
        # committed, but the cache could not be told: the caller must send it again
        log.error("controls of %r saved but the cache was not updated", customer_id)
        raise ApiError(503, "not_ready", "the change was saved but could not be applied yet; "
                       "send it again") from None


def _attributes_body(customer_id: str) -> dict:
    """Every attribute of the deployment: the value in use, the one the model holds, and why."""
    services = current_app.extensions["trustrec"]
    taxonomy = services.consents.taxonomy
    held = services.cache.customer(customer_id).state.attributes
    corrections = corrections_of(services.engine, customer_id)
    templates = Templates.default()
    rows = []
    for attribute, category in taxonomy.attributes.items():
        stored = held.get(attribute)
        stored = None if stored is None or str(stored) in ("", "nan") else str(stored)
        if attribute in corrections:
            value = corrections[attribute]
            source = "cleared" if value is None else "corrected"
        else:
            value, source = stored, "model" if stored is not None else "none"
        rows.append({"attribute": attribute, "category": category,
                     "category_name": templates.name(category), "value": value,
                     "held_by_model": stored, "source": source})
    history = [dict(h, changed_at=h["changed_at"].isoformat())
               for h in correction_history(services.engine, customer_id)]
    return {"request_id": g.request_id, "customer_id": customer_id, "attributes": rows,
            "history": history}


def _body(customer_id: str) -> dict:
    services = current_app.extensions["trustrec"]
    version = served(services.cache.snapshot())
    titles = dict(zip(version.offer_ids, version.titles, strict=True))
    learned = version.history_mode in ("identity", "blend")
    controls = []
    for row in controls_of(services.engine, customer_id):
        name = titles.get(row["value"], row["value"]) if row["kind"] != SEE_LESS else row["value"]
        text = TEXTS[row["kind"]].format(name=name)
        if row["kind"] == LEAVE_OUT and learned:
            text += " " + LEARNED_NOTE
        controls.append({"kind": row["kind"], "value": row["value"], "name": name,
                         "created_at": row["created_at"].isoformat(), "text": text,
                         "undo": {"method": "DELETE", "href":
                                  f"/v1/customers/{customer_id}/controls/{row['kind']}/"
                                  f"{row['value']}"}})
    return {"request_id": g.request_id, "customer_id": customer_id, "controls": controls}
