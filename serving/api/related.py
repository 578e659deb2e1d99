"""Offers about no one: GET /v1/offers/{offer_id}/similar (a product page) and
GET /v1/session/offers?viewed=... (an anonymous visitor; the views are used and not stored)."""

from __future__ import annotations

import time

import numpy as np
from flask import Blueprint, current_app, g, jsonify

from serving import related
from serving.api import params
from serving.auth import ADMIN, STOREFRONT, current_principal, require
from serving.errors import bad_parameter
from serving.explaining import served
from serving.served import ServedRecord

bp = Blueprint("related", __name__)
DEFAULT_K = 10
ANONYMOUS = ""  # the audit trail's customer for answers about no one (no customer id is empty)


@bp.get("/v1/offers/<offer_id>/similar")
@require(STOREFRONT, ADMIN)
def similar(offer_id: str):
    services = current_app.extensions["trustrec"]
    args = params.Query().only(("k", "exclude"))
    k = args.positive_int("k", DEFAULT_K, services.settings.max_k)
    exclude = args.id_list("exclude")
    loaded = services.cache.live()
    rules, never = _rules(services, loaded)
    answer = related.similar(loaded, offer_id, k, exclude, never)
    title = served(loaded).titles[loaded.offer_columns[offer_id]]
    body = {"request_id": g.request_id, "offer_id": offer_id, "title": title} \
        | related.envelope(loaded, "none", rules) | {"offers": answer.offers}
    _record(services, "similar", "none", answer, {"offer_id": offer_id, "k": k,
                                                  "exclude": list(exclude)}, rules, reasons=True)
    return jsonify(body)


@bp.get("/v1/session/offers")
@require(STOREFRONT, ADMIN)
def session():
    services = current_app.extensions["trustrec"]
    args = params.Query().only(("viewed", "k", "exclude"))
    k = args.positive_int("k", DEFAULT_K, services.settings.max_k)
    if args.single("viewed") == "":
        raise bad_parameter("viewed", "viewed needs offer ids (or leave it out)")
    viewed = args.id_list("viewed")
    exclude = args.id_list("exclude")
    loaded = services.cache.live()
    rules, never = _rules(services, loaded)
    answer = related.session(loaded, viewed, k, exclude, never)
    level = "session" if viewed else "none"
    body = {"request_id": g.request_id} | related.envelope(loaded, level, rules) | {
        "offers": answer.offers}
    # what was viewed stays out of the record: the visitor was told it is not stored
    _record(services, "session", level, answer, {"k": k}, rules, reasons=False)
    return jsonify(body)


def _rules(services, loaded) -> tuple[str | None, np.ndarray | None]:
    """(rules version, offer columns they exclude): a shop's "never show" holds on every list;
    boosts, buries, caps and variety shape the personal ranking only."""
    compiled = services.recommender.compiled_rules(served(loaded))
    if compiled is None:
        return None, None
    return compiled.version, np.flatnonzero(compiled.excluded)


def _record(services, endpoint: str, personalization: str, answer: related.Related,
            request_params: dict, rules_version: str | None, *, reasons: bool) -> None:
    services.on_served(ServedRecord(
        request_id=g.request_id, served_at=time.time(), endpoint=endpoint,
        actor=current_principal().actor, customer_id=ANONYMOUS, model_version=answer.model_version,
        personalization=personalization, consent={}, consent_source="anonymous",
        categories_used=[], offers=[(o["offer_id"], o["score"]) for o in answer.offers],
        params=request_params,
        reasons={o["offer_id"]: o["criteria"] for o in answer.offers} if reasons else {},
        rules_version=rules_version))
