// Builds bot.js (beside this script) into a component against the WIT package, world
// `plugin`:
//   node build.mjs [OUT.wasm] [WIT_DIR]     (defaults: js-bot.wasm here, ../../wit)
// It calls componentize() from @bytecodealliance/componentize-js directly: `jco componentize`
// of jco 1.35 fails here with "failed to get path metadata".
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, 'js-bot.wasm'));
const wit = resolve(process.argv[3] ?? join(here, '..', '..', 'wit'));
const { component } = await componentize({
  sourcePath: join(here, 'bot.js'),
  witPath: wit,
  worldName: 'plugin',
  // The bot needs neither fetch nor an HTTP server of its own.
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile(out, component);
console.log(`wrote ${out} (${component.length} bytes)`);
