// One mesh and one set of browsers per test file: started before the file's tests, stopped
// after them, so that every file sets itself up the same way.

import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Browsers } from './browser.js';
import { Mesh } from './mesh.js';

/** Where the tests write their screenshots (git-ignored). */
export const SHOTS = join(dirname(fileURLToPath(import.meta.url)), '..', 'screenshots');

/**
 * Registers the file's set-up and tear-down; `options` go to {@link Mesh}. The returned object's
 * `mesh` is there once the first test runs.
 */
export function suite(options = {}) {
  const env = { mesh: undefined, browsers: new Browsers() };
  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    env.mesh = await new Mesh(options).start();
  });
  after(async () => {
    await env.browsers.close();
    if (env.mesh) await env.mesh.stop();
  });
  return env;
}
