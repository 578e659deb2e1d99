"""The integration walk-through with real requests and responses: docs/walkthrough.md.

    .venv/bin/python docs/walkthrough.py > docs/walkthrough.md

Trains the served model on a small synthetic storefront (its default weights, no search), publishes
it to an embedded Redis in a temporary folder, and calls the real app in-process (Flask's test
client, the same routes gunicorn serves): key -> customer token -> offers -> why -> consent ->
offers again -> a purchase -> feedback -> data usage. Long lists in the responses are cut to their
first items, marked with "...".
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommender.loaders import load_synthetic  # noqa: E402
from recommender.models import SERVED, make_model  # noqa: E402
from recommender.split import temporal_split  # noqa: E402
from recommender.training import TrainingRun, build_artifact  # noqa: E402
from serving.app import close_app, create_app  # noqa: E402
from serving.auth import hash_key  # noqa: E402
from serving.publish import connect, publish  # noqa: E402

KEY = "trk_example_storefront_key"
CUSTOMER = "c00007"


def shorten(value: object, items: int = 2) -> object:
    if isinstance(value, list):
        kept = [shorten(v, items) for v in value[:items]]
        return kept + ["..."] if len(value) > items else kept
    if isinstance(value, dict):
        return {k: shorten(v, items) for k, v in value.items()}
    return round(value, 4) if isinstance(value, float) else value


def main() -> None:
    dataset = load_synthetic(0, n_customers=300, n_offers=60)
    model = make_model(SERVED, random_state=0, num_threads=1, show_progress=False).fit(dataset)
    split = temporal_split(dataset)
    run = TrainingRun(SERVED, model.get_params(), model, split, {}, {}, 0.0)
    with tempfile.TemporaryDirectory() as folder:
        client = connect(None, embedded_path=Path(folder) / "redis.db")
        publish(build_artifact(dataset, run, model), client, "example:", progress=False)
        app = create_app({
            "TRUSTREC_REDIS_CLIENT": client, "TRUSTREC_REDIS_PREFIX": "example:",
            "TRUSTREC_DATABASE_URL": f"sqlite:///{Path(folder) / 'records.db'}",
            "TRUSTREC_API_KEYS": f"storefront:{hash_key(KEY)}",
            "TRUSTREC_SECRET_KEY": "example-secret-" + "x" * 40,
        })
        try:
            steps(app.test_client())
        finally:
            close_app(app)
            client.shutdown() if hasattr(client, "shutdown") else None


def call(http, title: str, method: str, url: str, headers: dict, body: dict | None = None,
         note: str = "") -> dict:
    response = http.open(url, method=method, headers=headers, json=body)
    shown = {k: v for k, v in headers.items()}
    shown = {k: (v[:12] + "..." if k == "Authorization" else v) for k, v in shown.items()}
    print(f"### {title}\n")
    if note:
        print(note + "\n")
    print("```http")
    print(f"{method} {url}")
    for name, value in shown.items():
        print(f"{name}: {value}")
    if body is not None:
        print("\n" + json.dumps(body, indent=2))
    print("```\n")
    print(f"{response.status_code}:\n\n```json\n{json.dumps(shorten(response.get_json()), indent=2)}\n```\n")
    return response.get_json()


def steps(http) -> None:
    print("# Walk-through: from an API key to feedback\n")
    print(__doc__.split("\n\n", 2)[2].strip().replace("\n", " ") + "\n")
    print("Regenerate this page with `.venv/bin/python docs/walkthrough.py > docs/walkthrough.md`; "
          "ids, scores and times differ per run.\n")
    storefront = {"X-API-Key": KEY}
    token = call(http, "1. A token for the customer's browser", "POST",
                 f"/v1/customers/{CUSTOMER}/token", storefront, {"ttl_seconds": 3600},
                 "The storefront (with its API key) issues a signed, expiring token that opens this "
                 "customer's own offers, explanations and consent, nothing else.")["token"]
    customer = {"Authorization": f"Bearer {token}"}
    offers = call(http, "2. Offers", "GET", f"/v1/customers/{CUSTOMER}/offers?k=3", customer,
                  note="With the token (or the storefront key). Every response says it was chosen "
                       "by an automated system, which data categories were used, and its request "
                       "id.")
    offer = offers["offers"][0]["offer_id"]
    call(http, "3. Why this offer", "GET", f"/v1/customers/{CUSTOMER}/offers/{offer}/why",
         customer, note="The exact contribution of every data category (SHAP values against the "
                        "average customer), the past offers behind the history part, and what was "
                        "not used and why.")
    call(http, "4. The customer switches their purchase history off", "PUT",
         f"/v1/customers/{CUSTOMER}/consent", customer,
         {"allowed": ["demographics", "location", "profile"], "level": "full"})
    call(http, "5. Offers again: the change holds from the very next request", "GET",
         f"/v1/customers/{CUSTOMER}/offers?k=3&explain=false", customer)
    call(http, "6. A purchase", "POST", f"/v1/customers/{CUSTOMER}/interactions", storefront,
         {"offer_id": offer, "kind": "purchase"},
         "Recorded in the database first, then used by the next request (when history is "
         "allowed) and by the next training run.")
    call(http, "7. Feedback: not relevant", "POST", "/v1/feedback", customer,
         {"request_id": offers["request_id"], "offer_id": offer, "kind": "not_relevant"})
    call(http, "8. What of the customer's data was used", "GET",
         f"/v1/customers/{CUSTOMER}/data-usage", customer)


if __name__ == "__main__":
    main()
