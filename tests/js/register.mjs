// `node --import ./tests/js/register.mjs …`: resolve @noble/* to the vendored copies.
import { register } from 'node:module';

register('./noble_hooks.mjs', import.meta.url);
