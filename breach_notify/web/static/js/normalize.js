// The /check page's number normaliser: what the server's `phonenumbers` does at ingest
// (parse with the chosen country, is_valid_number, E.164), with the vendored libphonenumber-js
// and its `max` metadata (see ../vendor/libphonenumber-js/VENDOR.md). The same file runs under
// node in tests/test_normalize_agreement.py, which holds it to the server's answers.
import "../vendor/libphonenumber-js/libphonenumber-max.js";

const lib = globalThis.libphonenumber;
const LETTER = /\p{L}/u;

/**
 * `{e164}` for a valid number, else `{error}`: "number" (nothing typed), "letters" (the page
 * takes digits only: libphonenumber-js does not read letters as digits as `phonenumbers` does),
 * "country" (a national number without a country), "invalid" (not a valid number).
 */
export function normalize(raw, country) {
  const text = String(raw ?? "").trim();
  if (!text) return { error: "number" };
  if (LETTER.test(text)) return { error: "letters" };
  const region = country ? String(country).toUpperCase() : undefined;
  if (!region && !/^[\s(]*[+＋]/u.test(text)) return { error: "country" };
  let parsed;
  try {
    parsed = lib.parsePhoneNumberWithError(text, region);
  } catch {
    return { error: "invalid" };
  }
  if (!parsed.isValid()) return { error: "invalid" };
  return { e164: parsed.number };
}
