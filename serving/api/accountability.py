"""Transparency and accountability: what data of a customer was used (data-usage), feedback and
the cases staff handle, the public policy and model card, public statistics, and erasure.

Every figure and answer here is read from the audit trail (serving.records.audit), never from counters.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import redis
from flask import Blueprint, current_app, g, jsonify

from explain.templates import POPULARITY, Templates
from recommender.consent import LEVELS
from recommender.features import attribute_values
from serving.api import params
from serving.arms import ARMS
from serving.auth import ADMIN, CUSTOMER, STOREFRONT, current_principal, require
from serving.controls import SEE_LESS_ATTRIBUTE
from serving.errors import ApiError, bad_parameter
from serving.records.audit import (
    CASE_KINDS,
    CASE_STATUSES,
    customer_records,
    record_dict,
    served_record,
    subject_hash,
    utc,
)
from serving.records.controls import NOT_RELEVANT, SEE_LESS
from serving.records.erasure import erase_records
from serving.records.experiment import OUTCOMES, arm_outcomes, compare_arms
from serving.records.feedback import customer_cases as customer_cases_records
from serving.records.feedback import list_cases as list_cases_records
from serving.records.feedback import open_contact_case, record_feedback
from serving.records.feedback import update_case as update_case_record
from serving.records.stats import compute_stats
from serving.schemas.requests import CaseUpdate, Contact, Feedback

log = logging.getLogger(__name__)

bp = Blueprint("accountability", __name__)

POPULARITY_TEXT = ("How popular an offer is with all customers: every customer's starting point, "
                   "and all that is used without personal data.")
LEVEL_TEXT = {
    "full": "Every kind of data you allowed, including your own purchases, ratings and clicks.",
    "segment": "Only coarse data you allowed (age band, region, profile): offers popular with "
               "customers like you, never your individual history.",
    "none": "No personal data at all: the same popular offers everyone gets.",
}


def _services():
    return current_app.extensions["trustrec"]


def _now() -> datetime:
    return datetime.now(UTC)


def _moment(args: params.Query, name: str) -> datetime | None:
    raw = args.single(name)
    if raw is None:
        return None
    try:
        if raw.isascii() and raw.isdigit():
            return datetime.fromtimestamp(int(raw), UTC)
        moment = datetime.fromisoformat(raw)
    except (ValueError, OverflowError, OSError):  # not a time, or past the year 9999
        moment = None
    if moment is None or moment.tzinfo is None:
        raise bad_parameter(name, f"{name} must be unix seconds or an ISO 8601 time with a zone")
    return moment.astimezone(UTC)


# --- data usage -------------------------------------------------------------------------------
@bp.get("/v1/customers/<customer_id>/data-usage")
@require(STOREFRONT, ADMIN, own_customer=True)
def data_usage(customer_id: str):
    customer_id = params.customer_id(customer_id)
    services = _services()
    args = params.Query().only(("since", "until", "limit"))
    until = _moment(args, "until") or _now()
    since = _moment(args, "since") or until - timedelta(days=services.settings.audit_retention_days)
    if since >= until:
        raise bad_parameter("since", "since must be before until")
    limit = args.positive_int("limit", params.DEFAULT_LIMIT, params.MAX_LIMIT)
    services.audit.flush()  # this worker's queued records are part of the answer
    rows = customer_records(services.engine, customer_id, since, until)
    taxonomy = services.consents.taxonomy
    templates = Templates.default()
    categories = []
    for category in taxonomy.categories:
        used = [r for r in rows if category in json.loads(r.categories_used)]
        categories.append({
            "category": category, "name": templates.name(category),
            "purpose": taxonomy.purposes.get(category, ""), "responses": len(used),
            "first_used": utc(used[-1].served_at).isoformat() if used else None,
            "last_used": utc(used[0].served_at).isoformat() if used else None,
            "model_versions": sorted({r.model_version for r in used}),
        })
    versions = sorted({r.model_version for r in rows})
    return jsonify({
        "request_id": g.request_id, "customer_id": customer_id,
        "since": since.isoformat(), "until": until.isoformat(),
        "responses": len(rows), "model_versions": versions,
        "summary": _usage_summary(rows, categories, since, until),
        "categories": categories,
        "records": [record_dict(r) for r in rows[:limit]],
        "truncated": len(rows) > limit,
    })


def _usage_summary(rows, categories: list[dict], since: datetime, until: datetime) -> str:
    period = f"From {since:%d %B %Y %H:%M} to {until:%d %B %Y %H:%M} UTC"
    if not rows:
        return f"{period}, no offers were selected for you, so none of your data was used."
    versions = sorted({r.model_version for r in rows})
    parts = [f"{period}, an automated system (model version{'s' if len(versions) > 1 else ''} "
             f"{', '.join(versions)}) selected offers or explained them for you "
             f"{len(rows)} time{'s' if len(rows) > 1 else ''}."]
    used = [c for c in categories if c["responses"]]
    for c in used:
        parts.append(f"{c['name']}: used {c['responses']} of those times, last on "
                     f"{datetime.fromisoformat(c['last_used']):%d %B %Y %H:%M} UTC.")
    unused = [c["name"] for c in categories if not c["responses"]]
    if unused:
        parts.append(f"Never used: {', '.join(unused)}.")
    if not used:
        parts.append("No personal data was used: the offers were the ones everyone gets.")
    return " ".join(parts)


# --- feedback and cases -------------------------------------------------------------------------
@bp.post("/v1/feedback")
def feedback():
    principal = current_principal()
    if principal.role not in (STOREFRONT, ADMIN, CUSTOMER):
        raise ApiError(403, "forbidden", f"the {principal.role} role cannot do this")
    params.no_query()
    body = params.body(Feedback)
    request_id, offer_id, kind, text = body.request_id, body.offer_id, body.kind, body.text
    if kind == "report" and not (text or "").strip():
        raise bad_parameter("text", "a report needs a text saying what is wrong with the offer")
    claimed = body.customer_id
    if principal.role == CUSTOMER:
        if claimed is not None and claimed != principal.customer_id:
            raise ApiError(403, "forbidden", "a customer token gives access to its own customer "
                                             "only", "customer_id")
        claimed = principal.customer_id
    elif claimed is None:
        raise bad_parameter("customer_id", "customer_id is required with an API key")
    services = _services()
    # One answer for "unknown" and "someone else's", at once: a signed id proves whose it is
    # without a lookup (serving.request_ids), so nothing here waits for another worker's audit
    # record. Ids served before ids were signed are looked up once.
    signed = services.request_ids.is_signed(request_id)
    if signed and not services.request_ids.verify(request_id, claimed):
        raise _unknown_request(request_id)
    served = served_record(services.engine, request_id, services.audit)
    if (served is not None and served["customer_id"] != claimed) or (served is None and not signed):
        raise _unknown_request(request_id)
    if served is not None and offer_id not in served["offers"]:
        raise ApiError(400, "unknown_offer",
                       f"offer {offer_id!r} was not served in response {request_id!r}",
                       "offer_id")
    now = _now()
    case_id = str(uuid.uuid4()) if kind in CASE_KINDS else None
    control = _control(services, kind, offer_id)
    # not yet in the trail (another worker is writing it): its writer checks the offer then
    record_feedback(services.engine, request_id=request_id, customer_id=claimed,
                    offer_id=offer_id, kind=kind, text=text, case_id=case_id, now=now,
                    offer_served=True if served is not None else None, control=control)
    if control is not None:  # from the very next request on
        services.controls.changed(claimed)
    body = {"request_id": g.request_id, "feedback_for": request_id, "offer_id": offer_id,
            "kind": kind, "recorded_at": now.isoformat(), "case_id": case_id}
    if case_id is not None:
        body["message"] = ("A person will look at this. Keep the case id to follow it up."
                           if kind == "talk_to_person" else
                           "Thank you: a person will review this offer. Keep the case id.")
    response = jsonify(body)
    response.status_code = 201
    return response


def _control(services, kind: str, offer_id: str) -> tuple[str, str] | None:
    """What "not relevant" and "see less like this" ask of the next offers (serving.controls)."""
    if kind == NOT_RELEVANT:
        return (NOT_RELEVANT, offer_id)
    if kind != SEE_LESS:
        return None
    offers = services.cache.snapshot().offers
    values = (attribute_values(offers.at[offer_id, SEE_LESS_ATTRIBUTE])
              if SEE_LESS_ATTRIBUTE in offers and offer_id in offers.index else [])
    if not values:
        raise bad_parameter("offer_id", f"offer {offer_id!r} has no {SEE_LESS_ATTRIBUTE} to see "
                                        "less of")
    return (SEE_LESS, values[0])


def _unknown_request(request_id: str) -> ApiError:
    return ApiError(404, "unknown_request", f"no served response {request_id!r} for this "
                                            "customer", "request_id")


@bp.get("/v1/customers/<customer_id>/cases")
@require(STOREFRONT, ADMIN, own_customer=True)
def customer_cases(customer_id: str):
    customer_id = params.customer_id(customer_id)
    params.no_query()
    return jsonify(_customer_cases(customer_id))


@bp.post("/v1/customers/<customer_id>/cases")
@require(STOREFRONT, ADMIN, own_customer=True)
def contact(customer_id: str):
    """Talk to a person without naming an offer."""
    customer_id = params.customer_id(customer_id)
    params.no_query()
    body = params.body(Contact)
    if not body.text.strip():
        raise bad_parameter("text", "say what you would like to talk about")
    open_contact_case(_services().engine, customer_id=customer_id, text=body.text,
                      case_id=str(uuid.uuid4()), now=_now())
    response = jsonify(_customer_cases(customer_id))
    response.status_code = 201
    return response


def _customer_cases(customer_id: str) -> dict:
    cases = [{k: case[k] for k in ("case_id", "kind", "offer_id", "text", "status", "opened_at",
                                   "updated_at", "resolved_at")}
             for case in customer_cases_records(_services().engine, customer_id)]
    return {"request_id": g.request_id, "customer_id": customer_id, "cases": cases}


@bp.get("/v1/admin/cases")
@require(ADMIN)
def list_cases():
    args = params.Query().only(("status", "limit"))
    status = args.single("status")
    if status is not None and status not in CASE_STATUSES:
        raise bad_parameter("status", f"status must be one of {', '.join(CASE_STATUSES)}")
    limit = args.positive_int("limit", params.DEFAULT_LIMIT, params.MAX_LIMIT)
    return jsonify({"request_id": g.request_id,
                    "cases": list_cases_records(_services().engine, status, limit)})


@bp.patch("/v1/admin/cases/<case_id>")
@require(ADMIN)
def update_case(case_id: str):
    params.no_query()
    body = params.body(CaseUpdate)
    case = update_case_record(_services().engine, case_id, body.status, body.note, _now())
    if case is None:
        raise ApiError(404, "unknown_case", f"no case {case_id!r}", "case_id")
    return jsonify({"request_id": g.request_id, "case": case})


# --- policy and model card -----------------------------------------------------------------------
@bp.get("/v1/policy")
def policy():
    from recommender.fairness import latest_audit_summary
    from serving.recommend import DISCLOSURE

    params.no_query()
    services = _services()
    settings = services.settings
    taxonomy = services.consents.taxonomy
    templates = Templates.default()
    try:
        model = services.cache.snapshot()
    except Exception as exc:  # the policy stays readable without a model
        log.warning("policy without a model card: %s", exc)
        model = None
    card = None
    parameters = None
    if model is not None:
        parameters = _main_parameters(model, services, templates)
        manifest = model.manifest
        in_model = model.in_model
        categories = model.model.categories
        not_used = [c for i, c in enumerate(categories) if in_model is not None and not in_model[i]]
        not_used += [c for c in taxonomy.categories if c not in categories]
        card = {
            "version": model.version, "model": manifest.get("model"),
            "trained_at": manifest.get("created_at"),
            "data": manifest.get("counts", {}), "metrics": manifest.get("metrics", {}),
            "hyperparameters": manifest.get("hyperparameters", {}),
            "history_mode": manifest.get("history_mode"),
            "categories": list(categories),
            "does_not_use": {
                "categories": sorted(set(not_used)),
                "text": "The model uses only the data categories listed, and for each customer "
                        "only those the customer allowed. It does not use any data outside them: "
                        "no browsing outside the shop, no data bought from third parties, no "
                        "inferred sensitive traits.",
            },
            "fairness_audit": latest_audit_summary(settings.audits_dir, model.version),
        }
    response = jsonify({
        "request_id": g.request_id,
        "automated": True, "disclosure": DISCLOSURE,
        "categories": [{"category": c, "name": templates.name(c),
                        "purpose": taxonomy.purposes.get(c, ""),
                        "attributes": taxonomy.attributes_in(c)} for c in taxonomy.categories],
        "levels": [{"level": level, "text": LEVEL_TEXT.get(level, "")} for level in LEVELS],
        "default": {"regime": services.consents.regime,
                    "consent": services.consents.default.to_dict()},
        "retention": {"audit_days": settings.audit_retention_days,
                      "text": f"Records of the offers shown to you and why are kept "
                              f"{settings.audit_retention_days} days, then deleted."},
        "opt_out": {"href": "/v1/customers/{customer_id}/consent", "method": "PUT",
                    "text": "Choose which kinds of data may be used, or set the level to none "
                            "for offers without any personal data; it applies from the very "
                            "next request."},
        "erasure": {"href": "/v1/customers/{customer_id}", "method": "DELETE",
                    "text": "Ask for all your data to be erased; you get a receipt."},
        "contact": {"href": "/v1/feedback", "method": "POST", "kind": "talk_to_person",
                    "text": settings.contact or "Send feedback of kind talk_to_person on any "
                                                "offer: a person takes it up and you get a "
                                                "case id."},
        "main_parameters": parameters,
        "model_card": card,
    })
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


def _main_parameters(model, services, templates: Templates) -> list[dict]:
    """Every parameter that decides offers, with its importance in the live model where it is
    part of the score (computed when the version was published: explain.importance)."""
    published = model.manifest.get("main_parameters") or {}
    importance = published.get("importance", {})
    taxonomy = services.consents.taxonomy
    rules = services.recommender.rules
    method = published.get("method")
    out = [{"parameter": name, "name": templates.name(name), "importance": importance.get(name),
            "method": method,
            "text": POPULARITY_TEXT if name == POPULARITY else taxonomy.purposes.get(name, "")}
           for name in (POPULARITY, *model.model.categories)]
    out.append({"parameter": "business_rules", "name": "The shop's own rules", "importance": None,
                "method": None, "in_force": rules is not None and rules.version is not None,
                "text": "After scoring, the shop's rules may exclude, promote or place lower "
                        "offers or categories, cap a category and add variety among the model's "
                        "best 100; offers they move say so."})
    out.append({"parameter": "calibration", "name": "Matching your mix of categories",
                "importance": None, "method": None,
                "text": "Only when the shop asks for it (calibrate): the best 100 are re-ordered "
                        "towards the mix of categories in your own past purchases."})
    return out


# --- public statistics ------------------------------------------------------------------------------
_stats_lock = threading.Lock()


@bp.get("/v1/stats")
def stats():
    params.no_query()
    services = _services()
    ttl = services.settings.stats_cache_seconds
    cache = current_app.extensions.setdefault("trustrec_stats", {})
    with _stats_lock:
        cached = cache.get("value")
        if cached is None or time.monotonic() - cache["at"] >= ttl:
            services.audit.flush()
            cached = compute_stats(services.engine, _now()) | {
                "experiment": _experiment(services)}
            cache.update(value=cached, at=time.monotonic())
    response = jsonify({"request_id": g.request_id} | cached)
    response.headers["Cache-Control"] = f"public, max-age={ttl}"
    return response


def _experiment(services) -> dict | None:
    """Champion/challenger figures while an experiment runs."""
    challenger = services.store.challenger()
    if challenger is None:
        return None
    outcomes = arm_outcomes(services.engine, datetime.fromisoformat(challenger.since), _now())
    empty = {"responses": 0, "customers": 0, "offers_served": 0, "reports": 0} | {
        kind: {"count": 0, "share": None, "interval": None} for kind in OUTCOMES}
    arms = {arm: outcomes.get(arm, empty) for arm in ARMS}
    return {"champion": services.store.current_version(), "challenger": challenger.version,
            "share": challenger.share, "since": challenger.since, "arms": arms,
            "challenger_minus_champion": compare_arms(arms)}


# --- erasure -------------------------------------------------------------------------------------
def _retried(action, attempts: int = 3):
    """A Redis step of an erasure: idempotent, so tried again after a failure (the last one
    raises: a 503, and the client repeats the erasure)."""
    for attempt in range(attempts):
        try:
            return action()
        except redis.RedisError as exc:
            if attempt == attempts - 1:
                raise
            log.warning("erasure: Redis step failed, retrying: %s", exc)
            time.sleep(0.05 * 2 ** attempt)


@bp.delete("/v1/customers/<customer_id>")
@require(ADMIN, own_customer=True)
def erase(customer_id: str):
    customer_id = params.customer_id(customer_id)
    params.no_query()
    services = _services()
    services.audit.flush()  # queued records of this customer must be deleted too
    now = _now()
    # Redis first (idempotent, retried): if it stays down, nothing is erased yet and the caller
    # retries; then every SQL record in one transaction; then Redis again, for what a request
    # running meanwhile may have put back (its consent cache entry, say)
    def online() -> int:
        return _retried(lambda: services.store.delete_customer(
            customer_id, subject=subject_hash(customer_id, services.secret),
            revoke_tokens_for=services.settings.token_max_seconds))

    redis_keys = online()
    receipt_id, digest, counts = erase_records(services.engine, customer_id, services.secret, now,
                                               {"redis_keys": redis_keys})
    online()
    return jsonify({
        "request_id": g.request_id, "receipt_id": receipt_id, "erased_at": now.isoformat(),
        "subject_hash": digest, "removed": counts,
        "excluded_from_training": True,
        "text": "Your consent, your interactions, your stored profile and the records of the "
                "offers shown to you have been erased. Only an anonymous note that an erasure "
                "happened is kept, and you will not be part of the next training run.",
    })
