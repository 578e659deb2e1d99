// Privacy settings: a switch per data category, the personalization level, saved through the
// consent API (PUT), which applies it from the very next offers request.
import { api, customer, customerPath, describe, done, el, pageData, showError } from "./common.js";

const { levels } = pageData();
const form = document.getElementById("consent-form");
const saved = document.getElementById("saved");
let path;
let version;

async function start() {
  try {
    path = customerPath(await customer(), "/consent");
    show(await api(path));
  } catch (error) {
    showError(error);
    return;
  }
  done();
  form.hidden = false;
  form.addEventListener("submit", save);
}

function show(consent) {
  version = consent.version;
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
      el("label", { for: id }, level[0].toUpperCase() + level.slice(1)),
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
