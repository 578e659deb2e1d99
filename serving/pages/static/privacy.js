// Privacy settings: a switch per data category, the personalization level, saved through the
// consent API (PUT), which applies it from the very next offers request.
import { api, customer, customerPath, describe, done, el, pageData, showError, when } from "./common.js";

const { levels, level_names: levelNames } = pageData();
const HISTORY = "interaction_history";
const form = document.getElementById("consent-form");
const saved = document.getElementById("saved");
let path;
let version;

let base;

async function start() {
  try {
    base = customerPath(await customer(), "");
    path = base + "/consent";
    show(await api(path));
    showAttributes(await api(base + "/attributes"));
    showControls(await api(base + "/controls"));
    showCases(await api(base + "/cases"));
  } catch (error) {
    showError(error);
    return;
  }
  done();
  form.hidden = false;
  form.addEventListener("submit", save);
  document.getElementById("contact-form").addEventListener("submit", contact);
  for (const id of ["applied", "your-data", "your-requests", "contact", "download-erase"]) {
    document.getElementById(id).hidden = false;
  }
  document.getElementById("attributes-form").addEventListener("submit", saveAttributes);
  document.getElementById("download").addEventListener("click", download);
  const confirm = document.getElementById("erase-confirm");
  document.getElementById("erase").addEventListener("click", () => {
    confirm.hidden = false;
    document.getElementById("erase-no").focus();
  });
  document.getElementById("erase-no").addEventListener("click", () => { confirm.hidden = true; });
  document.getElementById("erase-yes").addEventListener("click", erase);
}

// The level that actually applies: history used means fully personal, other data only means
// like similar customers, nothing means not personal (whatever level was chosen).
function applied(consent) {
  const used = consent.categories.filter((c) => c.used).map((c) => c.category);
  const level = used.includes(HISTORY) ? "full" : used.length ? "segment" : "none";
  const text = document.getElementById("applied-text");
  text.replaceChildren(el("strong", {}, levelNames[level]), ": ", levels[level] || "");
  if (level !== consent.level) {
    text.append(" (You chose ", levelNames[consent.level].toLowerCase(),
      ", but the data you allowed allows no more than this.)");
  }
}

function showAttributes(body) {
  const box = document.getElementById("attributes");
  const source = { model: "from your profile", corrected: "corrected by you",
                   cleared: "not used, as you asked", none: "not known" };
  box.replaceChildren(...body.attributes.map((a) => {
    const id = `attr-${a.attribute}`;
    const label = a.attribute.replaceAll("_", " ");
    return el("div", { class: "attribute", "data-attribute": a.attribute },
      el("label", { for: id }, `${label[0].toUpperCase()}${label.slice(1)} (${a.category_name})`),
      el("input", { type: "text", id, name: a.attribute, value: a.value || "", maxlength: "200",
                    "aria-describedby": `${id}-source`, "data-was": a.value || "" }),
      el("span", { id: `${id}-source`, class: "purpose" }, source[a.source]),
      el("label", { class: "clear" },
        el("input", { type: "checkbox", name: `${a.attribute}.clear`, checked: a.source === "cleared" }),
        " Do not use"));
  }));
}

async function saveAttributes(event) {
  event.preventDefault();
  const status = document.getElementById("attributes-saved");
  const values = {};
  for (const row of document.querySelectorAll(".attribute")) {
    const name = row.dataset.attribute;
    const input = row.querySelector("input[type=text]");
    const clear = row.querySelector("input[type=checkbox]").checked;
    if (clear) values[name] = null;
    else if (input.value.trim() && input.value.trim() !== input.dataset.was) values[name] = input.value.trim();
  }
  if (!Object.keys(values).length) {
    status.textContent = "Nothing to change.";
    return;
  }
  status.textContent = "Saving…";
  try {
    showAttributes(await api(base + "/attributes", { method: "PUT", body: { values } }));
    status.textContent = "Saved. Your next offers use these values.";
  } catch (error) {
    status.textContent = describe(error);
  }
}

