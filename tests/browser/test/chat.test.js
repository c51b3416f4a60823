// The web client in headless Chromium against a real mesh: two users chat in a room and see the
// same messages in the same order; a reload keeps history; one user's network is dropped while
// the other sends, and when it returns nothing is lost, duplicated or out of order and the sends
// made while offline are confirmed. "Log out" revokes the token on the server: its sockets close,
// it is refused, the sign-in form shows; a logout made elsewhere ends the page's session too.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';

import { WAIT } from '../lib/browser.js';
import { register } from '../lib/page.js';
import { SHOTS, suite } from '../lib/suite.js';

const env = suite();

/** One user's browser on the mesh's agent. */
const openUser = () => env.browsers.open(env.mesh.url, { width: 1100, height: 720 });

/** The open conversation as shown: seq, body and whether still pending, in DOM order. */
const shown = (page) =>
  page.$$eval('#messages li', (lis) =>
    lis.map((li) => ({
      seq: li.dataset.seq ? Number(li.dataset.seq) : null,
      body: li.querySelector('.body').textContent,
      pending: li.classList.contains('pending') || li.classList.contains('failed'),
    })),
  );

async function send(page, text) {
  await page.fill('#composer-input', text);
  await page.press('#composer-input', 'Enter');
}

/** Waits until the page shows every body in `bodies`, confirmed. */
async function waitForBodies(page, bodies) {
  await page.waitForFunction(
    (want) => {
      const lis = [...document.querySelectorAll('#messages li[data-seq]')];
      const have = new Set(lis.map((li) => li.querySelector('.body').textContent));
      return want.every((b) => have.has(b)) && !document.querySelector('#messages li.pending');
    },
    bodies,
    WAIT,
  );
}

function assertClean(list, label) {
  const seqs = list.map((m) => m.seq);
  assert.ok(seqs.every((s) => Number.isInteger(s)), `${label}: every message confirmed: ${JSON.stringify(list)}`);
  for (let i = 1; i < seqs.length; i += 1) {
    assert.ok(seqs[i] > seqs[i - 1], `${label}: strictly increasing seq at ${i}: ${seqs}`);
  }
  const bodies = list.map((m) => m.body);
  assert.equal(new Set(bodies).size, bodies.length, `${label}: no duplicate: ${bodies}`);
}

test('the agent serves the client and its modules with content types', async () => {
  const index = await fetch(`${env.mesh.url}/`);
  assert.equal(index.status, 200);
  assert.match(index.headers.get('content-type'), /^text\/html/);
  assert.match(index.headers.get('content-security-policy'), /default-src 'self'/);
  const js = await fetch(`${env.mesh.url}/assets/main.js`);
  assert.match(js.headers.get('content-type'), /^text\/javascript/);
  assert.equal(js.headers.get('cache-control'), 'no-cache');
  const again = await fetch(`${env.mesh.url}/assets/main.js`, { headers: { 'If-None-Match': js.headers.get('etag') } });
  assert.equal(again.status, 304);
  const missing = await fetch(`${env.mesh.url}/assets/nope.js`);
  assert.equal(missing.status, 404);
});

test('/docs lists every operation of /openapi.json and can call one', async () => {
  const doc = await (await fetch(`${env.mesh.url}/openapi.json`)).json();
  const operations = Object.values(doc.paths).reduce((n, item) => n + Object.keys(item).length, 0);
  const { page } = await openUser();
  await page.goto(`${env.mesh.url}/docs`);
  await page.waitForFunction((n) => document.querySelectorAll('details.op').length === n, operations, WAIT);
  const health = page.locator('details.op', { has: page.locator('code', { hasText: /^\/healthz$/ }) });
  await health.locator('summary').click();
  await health.getByRole('button', { name: 'Send request' }).click();
  await health.locator('pre[aria-live]').getByText(/^200 /).waitFor(WAIT);
  await page.screenshot({ path: join(SHOTS, '0-docs.png') });
});

