/**
 * The private self-check, client side (an ES module, no DOM): RFC 9497 VOPRF over
 * ristretto255-SHA512 with the vendored, audited @noble/curves (`ristretto255_oprf`).
 *
 * The number never leaves the browser. For an E.164 number `x` the client
 *   1. computes its public bucket: the first `config.bucket_bits` bits of
 *      SHA-256("breach-notify/self-check/bucket/v1\0" || x);
 *   2. blinds `x` with a random scalar;
 *   3. sends exactly {bucket, blinded, pow} to POST /check/api;
 *   4. verifies each DLEQ proof against the public key published by GET /check/config,
 *      unblinds, finalises, and looks its 16-byte tag up in the returned (padded) tag lists.
 *
 * Binary values on the wire are standard base64. Normalising the typed number to E.164 is the
 * page's job (with the same libphonenumber metadata as the server), not this module's.
 *
 * Imports are bare specifiers: the page maps them with an import map (see vendor/noble/VENDOR.md).
 */
import { ristretto255_oprf } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, utf8ToBytes } from '@noble/hashes/utils.js';

const voprf = ristretto255_oprf.voprf;

/** Bytes of a stored tag: the first 16 bytes of the VOPRF output. */
export const TAG_BYTES = 16;
/** Domain of the public bucket hash (same bytes as the server's BUCKET_DOMAIN). */
export const BUCKET_DOMAIN = utf8ToBytes('breach-notify/self-check/bucket/v1\u0000');

/** Standard base64 of bytes. */
export function toBase64(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

/** Bytes of standard base64 (throws on anything else). */
export function fromBase64(text) {
  if (typeof text !== 'string') throw new TypeError('base64 text expected');
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

/** The public bucket of an E.164 string: the first `bits` (0-32) bits of its bucket hash. */
export function bucketOf(e164, bits) {
  if (!Number.isInteger(bits) || bits < 0 || bits > 32) throw new RangeError('bits: 0-32');
  const d = sha256(concatBytes(BUCKET_DOMAIN, utf8ToBytes(e164)));
  const top = ((d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3]) >>> 0;
  return bits === 0 ? 0 : Math.floor(top / 2 ** (32 - bits));
}

/**
 * Blind `e164` and build the request. Returns `{request, state}`: send `request` (exactly
 * {bucket, blinded, pow}); keep `state` (it holds the number and the blind) for `settle`.
 * `rng(n)` (optional) returns n random bytes; tests use it to replay the RFC's blinds.
 */
export function prepare(e164, config, pow = '', rng = undefined) {
  const input = utf8ToBytes(e164);
  const { blind, blinded } = rng === undefined ? voprf.blind(input) : voprf.blind(input, rng);
  const request = { bucket: bucketOf(e164, config.bucket_bits), blinded: toBase64(blinded), pow };
  return { request, state: { input, blind, blinded } };
}

/** Whether `tag` is one of the 16-byte tags concatenated in `blob` (sorted or not). */
function holds(blob, tag) {
  if (blob.length % TAG_BYTES !== 0) throw new Error('tag list length');
  outer: for (let i = 0; i < blob.length; i += TAG_BYTES) {
    for (let j = 0; j < TAG_BYTES; j++) if (blob[i + j] !== tag[j]) continue outer;
    return true;
  }
  return false;
}

/**
 * Verify the server's answer and look the number up. Returns
 * `{verified, found, breaches: [{id, title, kinds}]}`; `verified` is false (and nothing is
 * found) when a proof does not hold for the published key, or the answer is malformed.
 */
export function settle(state, config, answer) {
  const failed = { verified: false, found: false, breaches: [] };
  try {
    const keys = new Map(config.keys.map((k) => [k.id, fromBase64(k.public_key)]));
    const tags = new Map();
    for (const ev of answer.evaluations) {
      const publicKey = keys.get(ev.key_id);
      if (publicKey === undefined) return failed;
      const output = voprf.finalize(
        state.input,
        state.blind,
        fromBase64(ev.evaluated),
        state.blinded,
        publicKey,
        fromBase64(ev.proof),
      );
      tags.set(ev.key_id, output.slice(0, TAG_BYTES));
    }
    const known = new Map(config.breaches.map((b) => [b.id, b]));
    const found = [];
    for (const b of answer.breaches) {
      const meta = known.get(b.id);
      const tag = tags.get(b.key_id);
      if (meta === undefined || tag === undefined || meta.key_id !== b.key_id) return failed;
      if (holds(fromBase64(b.tags), tag)) found.push({ id: meta.id, title: meta.title, kinds: meta.kinds });
    }
    return { verified: true, found: found.length > 0, breaches: found };
  } catch {
    return failed;
  }
}

/**
 * The whole check against `baseUrl` (no trailing slash needed). `options.fetch` replaces the
 * global fetch, `options.pow` is the proof-of-work solution, `options.rng` as in `prepare`.
 */
export async function selfCheck(e164, baseUrl, options = {}) {
  const get = options.fetch ?? globalThis.fetch;
  const base = baseUrl.replace(/\/+$/, '');
  const config = await (await get(`${base}/check/config`)).json();
  const { request, state } = prepare(e164, config, options.pow ?? '', options.rng);
  const res = await get(`${base}/check/api`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(request),
  });
  if (!res.ok) throw new Error(`self-check refused (${res.status})`);
  return settle(state, config, await res.json());
}
