// "What do you use about me": the data-usage report, read from the audit trail by the API.
import { api, customer, customerPath, done, el, pageData, showError, when } from "./common.js";

const { names } = pageData();
const LATEST = 20;
const WHAT = { offers: "Picked offers", why: "Explained an offer" };

async function start() {
  let report;
  try {
    report = await api(customerPath(await customer(), `/data-usage?limit=${LATEST}`));
  } catch (error) {
    showError(error);
    return;
  }
  done();
  document.getElementById("summary").textContent = report.summary;
  const asked = await api(customerPath(await customer(), "/controls")).catch(() => ({ controls: [] }));
  document.getElementById("controls").replaceChildren(...(asked.controls.length
    ? asked.controls.map((c) => el("li", { "data-kind": c.kind }, c.text))
    : [el("li", {}, "Nothing so far.")]));
  document.querySelector("#categories tbody").append(...report.categories.map((c) => el("tr",
    { "data-category": c.category },
    el("th", { scope: "row" }, c.name), el("td", {}, c.purpose),
    el("td", { class: "count" }, String(c.responses)), el("td", {}, when(c.last_used)))));
  const rows = report.records.map((r) => el("tr", {},
    el("td", {}, when(r.served_at)), el("td", {}, WHAT[r.endpoint] || r.endpoint),
    el("td", {}, r.personalization),
    el("td", {}, r.categories_used.length ? r.categories_used.map((c) => names[c] || c).join(", ")
      : "none of your data"),
    el("td", {}, r.model_version)));
  const records = document.querySelector("#records tbody");
  if (rows.length) records.append(...rows);
  else records.append(el("tr", {}, el("td", { colspan: "5" }, "No records yet.")));
  if (report.truncated) {
    document.getElementById("records").after(
      el("p", { class: "muted" }, `Showing the latest ${LATEST} of ${report.responses} records.`));
  }
  document.getElementById("usage").hidden = false;
}

start();
