// Shared by the customer pages: the customer token, calls to the JSON API, messages, and a small
// DOM builder (text is always set as text, never parsed as HTML).

const TOKEN = "trustrec.token";
const CUSTOMER = "trustrec.customer";

export function pageData() {
  return JSON.parse(document.getElementById("page-data").textContent);
}

// The shop links to /pages/offers#token=... (optionally &customer=...). A fragment is never sent to
// a server, so the token stays out of logs and Referer headers; keep it for this tab only and take
// it out of the address bar and the history.
function takeFragment() {
  if (!location.hash) return;
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  if (token) {
    sessionStorage.setItem(TOKEN, token);
    const customer = params.get("customer");
    if (customer) sessionStorage.setItem(CUSTOMER, customer);
    else sessionStorage.removeItem(CUSTOMER);
  }
  history.replaceState(null, "", location.pathname + location.search);
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function api(path, { method = "GET", body, auth = true } = {}) {
  const headers = { Accept: "application/json" };
  if (auth) headers.Authorization = `Bearer ${sessionStorage.getItem(TOKEN) || ""}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, credentials: "omit", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, null);
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// The customer these pages are for: the token's own, unless the link named one (the API then
// decides whether this token may see it).
export async function customer() {
  takeFragment();
  if (!sessionStorage.getItem(TOKEN)) throw new ApiError(401, null);
  const me = await api("/pages/session");
  return sessionStorage.getItem(CUSTOMER) || me.customer_id;
}

export function customerPath(id, rest = "") {
  return `/v1/customers/${encodeURIComponent(id)}${rest}`;
}

const MESSAGES = {
  0: "We could not reach the service. Check your connection and try again.",
  401: "This link has expired or is not valid. Please open this page again from the shop.",
  403: "This page cannot show another customer's data. Please open it again from your own " +
       "account in the shop.",
  503: "This is not available right now. Please try again in a moment.",
};

export function describe(error) {
  if (error instanceof ApiError) {
    return MESSAGES[error.status] || error.message;
  }
  console.error(error);
  return "Something went wrong on this page. Please try again.";
}

// A page-wide problem: shown in the alert box, the loading note removed.
export function showError(error) {
  const status = document.getElementById("status");
  status.textContent = describe(error);
  status.hidden = false;
  done();
}

export function done() {
  document.getElementById("loading")?.remove();
}

// el("p", {class: "x"}, "text", child, ...): attributes as given, children as text or nodes.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

// One date format on every page, the one the API's own sentences use: "28 November 2026 10:05 UTC".
export function when(iso) {
  if (!iso) return "never";
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-GB", {
    timeZone: "UTC", day: "2-digit", month: "long", year: "numeric", hour: "2-digit",
    minute: "2-digit", hourCycle: "h23",
  }).formatToParts(new Date(iso)).map((p) => [p.type, p.value]));
  return `${parts.day} ${parts.month} ${parts.year} ${parts.hour}:${parts.minute} UTC`;
}
