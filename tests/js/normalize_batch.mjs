// `node tests/js/normalize_batch.mjs CASES.json`: the /check page's own normaliser
// (breach_notify/web/static/js/normalize.js, with the vendored libphonenumber-js) applied to
// every [raw, country] pair of the file; prints one JSON array of {e164} | {error}, in order.
import { readFileSync } from 'node:fs';
import { normalize } from '../../breach_notify/web/static/js/normalize.js';

const cases = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const out = cases.map(([raw, country]) => normalize(raw, country ?? ''));
process.stdout.write(JSON.stringify(out));
