// The /check page (a module; the CSP allows no inline script but the page's import map). The
// number is normalised here (./normalize.js), blinded by ../selfcheck.js, and only
// {bucket, blinded, pow} goes to the server. The answer is verified against the published key
// before anything is shown: a failed proof says "could not be verified", never "not found".
import "../vendor/altcha/altcha.min.js";
import "../vendor/altcha/i18n/fr-fr.js";
import { normalize } from "./normalize.js";
import { selfCheck } from "../selfcheck.js";

const worker = new URL("../vendor/altcha/workers/pbkdf2.js", import.meta.url);
globalThis.$altcha.algorithms.set("PBKDF2/SHA-256", () => new Worker(worker));

const form = document.getElementById("check-form");
const fields = document.getElementById("check-fields");
const country = document.getElementById("country");
const number = document.getElementById("number");
const status = document.getElementById("check-status");
const errors = document.getElementById("check-errors");
const widget = form.querySelector("altcha-widget");
const base = location.origin + (form.dataset.api || "");
const panels = ["found", "none", "unverified", "failed"].map((id) =>
  document.getElementById(`result-${id}`),
);
const advice = document.getElementById("advice");

const text = (key) => document.querySelector(`#check-texts [data-text="${key}"]`).textContent;
const kindLabel = (kind) => {
  const el = document.querySelector(`#check-texts [data-kind="${CSS.escape(kind)}"]`);
  return el ? el.textContent : kind;
};

class Refused extends Error {}

/** The proof-of-work payload (solving it first if needed); "" when the page has no widget. */
function proofOfWork() {
  if (!widget) return Promise.resolve("");
  const ready = form.querySelector('input[name="altcha"]');
  if (ready && ready.value && widget.getState() === "verified") return Promise.resolve(ready.value);
  return new Promise((resolve, reject) => {
    const done = (event) => {
      const state = event.detail && event.detail.state;
      if (state === "verified") {
        widget.removeEventListener("statechange", done);
        resolve(event.detail.payload || form.querySelector('input[name="altcha"]').value);
      } else if (state === "error" || state === "expired") {
        widget.removeEventListener("statechange", done);
        reject(new Refused("pow"));
      }
    };
    widget.addEventListener("statechange", done);
    if (widget.getState() !== "verifying") widget.verify();
  });
}

function clearErrors() {
  errors.replaceChildren();
  for (const name of ["country", "number"]) {
    const field = document.getElementById(`${name}-field`);
    const input = document.getElementById(name);
    const message = document.getElementById(`${name}-error`);
    field.classList.remove("has-error");
    message.hidden = true;
    message.replaceChildren();
    input.removeAttribute("aria-invalid");
    if (name === "number") input.setAttribute("aria-describedby", "number-hint");
    else input.removeAttribute("aria-describedby");
  }
}

/** The error summary (focused, linking to the field) and the field's own message. */
function showError(name, message) {
  const field = document.getElementById(`${name}-field`);
  const input = document.getElementById(name);
  const line = document.getElementById(`${name}-error`);
  const prefix = document.createElement("span");
  prefix.className = "visually-hidden";
  prefix.textContent = text("error_prefix");
  line.replaceChildren(prefix, ` ${message}`);
  line.hidden = false;
  field.classList.add("has-error");
  input.setAttribute("aria-invalid", "true");
  const described = [name === "number" ? "number-hint" : "", `${name}-error`].filter(Boolean);
  input.setAttribute("aria-describedby", described.join(" "));

  const summary = document.createElement("div");
  summary.className = "error-summary";
  summary.id = "error-summary";
  summary.setAttribute("role", "alert");
  summary.setAttribute("aria-labelledby", "error-summary-title");
  summary.tabIndex = -1;
  const title = document.createElement("h2");
  title.id = "error-summary-title";
  title.textContent = text("error_title");
  const list = document.createElement("ul");
  const item = document.createElement("li");
  const link = document.createElement("a");
  link.href = `#${name}`;
  link.textContent = message;
  item.append(link);
  list.append(item);
  summary.append(title, list);
  errors.replaceChildren(summary);
  summary.focus();
}

function hideResults() {
  for (const panel of panels) panel.hidden = true;
  advice.hidden = true;
}

function show(id, withAdvice) {
  const panel = document.getElementById(`result-${id}`);
  panel.hidden = false;
  advice.hidden = !withAdvice;
  panel.querySelector("h2").focus();
}

function showFound(breaches) {
  const title = document.getElementById("found-title");
  title.textContent =
    breaches.length === 1 ? title.dataset.one : title.dataset.many.replace("{n}", breaches.length);
  const list = document.getElementById("found-list");
  const template = document.getElementById("breach-item");
  list.replaceChildren();
  for (const breach of breaches) {
    const item = template.content.cloneNode(true);
    item.querySelector(".breach-title").textContent = breach.title;
    const kinds = breach.kinds.map(kindLabel);
    item.querySelector(".breach-kinds").textContent = kinds.length
      ? `${text("exposed")} ${kinds.join(", ")}`
      : text("number_only");
    list.append(item);
  }
  show("found", true);
}

function showFailed(reason) {
  const title = document.getElementById("failed-title");
  const body = document.getElementById("failed-body");
  title.textContent = reason === "busy" ? title.dataset.busy : title.dataset.failed;
  body.textContent = body.dataset[reason] || body.dataset.failed;
  show("failed", false);
}

async function fetchJson(url, init = {}) {
  const response = await fetch(url, { ...init, cache: "no-store", credentials: "same-origin" });
  if (response.status === 429) throw new Refused("busy");
  if (response.status === 403) throw new Refused("pow");
  return response;
}

let running = false;
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (running) return;
  clearErrors();
  hideResults();
  const normalised = normalize(number.value, country.value);
  if (normalised.error) {
    const onCountry = normalised.error === "country";
    showError(onCountry ? "country" : "number", text(normalised.error));
    return;
  }
  running = true;
  fields.setAttribute("aria-busy", "true");
  status.textContent = text("working");
  try {
    const pow = await proofOfWork();
    const result = await selfCheck(normalised.e164, base, { pow, fetch: fetchJson });
    if (!result.verified) show("unverified", false);
    else if (result.found) showFound(result.breaches);
    else show("none", true);
  } catch (error) {
    showFailed(error instanceof Refused ? error.message : "failed");
  } finally {
    status.textContent = "";
    fields.removeAttribute("aria-busy");
    if (widget) widget.reset(); // a proof of work is accepted once: the next check solves anew
    running = false;
  }
});

fields.disabled = false; // the form works only with this script: nothing is sent without it