function showControls(body) {
  const list = document.getElementById("controls");
  if (!body.controls.length) {
    list.replaceChildren(el("li", {}, "Nothing so far. \"Not relevant\" and \"See less like this\" on your offers, and \"Don't use this purchase\" in an explanation, are listed here."));
    return;
  }
  list.replaceChildren(...body.controls.map((c) => {
    const undo = el("button", { type: "button", "aria-label": `Undo: ${c.text}` }, "Undo");
    undo.addEventListener("click", async () => {
      const status = document.getElementById("controls-status");
      try {
        showControls(await api(c.undo.href, { method: "DELETE" }));
        status.textContent = "Undone.";
      } catch (error) {
        status.textContent = describe(error);
      }
    });
    return el("li", { "data-kind": c.kind }, c.text, " ", undo);
  }));
}

const STATUS = { open: "Open", in_progress: "A person is on it", resolved: "Resolved",
                 closed: "Closed" };

function showCases(body) {
  const list = document.getElementById("cases");
  list.replaceChildren(...(body.cases.length ? body.cases.map((c) => el("li", { "data-case": c.case_id },
    el("strong", {}, STATUS[c.status] || c.status), ` (opened ${when(c.opened_at)}): `,
    c.text || (c.kind === "report" ? "A report on an offer" : "A request to talk to a person"),
    ` Case id ${c.case_id}.`)) : [el("li", {}, "No cases.")]));
}

async function contact(event) {
  event.preventDefault();
  const status = document.getElementById("contact-status");
  const text = document.getElementById("contact-text");
  try {
    showCases(await api(base + "/cases", { method: "POST", body: { text: text.value } }));
    status.textContent = "Sent. A person will take it up; you can follow it below.";
    text.value = "";
  } catch (error) {
    status.textContent = describe(error);
  }
}

async function download() {
  const link = document.getElementById("download-link");
  try {
    const data = await api(base + "/data-export");
    link.href = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
    link.hidden = false;
    link.focus();
  } catch (error) {
    document.getElementById("erase-status").textContent = describe(error);
  }
}

async function erase() {
  const status = document.getElementById("erase-status");
  status.textContent = "Erasing…";
  try {
    const receipt = await api(base, { method: "DELETE" });
    document.getElementById("erase-confirm").hidden = true;
    status.replaceChildren(receipt.text, " Receipt: ", el("strong", { class: "receipt" }, String(receipt.receipt_id)),
      ". This page can no longer show your data.");
  } catch (error) {
    status.textContent = describe(error);
  }
}

function show(consent) {
  version = consent.version;
  applied(consent);
  const categories = document.getElementById("categories");
  categories.replaceChildren(categories.querySelector("legend"), ...consent.categories.map((c) => {
    const id = `allow-${c.category}`;
    const input = el("input", {
      type: "checkbox", role: "switch", id, name: "allowed", value: c.category,
      checked: c.allowed, "aria-describedby": `${id}-purpose`,
    });
    const note = c.allowed && !c.used ? " Not used at the level chosen below." : "";
    return el("div", { class: "switch" }, input,
      el("label", { for: id }, c.name),
      el("p", { id: `${id}-purpose`, class: "purpose" }, c.purpose + note));
  }));
  const fieldset = document.getElementById("levels");
  fieldset.replaceChildren(fieldset.querySelector("legend"), ...consent.levels.map((level) => {
    const id = `level-${level}`;
    return el("div", { class: "choice" },
      el("input", {
        type: "radio", id, name: "level", value: level, checked: level === consent.level,
        "aria-describedby": `${id}-text`,
      }),
      el("label", { for: id }, levelNames[level] || level),
      el("p", { id: `${id}-text`, class: "purpose" }, levels[level] || ""));
  }));
}

async function save(event) {
  event.preventDefault();
  const data = new FormData(form);
  const body = { allowed: data.getAll("allowed"), level: data.get("level"), expected_version: version };
  saved.textContent = "Saving…";
  try {
    show(await api(path, { method: "PUT", body }));
    saved.replaceChildren("Saved. Your offers use these choices from now on. ",
      el("a", { href: "/pages/offers" }, "See your offers"));
  } catch (error) {
    if (error.status === 409) {
      show(await api(path));
      saved.textContent = "Your settings were changed elsewhere meanwhile. This page now shows " +
        "them; make your choice again and save.";
    } else {
      saved.textContent = describe(error);
    }
  }
}

start();
