// The offers page: one card per offer, "Why do I see this?" on demand, feedback on each offer.
import { api, customer, customerPath, describe, done, el, pageData, showError } from "./common.js";

const { names, levels } = pageData();
const K = 6;
const HISTORY = "interaction_history";
const SVG = "http://www.w3.org/2000/svg";

function name(category) {
  return names[category] || category;
}

async function start() {
  let id, body;
  try {
    id = await customer();
    body = await api(customerPath(id, `/offers?k=${K}`));
  } catch (error) {
    showError(error);
    return;
  }
  done();
  document.getElementById("disclosure-text").textContent = body.disclosure.text;
  showPersonalization(body);
  const list = document.getElementById("offers");
  if (!body.offers.length) list.replaceWith(el("p", {}, "There are no offers for you right now."));
  body.offers.forEach((offer, index) => list.append(card(offer, index, body.request_id)));
}

function showPersonalization(body) {
  const section = document.getElementById("personalization");
  section.append(el("p", {}, el("strong", {}, "How personal: "), levels[body.personalization] || body.personalization));
  if (body.categories_not_used.length) {
    section.append(el("p", {}, "Not used for these offers:"),
      el("ul", { class: "not-used" }, ...body.categories_not_used.map((c) => el("li", {}, c.text))));
  }
  section.append(el("p", {}, el("a", { href: "/pages/privacy" }, "Change what may be used")));
  section.hidden = false;
}

function card(offer, index, requestId) {
  const panelId = `why-${index}`;
  const heading = el("h2", { id: `offer-${index}` }, offer.title);
  const why = el("button", {
    type: "button", class: "why", "aria-expanded": "false", "aria-controls": panelId,
    "aria-describedby": `offer-${index}`,  // which offer: six buttons share the words
  }, "Why do I see this?");
  const panel = el("div", { id: panelId, class: "why-panel", role: "region", "aria-labelledby": `offer-${index}`, hidden: true });
  why.addEventListener("click", () => toggleWhy(why, panel, offer));
  const top = (offer.criteria || []).map((c) => el("li", {}, c.text));
  return el("li", { class: "card", "data-offer-id": offer.offer_id },
    heading,
    top.length ? el("ul", { class: "top-criteria" }, ...top) : null,
    why, panel, feedback(offer, index, requestId));
}

async function toggleWhy(button, panel, offer) {
  const open = button.getAttribute("aria-expanded") === "true";
  button.setAttribute("aria-expanded", String(!open));
  panel.hidden = open;
  if (open) return;
  panel.replaceChildren(el("p", { class: "muted" }, "Loading the explanation…"));
  try {
    panel.replaceChildren(...explanation(await api(offer.why)));
  } catch (error) {
    panel.replaceChildren(el("p", { class: "error" }, describe(error)));
  }
}

function explanation(why) {
  const parts = [el("h3", {}, "Why you see this offer")];
  if (why.message) parts.push(el("p", {}, why.message));
  // the shop's own rules come first: they, not the customer's data, moved this offer
  for (const rule of why.business_rules || []) {
    parts.push(el("p", { class: "business-rule", "data-change": rule.change }, rule.text));
  }
  for (const text of why.your_choices || []) parts.push(el("p", { class: "your-choice" }, text));
  parts.push(el("p", {}, "What made this offer more or less likely for you:"),
    el("ol", { class: "why-criteria" }, ...why.criteria.map((c) => el("li", { "data-category": c.category }, c.text))));
  parts.push(el("h4", {}, "How much each counted"), chart(why.criteria));
  if (why.minor) parts.push(el("p", { class: "muted minor" }, why.minor.text));
  const history = why.criteria.find((c) => c.category === HISTORY && c.data?.past_offers?.length);
  if (history) {
    const past = history.data.past_offers;
    const more = history.data.past_offer_count - past.length;
    parts.push(el("h4", {}, "Your past items involved"),
      el("ul", { class: "past-items" }, ...past.map((p) => el("li", {}, el("span", { class: "past-title" }, p.title), " ", leaveOut(p)))),
      more > 0 ? el("p", { class: "muted" }, `and ${more} more of your past items, each counting less`) : null);
  }
  parts.push(el("h4", {}, "Not used"));
  parts.push(why.categories_not_used.length
    ? el("ul", { class: "not-used" }, ...why.categories_not_used.map((c) => el("li", { "data-category": c.category }, c.text)))
    : el("p", {}, "Every kind of data you allowed was used."));
  parts.push(el("p", { class: "muted" },
    `Chosen by model ${why.model_version}. The amounts are exact: they add up to how far this `,
    "offer stands above your typical offer. ",
    el("a", { href: "/pages/privacy" }, "Change what may be used")));
  return parts;
}

