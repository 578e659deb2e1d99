"""Customer-facing pages: offers with "Why do I see this?", privacy settings, what data was used,
and the policy, for a storefront to link to or embed.

The pages are shells: their scripts call the JSON API (/v1/...) with the customer token as a Bearer
header, so every check the API makes (a token reads its own customer only) holds for the pages too.
The storefront links to /pages/offers#token=...: a URL fragment never reaches a server, so the
token stays out of access logs and Referer headers; the script keeps it in the tab's
sessionStorage and removes it from the address bar.

Everything is served from here (no fonts or scripts from elsewhere) under a self-only
Content-Security-Policy.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, render_template

from explain.templates import POPULARITY, Templates
from serving.api.accountability import LEVEL_TEXT
from serving.auth import CUSTOMER, current_principal
from serving.errors import ApiError

# the personalization levels as people say them (the API's names are full, segment, none)
LEVEL_NAMES = {"full": "Fully personal", "segment": "Like customers similar to me",
               "none": "Not personal"}

bp = Blueprint("pages", __name__, url_prefix="/pages", template_folder="templates",
               static_folder="static")

# Only this origin, for everything; no inline script or style (the page data block is JSON, which
# a browser never runs). frame-ancestors 'self': embed through the shop's own origin (a proxy).
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self'",
    "connect-src 'self'", "font-src 'self'", "object-src 'none'", "base-uri 'none'",
    "form-action 'self'", "frame-ancestors 'self'",
))

# page -> (title, script); the script is an ES module in static/
PAGES = {
    "offers": ("Your offers", "offers.js"),
    "privacy": ("Privacy settings", "privacy.js"),
    "data-usage": ("What we use about you", "usage.js"),
    "policy": ("How offers are chosen", "policy.js"),
}


@bp.after_request
def _protect(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _page_data() -> dict:
    """What every page needs to word things and that is not personal: category names and the
    personalization levels in plain words (the same wording the API uses)."""
    taxonomy = current_app.extensions["trustrec"].consents.taxonomy
    templates = Templates.default()
    names = {c: templates.name(c) for c in (*taxonomy.categories, POPULARITY)}
    return {"names": names, "levels": LEVEL_TEXT, "level_names": LEVEL_NAMES}


def _render(page: str) -> str:
    title, script = PAGES[page]
    return render_template(f"pages/{page}.html", page=page, title=title, script=script,
                           pages=PAGES, data=_page_data())


@bp.get(f"/<any({', '.join(repr(p) for p in PAGES)}):page>")
def page(page: str):
    return _render(page)


@bp.get("/session")
def session():
    """Which customer the presented token is for. The pages show this customer, unless the link
    named another (#customer=...), in which case the API itself refuses (403) and the page says so."""
    principal = current_principal()  # 401 without a valid token
    if principal.role != CUSTOMER:
        raise ApiError(403, "forbidden", "the customer pages take a customer token, not an API key",
                       "Authorization")
    return jsonify({"customer_id": principal.customer_id})
