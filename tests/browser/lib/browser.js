// Headless Chromium for the browser tests: each user gets a persistent context on a fresh
// profile directory (Debian's chromium, driven by playwright-core; never a downloaded browser),
// and every page's CSP violations, uncaught errors and requests for missing files are collected
// for the tests to assert on. `close()` closes every context and removes every profile.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** How long a test waits for anything the page should show. */
export const WAIT = { timeout: 20000 };

export class Browsers {
  constructor() {
    this.contexts = [];
    this.profiles = [];
    /** Console errors about the Content-Security-Policy, from every page. */
    this.cspViolations = [];
    /** Uncaught errors of every page. */
    this.pageErrors = [];
    /** Files a page asked for and the agent does not have (a console error each time). */
    this.missingFiles = [];
  }

  /** One user's browser at `url`: its context and page. */
  async open(url, viewport = { width: 1200, height: 800 }) {
    const profile = mkdtempSync(join(tmpdir(), 'dyschat-chromium-'));
    this.profiles.push(profile);
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      viewport,
    });
    this.contexts.push(context);
    const page = context.pages()[0] || (await context.newPage());
    page.on('pageerror', (e) => {
      this.pageErrors.push(e.message);
      console.error(`[page error] ${e.message}`);
    });
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content.Security.Policy/i.test(m.text())) this.cspViolations.push(m.text());
    });
    page.on('response', (r) => {
      if (r.status() === 404 && r.request().resourceType() !== 'fetch') this.missingFiles.push(r.url());
    });
    await page.goto(url);
    return { context, page };
  }

  async close() {
    for (const c of this.contexts) await c.close().catch(() => {});
    for (const p of this.profiles) rmSync(p, { recursive: true, force: true });
  }
}
