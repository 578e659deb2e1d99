// The policy in plain words, from the public GET /v1/policy (no token needed).
import { api, done, el, showError, when } from "./common.js";

function capitalized(word) {
  return word[0].toUpperCase() + word.slice(1);
}

async function start() {
  let policy;
  try {
    policy = await api("/v1/policy", { auth: false });
  } catch (error) {
    showError(error);
    return;
  }
  done();
  const section = (title, ...content) => el("section", {}, el("h2", {}, title), ...content);
  const parts = [
    el("p", { class: "note" }, policy.disclosure),
    section("The data it may use, and what for",
      el("dl", {}, ...policy.categories.flatMap((c) => [el("dt", {}, c.name), el("dd", {}, c.purpose)]))),
    section("How personal your offers can be",
      el("dl", {}, ...policy.levels.flatMap((l) => [el("dt", {}, capitalized(l.level)), el("dd", {}, l.text)]))),
    section("Your choices",
      el("p", {}, policy.opt_out.text, " ", el("a", { href: "/pages/privacy" }, "Privacy settings")),
      el("p", {}, policy.erasure.text),
      el("p", {}, 'To reach a person, press "Talk to a person" on any offer: you get a case id to follow it up.'),
      // a deployment's own contact text, when it set one (the default names the API's feedback kind)
      policy.contact.text.includes("talk_to_person") ? null : el("p", {}, policy.contact.text)),
    section("How long records are kept", el("p", {}, policy.retention.text)),
  ];
  if (policy.main_parameters) {
    const percent = (p) => (p.importance === null ? "applied after scoring" : `${Math.round(p.importance * 100)}%`);
    parts.push(section("What decides your offers, and how much",
      el("p", {}, "Offers are ranked by how far each stands above your typical offer. How much each thing counts in the model in use, on average:"),
      el("table", { class: "main-parameters" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "What"), el("th", { scope: "col" }, "Counts for"), el("th", { scope: "col" }, "How it is used"))),
        el("tbody", {}, ...policy.main_parameters.map((p) => el("tr", { "data-parameter": p.parameter },
          el("th", { scope: "row" }, p.name), el("td", {}, percent(p)), el("td", {}, p.text)))))));
  }
  const card = policy.model_card;
  if (card) {
    parts.push(section("The model in use",
      el("p", {}, `Version ${card.version}, trained ${when(card.trained_at)}.`),
      el("p", {}, card.does_not_use.text)));
  }
  const box = document.getElementById("policy");
  box.append(...parts);
  box.hidden = false;
}

start();
