// The forms' only script (a module; the CSP allows no inline script). It loads the vendored
// ALTCHA widget, gives it the PBKDF2 worker from this server, waits for the proof of work
// before a form is sent, and moves focus to the error summary when there is one. Without
// JavaScript the forms work as plain HTML (under stricter limits on the server).
import "../vendor/altcha/altcha.min.js";
import "../vendor/altcha/i18n/fr-fr.js";

const worker = new URL("../vendor/altcha/workers/pbkdf2.js", import.meta.url);
globalThis.$altcha.algorithms.set("PBKDF2/SHA-256", () => new Worker(worker));

for (const form of document.querySelectorAll("form[data-pow]")) {
  const widget = form.querySelector("altcha-widget");
  if (!widget) continue;
  let waiting = false;
  form.addEventListener("submit", (event) => {
    const payload = form.querySelector('input[name="altcha"]');
    if (payload && payload.value) return;
    event.preventDefault();
    if (waiting) return;
    waiting = true;
    const submitter = event.submitter;
    const done = (ev) => {
      const state = ev.detail && ev.detail.state;
      if (state === "verified") {
        widget.removeEventListener("statechange", done);
        waiting = false;
        form.requestSubmit(submitter);
      } else if (state === "error" || state === "expired") {
        widget.removeEventListener("statechange", done);
        waiting = false;
      }
    };
    widget.addEventListener("statechange", done);
    if (typeof widget.getState !== "function" || widget.getState() !== "verifying") {
      widget.verify();
    }
  });
}

const summary = document.getElementById("error-summary");
if (summary) summary.focus();