test('two users chat, reload keeps history, a dropped network loses nothing', async (t) => {
  const suffix = Date.now().toString(36).slice(-6);
  const alice = await openUser();
  const bob = await openUser();
  try {
    await register(alice.page, `alice_${suffix}`, 'correct horse battery');
    await register(bob.page, `bob_${suffix}`, 'correct horse battery');

    // Alice creates a room; Bob finds it in the list and joins.
    await alice.page.fill('#create-name', `Lobby ${suffix}`);
    await alice.page.fill('#create-topic', 'Browser test room');
    await alice.page.click('#create-form button[type="submit"]');
    await alice.page.waitForFunction((n) => document.getElementById('room-title').textContent === n, `Lobby ${suffix}`, WAIT);
    const roomId = await alice.page.evaluate(() => window.dyschat.current);
    await bob.page.click('#refresh-rooms');
    await bob.page.click(`[data-join="${roomId}"]`, WAIT);
    await bob.page.waitForFunction((n) => document.getElementById('room-title').textContent === n, `Lobby ${suffix}`, WAIT);

    // Interleaved conversation.
    const first = [];
    for (let i = 0; i < 6; i += 1) {
      const who = i % 2 === 0 ? alice : bob;
      const text = `${i % 2 === 0 ? 'alice' : 'bob'} says ${i}`;
      first.push(text);
      await send(who.page, text);
      await waitForBodies(who.page, [text]);
    }
    await waitForBodies(alice.page, first);
    await waitForBodies(bob.page, first);
    const a1 = await shown(alice.page);
    const b1 = await shown(bob.page);
    assertClean(a1, 'alice');
    assertClean(b1, 'bob');
    assert.deepEqual(a1, b1, 'both see the same conversation in the same order');
    assert.deepEqual(a1.map((m) => m.body), first);

    // Members and presence; typing indicator.
    await alice.page.waitForSelector(`#member-list li[data-online="true"]:has-text("bob_${suffix}")`, WAIT);
    await bob.page.type('#composer-input', 'typing…');
    await alice.page.waitForFunction(() => /is typing/.test(document.getElementById('typing').textContent), null, WAIT);
    await bob.page.fill('#composer-input', '');
    await alice.page.screenshot({ path: join(SHOTS, '1-alice-chat.png') });
    await bob.page.screenshot({ path: join(SHOTS, '1-bob-chat.png') });

    await t.test('a reload keeps the session and the history', async () => {
      await alice.page.reload();
      await alice.page.waitForSelector('#conn[data-state="up"]', WAIT);
      await waitForBodies(alice.page, first);
      const after = await shown(alice.page);
      assertClean(after, 'alice after reload');
      assert.deepEqual(after.map((m) => m.body), first);
    });

    await t.test('network dropped for bob while alice sends: nothing lost', async () => {
      await bob.context.setOffline(true);
      await bob.page.waitForSelector('#conn[data-state="down"]', WAIT);
      const offline = [];
      for (let i = 0; i < 5; i += 1) {
        const text = `while bob is away ${i}`;
        offline.push(text);
        await send(alice.page, text);
      }
      // Bob writes while offline: shown at once as pending.
      await send(bob.page, 'bob offline 1');
      await send(bob.page, 'bob offline 2');
      const pending = (await shown(bob.page)).filter((m) => m.pending).map((m) => m.body);
      assert.deepEqual(pending, ['bob offline 1', 'bob offline 2']);
      await waitForBodies(alice.page, offline);
      await bob.page.screenshot({ path: join(SHOTS, '2-bob-offline.png') });

      await bob.context.setOffline(false);
      const all = [...first, ...offline, 'bob offline 1', 'bob offline 2'];
      await bob.page.waitForSelector('#conn[data-state="up"]', WAIT);
      await waitForBodies(bob.page, all);
      await waitForBodies(alice.page, all);
      const a2 = await shown(alice.page);
      const b2 = await shown(bob.page);
      assertClean(a2, 'alice after outage');
      assertClean(b2, 'bob after outage');
      assert.deepEqual(b2, a2, 'same conversation on both sides after the outage');
      assert.equal(b2.length, all.length, 'every message exactly once');
      await bob.page.screenshot({ path: join(SHOTS, '3-bob-reconnected.png') });
    });

    await t.test('scrolling up pages older history, in order and once each', async () => {
      const token = await alice.page.evaluate(() => JSON.parse(localStorage.getItem('dyschat.session')).token);
      const bulk = [];
      for (let i = 0; i < 120; i += 1) {
        const body = `bulk ${i}`;
        bulk.push(body);
        const r = await fetch(`${env.mesh.url}/api/v1/rooms/${roomId}/messages`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
          body: JSON.stringify({ body, client_msg_id: `bulk-${suffix}-${i}` }),
        });
        assert.equal(r.status, 201, await r.text());
      }
      await waitForBodies(alice.page, bulk);
      await bob.page.reload();
      await bob.page.waitForSelector('#conn[data-state="up"]', WAIT);
      await waitForBodies(bob.page, bulk.slice(-10));
      const total = (await shown(alice.page)).length;
      for (let i = 0; i < 30 && (await shown(bob.page)).length < total; i += 1) {
        await bob.page.evaluate(() => {
          document.getElementById('scroller').scrollTop = 0;
        });
        await bob.page.waitForTimeout(200);
      }
      const a3 = await shown(alice.page);
      const b3 = await shown(bob.page);
      assertClean(b3, 'bob after paging');
      assert.deepEqual(b3, a3, 'paged history equals the live view');
      assert.ok(await bob.page.isHidden('#older-btn'), 'no more history to load');
    });

    await t.test('phone width stays usable', async () => {
      await bob.page.setViewportSize({ width: 390, height: 844 });
      await send(bob.page, 'from a phone');
      await waitForBodies(bob.page, ['from a phone']);
      const overflow = await bob.page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
      assert.equal(overflow, false, 'no horizontal scrolling at 390 px');
      await bob.page.screenshot({ path: join(SHOTS, '4-bob-phone.png'), fullPage: true });
    });
  } catch (e) {
    console.error(env.mesh.logs());
    await alice.page.screenshot({ path: join(SHOTS, 'failure-alice.png') }).catch(() => {});
    await bob.page.screenshot({ path: join(SHOTS, 'failure-bob.png') }).catch(() => {});
    throw e;
  }
});

