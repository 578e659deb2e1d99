"""The customer pages (serving.pages) without a browser: every page renders as a shell with its
script, under a self-only Content-Security-Policy and no Referer; nothing is loaded from elsewhere;
the controls in the templates are labelled; /pages/session tells a customer token's customer and
nothing to anyone else. tests/test_pages_browser.py drives the same pages in Chromium."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import test_api
from test_api import CUSTOMER, bearer, key, token_for

from serving.pages import CONTENT_SECURITY_POLICY, PAGES

make_app = test_api.make_app  # the same fixture: real Redis, a SQLite consent database

PAGES_DIR = Path(__file__).resolve().parents[1] / "serving" / "pages"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # an XML name, never fetched
# an absolute URL, or a protocol-relative one in a string, attribute, url() or import
EXTERNAL = re.compile(r"""\b(?:https?|ftp|wss?):|["'(=]\s*//""", re.I)


@pytest.fixture
def client(make_app):
    return make_app(None).test_client()  # pages and tokens need no published model


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text of each label."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.data_block: list[str] = []
        self._in_data = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        self._in_data = tag == "script" and attributes.get("type") == "application/json"

    def handle_endtag(self, tag):
        self._in_data = False

    def handle_data(self, data):
        if self._in_data:
            self.data_block.append(data)


def parse(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    return parser


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_is_a_shell_with_its_script_under_a_self_only_policy(client, page):
    response = client.get(f"/pages/{page}")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe" not in CONTENT_SECURITY_POLICY
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    html = parse(response.get_data(as_text=True))
    scripts = [a["src"] for t, a in html.tags if t == "script" and "src" in a]
    styles = [a["href"] for t, a in html.tags if t == "link" and a.get("rel") == "stylesheet"]
    icons = [a["href"] for t, a in html.tags if t == "link" and a.get("rel") == "icon"]
    assert scripts == [f"/pages/static/{PAGES[page][1]}"] and styles == ["/pages/static/pages.css"]
    assert icons == ["/pages/static/favicon.svg"]  # no 404 for the browser's favicon request
    for url in scripts + styles + icons:  # everything it loads is served here, same headers
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.mimetype in ("text/javascript", "application/javascript", "text/css",
                                  "image/svg+xml"), url
        assert asset.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    # the page data is a JSON block (never run by a browser), with a name for every category
    data = json.loads("".join(html.data_block))
    assert set(data["names"]) >= set(test_api.ALL) | {"popularity"}
    assert set(data["levels"]) == {"full", "segment", "none"}
    assert ("a", {"href": f"/pages/{page}", "aria-current": "page"}) in html.tags
    # a shell: no customer data or token in the HTML, whoever asks
    token = token_for(client, CUSTOMER)
    shell = client.get(f"/pages/{page}", headers=bearer(token)).get_data(as_text=True)
    assert CUSTOMER not in shell and token not in shell


def test_nothing_is_loaded_from_another_site():
    files = [p for p in PAGES_DIR.rglob("*") if p.suffix in (".html", ".js", ".css")]
    assert {p.suffix for p in files} == {".html", ".js", ".css"}
    for path in files:
        text = path.read_text().replace(SVG_NAMESPACE, "")
        found = [m.group(0) for m in EXTERNAL.finditer(text)]
        assert not found, f"{path.name} refers to another site: {found}"
        assert "@import" not in text and "innerHTML" not in text, path.name


def test_the_external_url_check_finds_what_it_looks_for():
    for text in ('<script src="https://cdn.example/x.js">', "url(//fonts.example/a.woff)",
                 "import x from 'http://example.org/m.js'", "fetch(\"//example.org\")"):
        assert EXTERNAL.search(text), text
    assert not EXTERNAL.search("// a comment in a script\nconst a = b; // another")


def test_controls_in_the_pages_have_labels_and_buttons_have_text(client):
    for page in PAGES:
        html = client.get(f"/pages/{page}").get_data(as_text=True)
        tags = parse(html).tags
        labelled = {a.get("for") for t, a in tags if t == "label"}
        for tag, attributes in tags:
            if tag in ("input", "select", "textarea"):
                assert attributes.get("id") in labelled or attributes.get("aria-label"), (page, tag)
        assert html.count("<button") == len(re.findall(r"<button[^>]*>[^<\s][^<]*</button>", html))
        assert '<html lang="en">' in html and 'href="#main"' in html  # language, skip link


def test_session_tells_a_customer_token_its_customer_and_nobody_else(client):
    token = token_for(client, CUSTOMER)
    response = client.get("/pages/session", headers=bearer(token))
    assert response.status_code == 200 and response.get_json() == {"customer_id": CUSTOMER}
    assert response.headers["Cache-Control"] == "no-store"
    for headers, status in (({}, 401), (bearer(token + "x"), 401), (key(), 403)):
        refused = client.get("/pages/session", headers=headers)
        assert refused.status_code == status
        assert refused.get_json()["error"]["field"] == "Authorization"
    assert client.post("/pages/session", headers=bearer(token)).status_code == 405


def test_the_page_routes_are_not_api_routes(client):
    from serving.openapi import SPEC

    assert not [path for path in SPEC["paths"] if path.startswith("/pages")]
    assert all(rule.rule.startswith("/pages/") for rule in client.application.url_map.iter_rules()
               if rule.endpoint.startswith("pages."))
