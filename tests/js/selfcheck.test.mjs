// RFC 9497 ristretto255-SHA512 vectors (OPRF and VOPRF modes) through the vendored
// @noble/curves, and the self-check client (selfcheck.js) against them and against answers
// made by the Python server (fixture from tests/test_selfcheck_js.py, when given).
// Run: node --import ./tests/js/register.mjs --test tests/js/selfcheck.test.mjs
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { ristretto255_oprf } from '@noble/curves/ed25519.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';

import {
  bucketOf,
  fromBase64,
  prepare,
  settle,
  toBase64,
} from '../../breach_notify/web/static/selfcheck.js';

const VECTORS = JSON.parse(
  readFileSync(new URL('../vectors/rfc9497_ristretto255_sha512.json', import.meta.url), 'utf8'),
);
const MODE = Object.fromEntries(VECTORS.modes.map((m) => [m.name, m]));
const ORDER = 2n ** 252n + 27742317777372353535851937790883648493n;

/** An rng for noble's RandomScalar (48 bytes, mapped to 1 + n mod (order - 1)) giving `scalarHex`. */
function rngFor(scalarHex) {
  let s = 0n;
  const le = hexToBytes(scalarHex);
  for (let i = le.length - 1; i >= 0; i--) s = (s << 8n) | BigInt(le[i]);
  assert.ok(s > 0n && s < ORDER);
  return (n) => {
    const out = new Uint8Array(n);
    let v = s - 1n;
    for (let i = 0; i < n; i++, v >>= 8n) out[i] = Number(v & 0xffn);
    return out;
  };
}

test('the vector file names its source', () => {
  assert.match(VECTORS.source, /RFC 9497/);
  assert.deepEqual(VECTORS.modes.map((m) => m.vectors.length), [2, 3]);
});

test('OPRF mode vectors (DeriveKeyPair, Blind, BlindEvaluate, Finalize)', () => {
  const m = MODE.OPRF;
  const oprf = ristretto255_oprf.oprf;
  const keys = oprf.deriveKeyPair(hexToBytes(m.seed), hexToBytes(m.keyInfo));
  assert.equal(bytesToHex(keys.secretKey), m.skSm);
  for (const v of m.vectors) {
    const input = hexToBytes(v.input[0]);
    const { blind, blinded } = oprf.blind(input, rngFor(v.blind[0]));
    assert.equal(bytesToHex(blind), v.blind[0]);
    assert.equal(bytesToHex(blinded), v.blindedElement[0]);
    const evaluated = oprf.blindEvaluate(keys.secretKey, blinded);
    assert.equal(bytesToHex(evaluated), v.evaluationElement[0]);
    assert.equal(bytesToHex(oprf.finalize(input, blind, evaluated)), v.output[0]);
  }
});

test('VOPRF mode vectors, with proofs, batch sizes 1 and 2', () => {
  const m = MODE.VOPRF;
  const voprf = ristretto255_oprf.voprf;
  const keys = voprf.deriveKeyPair(hexToBytes(m.seed), hexToBytes(m.keyInfo));
  assert.equal(bytesToHex(keys.secretKey), m.skSm);
  assert.equal(bytesToHex(keys.publicKey), m.pkSm);
  for (const v of m.vectors) {
    const inputs = v.input.map(hexToBytes);
    const blinds = inputs.map((x, i) => voprf.blind(x, rngFor(v.blind[i])));
    assert.deepEqual(blinds.map((b) => bytesToHex(b.blinded)), v.blindedElement);
    const { evaluated, proof } = voprf.blindEvaluateBatch(
      keys.secretKey,
      keys.publicKey,
      blinds.map((b) => b.blinded),
      rngFor(v.proofRandomScalar),
    );
    assert.deepEqual(evaluated.map(bytesToHex), v.evaluationElement);
    assert.equal(bytesToHex(proof), v.proof);
    const items = inputs.map((input, i) => ({
      input,
      blind: blinds[i].blind,
      evaluated: evaluated[i],
      blinded: blinds[i].blinded,
    }));
    const outputs = voprf.finalizeBatch(items, keys.publicKey, proof);
    assert.deepEqual(outputs.map(bytesToHex), v.output);
  }
});