const sessionToken = (page) => page.evaluate(() => JSON.parse(localStorage.getItem('dyschat.session')).token);

/** `GET /api/v1/me` with `token`: its status. */
const meStatus = async (token) =>
  (await fetch(`${env.mesh.url}/api/v1/me`, { headers: { Authorization: `Bearer ${token}` } })).status;

test('"Log out" revokes the token: its sockets close, it is refused, the sign-in form shows', async () => {
  const suffix = Date.now().toString(36).slice(-6);
  const carol = await openUser();
  const socketUrls = [];
  carol.page.on('websocket', (ws) => socketUrls.push(ws.url()));
  try {
    await register(carol.page, `carol_${suffix}`, 'correct horse battery');
    const token = await sessionToken(carol.page);
    assert.ok(socketUrls.length > 0, 'the page opened a socket');
    assert.ok(socketUrls.every((u) => !u.includes(token) && !u.includes('token=')), `token in a URL: ${socketUrls}`);
    assert.equal(await meStatus(token), 200);

    // Another socket on the same token (as another tab would have), and the page's own one.
    await carol.page.evaluate(
      (t) =>
        new Promise((ok, fail) => {
          window.witness = { frames: [], code: null };
          const ws = new WebSocket(`ws://${location.host}/ws`);
          ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token: t, ref: 'w' }));
          ws.onmessage = (ev) => {
            const f = JSON.parse(ev.data);
            window.witness.frames.push(f);
            if (f.type === 'ready') ok();
          };
          ws.onclose = (ev) => {
            window.witness.code = ev.code;
          };
          ws.onerror = () => fail(new Error('the witness socket failed'));
        }),
      token,
    );
    await carol.page.evaluate(() => {
      window.ownClosed = false;
      window.dyschat.conn.ws.addEventListener('close', () => {
        window.ownClosed = true;
      });
    });

    await carol.page.click('#logout');
    await carol.page.waitForSelector('#auth-view:not([hidden])', WAIT);
    assert.ok(await carol.page.isHidden('#chat-view'), 'the chat is hidden');
    assert.ok(await carol.page.isHidden('#whoami'), 'no "signed in as"');
    assert.equal(await carol.page.textContent('#auth-error'), '', 'the server was told');
    await carol.page.waitForFunction(() => window.ownClosed && window.witness.code !== null, null, WAIT);
    const witness = await carol.page.evaluate(() => window.witness);
    assert.equal(witness.code, 1008, 'the server closed the other socket on the token');
    assert.ok(
      witness.frames.some((f) => f.type === 'error' && f.code === 'unauthorized' && f.message === 'token revoked'),
      JSON.stringify(witness.frames),
    );
    assert.equal(await meStatus(token), 401, 'the token is refused');
    assert.equal(await carol.page.evaluate(() => localStorage.getItem('dyschat.session')), null);
    await carol.page.screenshot({ path: join(SHOTS, '5-carol-logged-out.png') });

    // Still signed out after a reload; signing in again gives a new token that works.
    await carol.page.reload();
    await carol.page.waitForSelector('#auth-view:not([hidden])', WAIT);
    await carol.page.fill('#auth-username', `carol_${suffix}`);
    await carol.page.fill('#auth-password', 'correct horse battery');
    await carol.page.click('#login-btn');
    await carol.page.waitForSelector('#conn[data-state="up"]', WAIT);
    const fresh = await sessionToken(carol.page);
    assert.notEqual(fresh, token);
    assert.equal(await meStatus(fresh), 200);
  } catch (e) {
    console.error(env.mesh.logs());
    await carol.page.screenshot({ path: join(SHOTS, 'failure-carol.png') }).catch(() => {});
    throw e;
  }
});

test('a logout made elsewhere ends the page\'s session', async () => {
  const suffix = Date.now().toString(36).slice(-6);
  const dave = await openUser();
  try {
    await register(dave.page, `dave_${suffix}`, 'correct horse battery');
    const token = await sessionToken(dave.page);
    const r = await fetch(`${env.mesh.url}/api/v1/auth/logout`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}` },
    });
    assert.equal(r.status, 204);
    await dave.page.waitForSelector('#auth-view:not([hidden])', WAIT);
    assert.match(await dave.page.textContent('#auth-error'), /session ended/);
    assert.equal(await dave.page.evaluate(() => localStorage.getItem('dyschat.session')), null);
  } catch (e) {
    console.error(env.mesh.logs());
    await dave.page.screenshot({ path: join(SHOTS, 'failure-dave.png') }).catch(() => {});
    throw e;
  }
});

test('no page broke its Content-Security-Policy or asked for a missing file', () => {
  assert.deepEqual(env.browsers.cspViolations, []);
  assert.deepEqual(env.browsers.missingFiles, []);
});
