"""The customer pages in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright) against the real app served on a loopback port, with real Redis and a published model.

What the API says is what the page shows: the criteria of "Why do I see this?", a category switched
off in the privacy settings gone from offers and explanations at once, the case id of a handoff.
A token cannot show another customer's data; the "Why" control works from the keyboard; text is
readable. Screenshots go to test-artifacts/. Without Chromium the module skips, saying how to get it.
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import test_api
from test_api import CUSTOMER, OTHER, bearer, key, offers, token_for
from werkzeug.serving import make_server

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"browser tests skipped: headless Chromium not found at {CHROMIUM}; install Debian's "
                "chromium and chromium-driver (`make browser`, as root; CI does)",
                allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="browser tests skipped: playwright is not installed "
                                  "(pip install -e '.[test]')")

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
HISTORY = "interaction_history"
K = 6  # offers on the page (serving/pages/static/offers.js)
WAIT_MS = 10_000

make_app, app, client = test_api.make_app, test_api.app, test_api.client  # the same fixtures


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextmanager
def serving(app):
    """The real app over HTTP on a free loopback port."""
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def server(app):
    with serving(app) as url:
        yield url


@pytest.fixture
def page(browser, server):
    """A fresh tab (its own sessionStorage). At the end: no script error or policy violation, and
    no request left this server (no external assets)."""
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    problems, urls = [], []
    tab.on("pageerror", lambda error: problems.append(str(error)))
    # an HTTP error status the page handles is logged as "Failed to load resource": not a problem
    tab.on("console", lambda m: m.type == "error" and "Failed to load resource" not in m.text
           and problems.append(m.text))
    tab.on("request", lambda request: urls.append(request.url))
    yield tab
    context.close()
    assert not problems
    assert urls and all(url.startswith(server + "/") for url in urls), urls


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_offers(page, server: str, fragment: str) -> list[str]:
    page.goto(f"{server}/pages/offers#{fragment}")
    page.wait_for_selector(".card")
    return page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.offerId)")


def open_why(page, index: int = 0):
    card = page.locator(".card").nth(index)
    card.get_by_role("button", name="Why do I see this?").click()
    card.locator(".why-criteria li").first.wait_for()
    return card


def shown_why(card) -> dict:
    texts = card.locator(".why-criteria li").all_inner_texts()
    categories = card.locator(".why-criteria li").evaluate_all("l => l.map(e => e.dataset.category)")
    return {
        "criteria": list(zip(categories, texts, strict=True)),
        "bars": card.locator(".bars li").evaluate_all("l => l.map(e => e.dataset.category)"),
        "values": card.locator(".bars .bar-value").all_inner_texts(),
        "past": card.locator(".past-items .past-title").all_inner_texts(),
        "not_used": card.locator(".not-used li").evaluate_all("l => l.map(e => e.dataset.category)"),
    }


def api_why(client, token: str, offer_id: str) -> dict:
    response = client.get(f"/v1/customers/{CUSTOMER}/offers/{offer_id}/why", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def assert_shows(shown: dict, why: dict) -> None:
    """The page's explanation is the API's, criterion for criterion."""
    assert shown["criteria"] == [(c["category"], c["text"]) for c in why["criteria"]]
    assert shown["bars"] == [c["category"] for c in why["criteria"]]
    assert [int(v.split("%")[0]) for v in shown["values"]] == [round(c["share"] * 100)
                                                              for c in why["criteria"]]
    history = [c for c in why["criteria"] if c["category"] == HISTORY and c["data"].get("past_offers")]
    assert shown["past"] == ([p["title"] for p in history[0]["data"]["past_offers"]] if history else [])
    assert shown["not_used"] == [n["category"] for n in why["categories_not_used"]]


def test_offers_why_switching_a_category_off_and_feedback(page, server, client):
    token = token_for(client, CUSTOMER)
    before = open_offers(page, server, f"token={token}")
    assert "token" not in page.url  # taken out of the address bar; kept for this tab only
    assert page.evaluate("sessionStorage.getItem('trustrec.token')") == token
    assert before == test_api.ids(offers(client, query=f"?k={K}", headers=bearer(token)))
    note = page.locator("#disclosure")
    assert "automated system" in note.inner_text()
    assert note.get_by_role("link").get_attribute("href") == "/pages/policy"

    card = open_why(page)
    assert card.get_by_role("button", name="Why do I see this?").get_attribute("aria-expanded") == "true"
    why = api_why(client, token, before[0])
    shown = shown_why(card)
    assert_shows(shown, why)
    assert HISTORY in [c for c, _ in shown["criteria"]] and shown["past"]  # the case worth testing
    shot(page, "1-offers-why")

    # switch purchase history off in the privacy settings, reached through the page's own link
    page.get_by_role("link", name="Privacy settings").click()
    switch = page.get_by_role("switch", name="Your purchases and ratings")
    assert switch.is_checked()
    unlabelled = page.evaluate("[...document.querySelectorAll('input, select, textarea')]"
                               ".filter(e => !e.labels.length).length")
    assert unlabelled == 0
    switch.uncheck()
    page.get_by_role("button", name="Save my choices").click()
    page.get_by_role("status").filter(has_text="Saved").wait_for()
    consent = client.get(f"/v1/customers/{CUSTOMER}/consent", headers=key()).get_json()
    assert HISTORY not in consent["allowed"] and consent["version"] == 1
    shot(page, "2-privacy-saved")

    page.get_by_role("link", name="See your offers").click()
    page.wait_for_selector(".card")
    after = page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.offerId)")
    served = offers(client, query=f"?k={K}", headers=bearer(token))
    assert after == test_api.ids(served) and after != before  # the change, at once
    assert HISTORY not in served["categories_used"]
    assert "switched it off" in page.locator("#personalization").inner_text()
    card = open_why(page)
    shown = shown_why(card)
    assert_shows(shown, api_why(client, token, after[0]))
    assert HISTORY not in [c for c, _ in shown["criteria"]] and HISTORY not in shown["bars"]
    assert shown["past"] == [] and HISTORY in shown["not_used"]
    shot(page, "3-offers-after-switching-history-off")

    # feedback: not relevant, a report, and a handoff to a person with its case id
    first, second = page.locator(".card").nth(0), page.locator(".card").nth(1)
    second.get_by_role("button", name="Not relevant").click()
    second.locator(".feedback-status").filter(has_text="will not be shown").wait_for()
    second.get_by_role("button", name="Report a problem").click()
    second.get_by_label("What is wrong with this offer?").fill("Wrong size shown")
    second.get_by_role("button", name="Send report").click()
    reported = second.locator(".case-id").inner_text()
    first.get_by_role("button", name="Talk to a person").click()
    handoff = first.locator(".case-id").inner_text()
    assert "A person will look at this" in first.locator(".feedback-status").inner_text()
    cases = client.get("/v1/admin/cases", headers=key("admin")).get_json()["cases"]
    opened = {c["case_id"]: (c["kind"], c["offer_id"], c["customer_id"], c["text"]) for c in cases}
    assert opened == {reported: ("report", after[1], CUSTOMER, "Wrong size shown"),
                      handoff: ("talk_to_person", after[0], CUSTOMER, None)}
    shot(page, "4-feedback-case-id")

    page.get_by_role("link", name="What we use about you").click()
    page.locator("#usage").wait_for()
    usage = client.get(f"/v1/customers/{CUSTOMER}/data-usage", headers=key()).get_json()
    shown_counts = page.locator("#categories tbody tr").evaluate_all(
        "rows => Object.fromEntries(rows.map(r => [r.dataset.category, "
        "Number(r.querySelector('.count').textContent)]))")
    assert shown_counts == {c["category"]: c["responses"] for c in usage["categories"]}
    assert page.locator("#summary").inner_text() .startswith("From ")
    # one date format on the page: the summary's ("28 November 2026 10:05 UTC") in the tables too
    dates = page.locator("#records tbody tr td:first-child").all_inner_texts()
    assert dates and all(re.fullmatch(r"\d{2} [A-Z][a-z]+ \d{4} \d{2}:\d{2} UTC", d)
                         for d in dates), dates
    shot(page, "5-data-usage")

    page.get_by_role("link", name="How offers are chosen").click()
    page.locator("#policy").wait_for()
    assert "automated system" in page.locator("#policy").inner_text()
    shot(page, "6-policy")


def test_a_token_cannot_show_another_customers_data(page, server, client):
    token = token_for(client, CUSTOMER)
    page.goto(f"{server}/pages/offers#token={token}&customer={OTHER}")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "cannot show another customer's data" in alert.inner_text()
    assert page.locator(".card").count() == 0
    shot(page, "7-another-customer-refused")
    page.get_by_role("link", name="Privacy settings").click()  # the same tab: still customer B
    page.get_by_role("alert").wait_for()
    assert page.locator("input").count() == 0
    page.goto(f"{server}/pages/offers#token={token}x")  # a token that is not valid
    page.get_by_role("alert").wait_for()
    assert "expired or is not valid" in page.get_by_role("alert").inner_text()


def test_why_is_a_button_reached_with_tab_and_opened_with_enter(page, server, client):
    open_offers(page, server, f"token={token_for(client, CUSTOMER)}")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('why')"):
            break
    else:
        pytest.fail("no 'Why do I see this?' control was reached with Tab")
    assert page.evaluate("document.activeElement.tagName") == "BUTTON"
    page.keyboard.press("Enter")
    card = page.locator(".card").first
    card.locator(".why-criteria li").first.wait_for()
    assert card.locator(".why").get_attribute("aria-expanded") == "true"
    assert readable_contrast(page) >= 4.5


def readable_contrast(page) -> float:
    """The lowest contrast ratio (WCAG 2) of visible text on the page against its background."""
    pairs = page.evaluate("""() => {
      const background = (e) => {
        for (; e; e = e.parentElement) {
          const c = getComputedStyle(e).backgroundColor;
          if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c;
        }
        return 'rgb(255, 255, 255)';
      };
      return [...document.querySelectorAll('main *, nav a')]
        .filter(e => e.offsetParent && [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()))
        .map(e => [getComputedStyle(e).color, background(e)]);
    }""")
    assert pairs
    return min(_ratio(_rgb(text), _rgb(back)) for text, back in pairs)


def _rgb(css: str) -> tuple[float, ...]:
    return tuple(float(v) for v in re.findall(r"[\d.]+", css)[:3])


def _ratio(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    def luminance(rgb):
        linear = [c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4
                  for c in rgb]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_a_promoted_offer_says_so_and_its_why_names_the_shops_rule(browser, make_app, tmp_path):
    from test_api_rules import campaign  # boosts the customer's 12th offer twenty-fold

    rules = tmp_path / "rules.toml"
    rules.write_text(campaign())
    app = make_app(TRUSTREC_RULES=str(rules))
    client = app.test_client()
    token = token_for(client, CUSTOMER)
    with serving(app) as url:
        context = browser.new_context(viewport={"width": 1000, "height": 900})
        context.set_default_timeout(WAIT_MS)
        tab = context.new_page()
        try:
            shown = open_offers(tab, url, f"token={token}")
            served = offers(client, query=f"?k={len(shown)}", headers=bearer(token))
            promoted = [o["offer_id"] for o in served["offers"]
                        if o.get("business_rule", {}).get("change") == "boosted"]
            assert promoted and promoted[0] in shown
            card = open_why(tab, shown.index(promoted[0]))
            assert card.locator(".top-criteria li").first.inner_text() == "Promoted offer"
            why = api_why(client, token, promoted[0])
            assert why["business_rules"] and card.locator(".business-rule").all_inner_texts() == [
                r["text"] for r in why["business_rules"]]
            shot(tab, "8-promoted-offer-why")
        finally:
            context.close()


# --- the customer's controls, and every page accessible on a desktop and a phone ------------------
def test_not_relevant_see_less_and_a_purchase_not_used_from_the_offers_page(page, server, client):
    token = token_for(client, CUSTOMER)
    shown = open_offers(page, server, f"token={token}")
    card = page.locator(".card").nth(1)
    card.get_by_role("button", name="Not relevant").click()
    card.locator(".feedback-status").filter(has_text="will not be shown").wait_for()
    assert shown[1] not in test_api.ids(offers(client, query=f"?k={K}", headers=bearer(token)))
    card.get_by_role("button", name="Undo").click()
    card.locator(".feedback-status").filter(has_text="Undone").wait_for()
    assert shown[1] in test_api.ids(offers(client, query=f"?k={K}", headers=bearer(token)))

    card = open_why(page, 0)
    past = card.locator(".past-items li").first
    gift_title = past.locator(".past-title").inner_text()
    past.get_by_role("button").click()
    card.locator(".past-items").get_by_role("status").wait_for()
    served = offers(client, query=f"?k={K}", headers=bearer(token))
    why = api_why(client, token, served["offers"][0]["offer_id"])
    titles = [p["title"] for c in why["criteria"] for p in c["data"].get("past_offers", [])]
    assert gift_title not in titles
    shot(page, "9-controls-on-offers")


def test_your_data_requests_download_and_erasure_on_the_privacy_page(page, server, client):
    token = token_for(client, CUSTOMER)
    page.goto(f"{server}/pages/privacy#token={token}")
    page.locator("#your-data .attribute").first.wait_for()
    assert page.locator("#applied-text").inner_text().startswith("Fully personal")
    region = page.get_by_label("Region (Your location)")
    held = region.input_value()
    region.fill("capital" if held != "capital" else "north")
    page.get_by_role("button", name="Save my data").click()
    page.locator("#attributes-saved").filter(has_text="Saved").wait_for()
    listed = client.get(f"/v1/customers/{CUSTOMER}/attributes", headers=key()).get_json()
    [row] = [a for a in listed["attributes"] if a["attribute"] == "region"]
    assert row["source"] == "corrected" and row["value"] != held

    page.get_by_label("What would you like to talk about?").fill("A question about my data")
    page.get_by_role("button", name="Send to a person").click()
    page.locator("#cases li").filter(has_text="A question about my data").wait_for()
    [case] = client.get(f"/v1/customers/{CUSTOMER}/cases", headers=key()).get_json()["cases"]
    assert case["text"] == "A question about my data" and case["case_id"] in page.locator(
        "#cases").inner_text()

    page.get_by_role("button", name="Download my data").click()
    link = page.get_by_role("link", name="Save the file")
    link.wait_for()
    assert link.get_attribute("href").startswith("blob:")

    page.get_by_role("button", name="Erase my data").click()
    page.get_by_role("button", name="Yes, erase everything").click()
    page.locator("#erase-status .receipt").wait_for()
    assert client.get(f"/v1/customers/{CUSTOMER}/offers", headers=bearer(token)).status_code == 401
    shot(page, "10-privacy-data-erased")


@pytest.mark.parametrize("viewport", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_every_page_is_accessible_and_fits_the_screen(browser, server, client, viewport):
    from axe_playwright_python.sync_playwright import Axe

    token = token_for(client, CUSTOMER)
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    axe = Axe()
    try:
        tab.goto(f"{server}/pages/offers#token={token}")
        tab.wait_for_selector(".card")
        open_why(tab, 0)
        for name, ready in (("offers", ".card"), ("privacy", "#your-data .attribute"),
                            ("data-usage", "#usage"), ("policy", "#policy")):
            if name != "offers":
                tab.goto(f"{server}/pages/{name}")
                tab.wait_for_selector(ready)
            results = axe.run(tab)
            assert results.violations_count == 0, (name, results.generate_report())
            wide = tab.evaluate("document.documentElement.scrollWidth")
            assert wide <= viewport[0], (name, wide)
    finally:
        context.close()