// "Don't use this purchase": the past item no longer counts among the customer's purchases.
function leaveOut(past) {
  const button = el("button", { type: "button", class: "leave-out", "aria-label": `Don't use ${past.title}` },
    "Don't use this purchase");
  button.addEventListener("click", async () => {
    try {
      const answer = await api(customerPath(await customer(), "/controls"), {
        method: "POST", body: { kind: "leave_out", value: past.offer_id },
      });
      const mine = answer.controls.find((c) => c.kind === "leave_out" && c.value === past.offer_id);
      button.replaceWith(el("span", { class: "muted", role: "status" }, mine ? mine.text : "Done."));
    } catch (error) {
      button.replaceWith(el("span", { class: "error", role: "status" }, describe(error)));
    }
  });
  return button;
}

// One row per criterion: its name, a bar as long as its share, and the share in words (the bar
// itself is decoration for sighted readers; the text says the same).
function chart(criteria) {
  const rows = criteria.map((c) => {
    const percent = Math.round(c.share * 100);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "bar");
    svg.setAttribute("viewBox", "0 0 100 10");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("width", String(Math.max(c.share * 100, 0.5)));
    rect.setAttribute("height", "10");
    rect.setAttribute("class", c.direction);
    svg.append(rect);
    const effect = { positive: "made it more likely", negative: "made it less likely" }[c.direction] || "no effect";
    return el("li", { "data-category": c.category },
      el("span", { class: "bar-label" }, name(c.category)), svg,
      el("span", { class: "bar-value" }, `${percent}%, ${effect}`));
  });
  return el("ul", { class: "bars" }, ...rows);
}

const FEEDBACK = [
  ["not_relevant", "Not relevant"],
  ["see_less", "See less like this"],
  ["report", "Report a problem"],
  ["talk_to_person", "Talk to a person"],
];
// what "not relevant" and "see less like this" do, and how to take it back (the controls API)
const DONE = {
  not_relevant: "Noted: this offer will not be shown to you again.",
  see_less: "Noted: offers like this one will be placed lower from now on.",
};

function undoButton(kind, offer, status) {
  const button = el("button", { type: "button", class: "undo" }, "Undo");
  button.addEventListener("click", async () => {
    try {
      const controls = await api(customerPath(await customer(), "/controls"));
      const made = controls.controls.filter((c) => c.kind === kind &&
        (kind === "not_relevant" ? c.value === offer.offer_id : true));
      for (const c of made.slice(-1)) await api(c.undo.href, { method: "DELETE" });
      status.textContent = "Undone.";
    } catch (error) {
      status.textContent = describe(error);
    }
  });
  return button;
}

function feedback(offer, index, requestId) {
  const status = el("p", { class: "feedback-status", role: "status", "aria-live": "polite" });
  const textId = `report-text-${index}`;
  const text = el("textarea", { id: textId, rows: "2", maxlength: "2000", required: true });
  const report = el("form", { class: "report", hidden: true },
    el("label", { for: textId }, "What is wrong with this offer?"), text,
    el("button", { type: "submit" }, "Send report"));
  const send = async (kind, extra = {}) => {
    status.textContent = "Sending…";
    try {
      const answer = await api("/v1/feedback", {
        method: "POST", body: { request_id: requestId, offer_id: offer.offer_id, kind, ...extra },
      });
      status.replaceChildren(answer.message || DONE[kind] || "Thank you for telling us.");
      if (answer.case_id) {
        status.append(" Case id: ", el("strong", { class: "case-id" }, answer.case_id));
      }
      if (DONE[kind]) status.append(" ", undoButton(kind, offer, status));
      report.hidden = true;
    } catch (error) {
      status.textContent = describe(error);
    }
  };
  report.addEventListener("submit", (event) => {
    event.preventDefault();
    send("report", { text: text.value });
  });
  const buttons = FEEDBACK.map(([kind, label]) => {
    const button = el("button", { type: "button", class: "feedback", "data-kind": kind }, label);
    button.addEventListener("click", () => {
      if (kind !== "report") return send(kind);
      report.hidden = !report.hidden;
      if (!report.hidden) text.focus();
    });
    return button;
  });
  return el("div", { class: "feedback-group", role: "group", "aria-label": `Feedback on ${offer.title}` },
    ...buttons, report, status);
}

start();
