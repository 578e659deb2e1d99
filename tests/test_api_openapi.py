"""The OpenAPI document: valid, the same routes and methods as the app, and real responses valid
against the schemas it documents for them."""

from __future__ import annotations

import re

import pytest
import test_api
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from test_api import CUSTOMER, bearer, key, token_for

from serving.openapi import SPEC

make_app, app, client = test_api.make_app, test_api.app, test_api.client  # the same fixtures

_IGNORED_METHODS = {"HEAD", "OPTIONS"}  # Flask answers these on every route by itself
_NOT_API = {"pages"}  # blueprints of HTML pages for people (serving.pages), not of the API


def test_the_document_is_valid_openapi():
    validate(SPEC)


def test_every_route_is_documented_and_nothing_else(app):
    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules() if rule.endpoint.partition(".")[0] not in _NOT_API
        for method in rule.methods - _IGNORED_METHODS
    }
    documented = {(path, method) for path, item in SPEC["paths"].items() for method in item}
    assert routes == documented


def _views(app):
    """((documented path, method), view function, rule) of every API route."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint.partition(".")[0] in _NOT_API:
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - _IGNORED_METHODS:
            yield (path, method.lower()), app.view_functions[rule.endpoint], rule


def test_documented_roles_are_the_ones_each_view_enforces(app):
    for (path, method), view, _ in _views(app):
        documented = SPEC["paths"][path][method]["x-roles"]
        if hasattr(view, "required_roles"):  # serving.auth.require
            enforced = {*view.required_roles, *(("customer",) if view.own_customer else ())}
            assert documented == sorted(enforced), (path, method)
        # with roles, the document asks for credentials; without, it is public
        assert bool(SPEC["paths"][path][method]["security"]) == bool(documented), (path, method)


def test_documented_path_parameters_are_the_routes(app):
    for (path, method), _, rule in _views(app):
        parameters = SPEC["paths"][path][method].get("parameters", [])
        documented = {p["name"] for p in parameters if p["in"] == "path"}
        assert documented == set(rule.arguments), (path, method)
        assert all(p["required"] for p in parameters if p["in"] == "path")


UNKNOWN = "zz_not_a_parameter"


def _url(path: str) -> str:
    return path.format(customer_id=CUSTOMER, offer_id="o0001", case_id="no-such-case",
                       kind="not_relevant", value="o0001")


def _query_parameters(operation: dict) -> dict[str, dict]:
    return {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}


def test_documented_query_parameters_are_the_ones_each_view_accepts(client):
    """Each view refuses a parameter it does not know and names the ones it does: those must be
    the documented ones. A view that ignores unknown parameters must document none."""
    for path, methods in SPEC["paths"].items():
        for method, operation in methods.items():
            response = client.open(f"{_url(path)}?{UNKNOWN}=1", method=method.upper(),
                                   headers=key("admin"), json={})
            # the server names the attr.NAME family by its prefix
            documented = {"attr." if name.startswith("attr.") else name
                          for name in _query_parameters(operation)}
            if response.status_code != 400:
                assert not documented, (path, method, response.status_code)
                continue
            error = response.get_json()["error"]
            assert error["field"] == UNKNOWN, (path, method, error)
            accepted = error["message"].rpartition("expected: ")[2]
            assert documented == (set() if accepted == "none" else set(accepted.split(", "))), (
                path, method)


def _out_of_bounds(schema: dict) -> list[str]:
    """Values the schema refuses for a query parameter."""
    if "enum" in schema:
        return ["zz"]
    kind = schema.get("type")
    values = {"boolean": ["maybe"], "integer": ["1.5", "x"], "number": ["x"]}.get(kind, [])
    if "minimum" in schema:
        values.append(str(schema["minimum"] - 1))
    if "maximum" in schema:
        values.append(str(schema["maximum"] + 1))
    if schema.get("minLength"):
        values.append("")
    return values


def test_the_server_refuses_what_the_document_says_is_out_of_bounds(client):
    """And takes the documented bounds themselves."""
    for path, methods in SPEC["paths"].items():
        for method, operation in methods.items():
            for name, parameter in _query_parameters(operation).items():
                for bound in ("minimum", "maximum"):
                    if bound in parameter["schema"]:
                        value = parameter["schema"][bound]
                        response = client.open(f"{_url(path)}?{name}={value}",
                                               method=method.upper(), headers=key("admin"))
                        assert response.status_code == 200, (path, name, value)
                for value in _out_of_bounds(parameter["schema"]):
                    response = client.open(f"{_url(path)}?{name}={value}", method=method.upper(),
                                           headers=key("admin"))
                    assert response.status_code == 400, (path, name, value)
                    assert response.get_json()["error"]["field"] == name, (path, name, value)


def test_request_bodies_are_refused_as_documented(client):
    """Each documented body: an unknown field and each required field left out are a 400 that
    names the field."""
    for path, methods in SPEC["paths"].items():
        for method, operation in methods.items():
            if "requestBody" not in operation:
                continue
            name = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            body_schema = SPEC["components"]["schemas"][name.rsplit("/", 1)[1]]
            assert body_schema["additionalProperties"] is False, name
            sent = client.open(_url(path), method=method.upper(), headers=key("admin"),
                               json={UNKNOWN: 1})
            field = sent.get_json()["error"]["field"]
            required = body_schema.get("required", [])
            assert sent.status_code == 400 and field in (UNKNOWN, *required), (path, field)
            for missing in required:
                others = {r: _example(body_schema["properties"][r]) for r in required
                          if r != missing}
                sent = client.open(_url(path), method=method.upper(), headers=key("admin"),
                                   json=others)
                assert sent.status_code == 400, (path, missing)
                assert sent.get_json()["error"]["field"] == missing, (path, missing)


def _example(schema: dict):
    if "enum" in schema:
        return schema["enum"][0]
    return {"array": [], "integer": 1, "number": 1.0}.get(schema.get("type"), "x")


def test_the_document_states_the_bounds_the_server_enforces(client):
    from serving.config import Settings

    offers = SPEC["paths"]["/v1/customers/{customer_id}/offers"]["get"]["parameters"]
    k = next(p for p in offers if p["name"] == "k")["schema"]
    assert k["maximum"] == Settings.model_fields["max_k"].default
    headers = key("storefront")
    assert client.get(f"/v1/customers/{CUSTOMER}/offers?k={k['maximum']}", headers=headers
                      ).status_code == 200
    too_many = client.get(f"/v1/customers/{CUSTOMER}/offers?k={k['maximum'] + 1}", headers=headers)
    assert too_many.status_code == 400 and too_many.get_json()["error"]["field"] == "k"


def test_the_document_is_served(client):
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200 and response.get_json() == SPEC


def schema(name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}",
                                 "components": SPEC["components"]})


def check(response, name: str, status: int) -> dict:
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in schema(name).iter_errors(body)]
    assert not errors, errors
    return body


def documented_statuses(path: str, method: str) -> set[int]:
    return {int(s) for s in SPEC["paths"][path][method]["responses"]}


def test_responses_match_their_documented_schemas(client):
    customer = f"/v1/customers/{CUSTOMER}"
    body = check(client.get(f"{customer}/offers?k=3", headers=key()), "Offers", 200)
    check(client.get(f"{customer}/offers?k=3&explain=false", headers=key()), "Offers", 200)
    check(client.get("/v1/customers/new-one/offers?attr.region=north", headers=key()), "Offers", 200)
    check(client.get(body["offers"][0]["why"], headers=key()), "Why", 200)
    check(client.get(f"{customer}/consent", headers=key()), "Consent", 200)
    check(client.put(f"{customer}/consent", headers=key(),
                     json={"allowed": ["demographics"], "level": "segment"}), "Consent", 200)
    check(client.get(f"{customer}/consent/history", headers=key()), "ConsentHistory", 200)
    check(client.post(f"{customer}/interactions", headers=key(),
                      json={"offer_id": "o0001", "kind": "rating", "weight": 4,
                            "timestamp": "2024-05-01T10:00:00+00:00"}),
          "InteractionRecorded", 201)
    check(client.post(f"{customer}/token", headers=key(), json={"ttl_seconds": 120}), "Token", 201)
    check(client.get("/healthz"), "Health", 200)
    check(client.get("/readyz"), "Ready", 200)
    token = token_for(client, CUSTOMER)
    check(client.get(f"{customer}/offers", headers=bearer(token)), "Offers", 200)
    offer = body["offers"][0]["offer_id"]
    report = check(client.post("/v1/feedback", headers=bearer(token), json={
        "request_id": body["request_id"], "offer_id": offer, "kind": "report",
        "text": "wrong size"}), "FeedbackRecorded", 201)
    check(client.get("/v1/admin/cases", headers=key("admin")), "Cases", 200)
    check(client.patch(f"/v1/admin/cases/{report['case_id']}", headers=key("admin"),
                       json={"status": "resolved", "note": "size chart fixed"}), "CaseUpdated", 200)
    check(client.get(f"{customer}/data-usage", headers=key()), "DataUsage", 200)
    check(client.get("/v1/policy"), "Policy", 200)
    check(client.get("/v1/stats"), "Stats", 200)
    check(client.delete(customer, headers=bearer(token)), "ErasureReceipt", 200)


@pytest.mark.parametrize(("method", "path", "status", "headers"), [
    ("get", "/v1/customers/{customer_id}/offers", 400, "key"),
    ("get", "/v1/customers/{customer_id}/offers", 401, None),
    ("get", "/v1/customers/{customer_id}/offers/{offer_id}/why", 404, "key"),
    ("put", "/v1/customers/{customer_id}/consent", 415, "key"),
    ("post", "/v1/customers/{customer_id}/interactions", 403, "token"),
])
def test_errors_match_the_error_schema_and_are_documented(client, method, path, status, headers):
    assert status in documented_statuses(path, method)
    url = path.format(customer_id=CUSTOMER, offer_id="no-such-offer")
    if status == 400:
        url += "?k=0"
    sent = {"key": key(), "token": bearer(token_for(client, CUSTOMER)), None: {}}[headers]
    data = "x" if status == 415 else None
    json = {"offer_id": "o0001", "kind": "click"} if method == "post" else None
    response = client.open(url, method=method.upper(), headers=sent, data=data, json=json)
    check(response, "Error", status)
