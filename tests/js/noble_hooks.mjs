// Module resolution hooks for the node tests: the same mapping as the page's import map
// (breach_notify/web/static/vendor/noble/VENDOR.md): @noble/{curves,hashes}/X -> vendored files.
const VENDOR = new URL('../../breach_notify/web/static/vendor/noble/', import.meta.url);

export async function resolve(specifier, context, next) {
  const m = /^@noble\/(curves|hashes)\/(.+)$/.exec(specifier);
  if (m) return next(new URL(`${m[1]}/${m[2]}`, VENDOR).href, context);
  return next(specifier, context);
}