/** A config and an answer, as the server sends them, for the VOPRF vector's key. */
function vectorExchange(v, tagsOf) {
  const m = MODE.VOPRF;
  const config = {
    bucket_bits: 13,
    keys: [{ id: 'o1', public_key: toBase64(hexToBytes(m.pkSm)) }],
    breaches: [
      { id: 'fb-2021', title: 'Facebook 2021', kinds: ['name'], key_id: 'o1', bucket_bits: 13 },
      { id: 'other', title: 'Other', kinds: [], key_id: 'o1', bucket_bits: 0 },
    ],
  };
  const answer = {
    evaluations: [
      { key_id: 'o1', evaluated: toBase64(hexToBytes(v.evaluationElement[0])), proof: toBase64(hexToBytes(v.proof)) },
    ],
    breaches: config.breaches.map((b) => ({ id: b.id, key_id: 'o1', tags: toBase64(tagsOf(b.id)) })),
  };
  return { config, answer };
}

test('selfcheck.js: blind, verify, unblind, finalize and find the tag (VOPRF vectors)', () => {
  for (const v of MODE.VOPRF.vectors.filter((x) => x.batch === 1)) {
    const x = new TextDecoder('latin1').decode(hexToBytes(v.input[0]));
    const tag = hexToBytes(v.output[0]).slice(0, 16);
    const padding = new Uint8Array(16 * 7).fill(0x42);
    const { config, answer } = vectorExchange(v, (id) =>
      id === 'fb-2021' ? new Uint8Array([...padding, ...tag]) : padding,
    );
    const { request, state } = prepare(x, config, 'pow-solution', rngFor(v.blind[0]));
    assert.deepEqual(Object.keys(request).sort(), ['blinded', 'bucket', 'pow']);
    assert.equal(bytesToHex(fromBase64(request.blinded)), v.blindedElement[0]);
    assert.equal(request.bucket, bucketOf(x, 13));
    const result = settle(state, config, answer);
    assert.deepEqual(result, {
      verified: true,
      found: true,
      breaches: [{ id: 'fb-2021', title: 'Facebook 2021', kinds: ['name'] }],
    });
    const absent = vectorExchange(v, () => padding);
    assert.deepEqual(settle(state, absent.config, absent.answer), { verified: true, found: false, breaches: [] });
  }
});

test('selfcheck.js: a wrong proof or another key is not verified', () => {
  const v = MODE.VOPRF.vectors[0];
  const tag = hexToBytes(v.output[0]).slice(0, 16);
  const { config, answer } = vectorExchange(v, () => tag);
  const { state } = prepare('\u0000', config, '', rngFor(v.blind[0]));
  assert.equal(settle(state, config, answer).verified, true);
  const badProof = hexToBytes(v.proof);
  badProof[0] ^= 1;
  const tampered = structuredClone(answer);
  tampered.evaluations[0].proof = toBase64(badProof);
  assert.deepEqual(settle(state, config, tampered), { verified: false, found: false, breaches: [] });
  const otherKey = structuredClone(config);
  otherKey.keys[0].public_key = toBase64(ristretto255_oprf.voprf.generateKeyPair().publicKey);
  assert.deepEqual(settle(state, otherKey, answer), { verified: false, found: false, breaches: [] });
});

test('bucketOf: the leading bits of SHA-256(domain || x)', () => {
  assert.equal(bucketOf('+447700900123', 0), 0);
  assert.equal(bucketOf('+447700900123', 13), bucketOf('+447700900123', 32) >>> 19);
});

const fixture = process.env.SELFCHECK_FIXTURE;
test('answers from the Python server settle as the Python client does', { skip: !fixture }, () => {
  const data = JSON.parse(readFileSync(fixture, 'utf8'));
  for (const c of data.cases) {
    const { request, state } = prepare(c.e164, data.config, '', rngFor(c.blind));
    assert.equal(request.blinded, c.blinded);
    assert.equal(request.bucket, c.bucket);
    assert.deepEqual(settle(state, data.config, c.answer), c.expect);
  }
});
