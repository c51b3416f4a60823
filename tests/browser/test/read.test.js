// Read markers across devices, in headless Chromium against a real mesh of two ws-agents: alice
// has one page on each agent, bob writes in a room of hers; reading the room on one page clears
// its unread badge on the other (contract section 8: every socket of the user, on any agent,
// receives read_marker), and me/rooms says the same.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { WAIT } from '../lib/browser.js';
import { PASSWORD, waitTitle } from '../lib/page.js';
import { suite } from '../lib/suite.js';

const env = suite({ agents: 2 });

/** One device of a user, on the agent at `url`. */
const openPage = async (url) => (await env.browsers.open(url)).page;

async function enter(page, username, button) {
  await page.fill('#auth-username', username);
  await page.fill('#auth-password', PASSWORD);
  await page.click(button);
  await page.waitForSelector('#chat-view:not([hidden])', WAIT);
  await page.waitForSelector('#conn[data-state="up"]', WAIT);
}

async function createRoom(page, name) {
  await page.fill('#create-name', name);
  await page.selectOption('#create-visibility', 'public');
  await page.click('#create-form button[type="submit"]');
  await waitTitle(page, name);
  return page.evaluate(() => window.dyschat.current);
}

async function openRoom(page, roomId, title) {
  await page.click(`#my-rooms [data-room="${roomId}"]`);
  await waitTitle(page, title);
}

const badge = (roomId, n) => `#my-rooms li[data-room-id="${roomId}"] .badge${n ? `[data-unread="${n}"]` : ''}`;

async function api(page, method, path, body) {
  const token = await page.evaluate(() => window.dyschat.session.token);
  const r = await fetch(`${new URL(page.url()).origin}${path}`, {
    method,
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

test('reading a room on one device clears its unread badge on the other, across agents', async () => {
  const suffix = Date.now().toString(36).slice(-6);
  const names = { alice: `ralice_${suffix}`, bob: `rbob_${suffix}` };
  const laptop = await openPage(env.mesh.urls[0]);
  const bob = await openPage(env.mesh.urls[0]);
  await enter(laptop, names.alice, '#register-btn');
  await enter(bob, names.bob, '#register-btn');

  const reading = `Reading ${suffix}`;
  const elsewhere = `Elsewhere ${suffix}`;
  const roomId = await createRoom(laptop, reading);
  const elsewhereId = await createRoom(laptop, elsewhere);
  assert.equal((await api(bob, 'POST', `/api/v1/rooms/${roomId}/join`)).status, 200);

  // Alice's phone logs in on the other agent and looks at another room.
  const phone = await openPage(env.mesh.urls[1]);
  await enter(phone, names.alice, '#login-btn');
  await phone.waitForSelector(`#my-rooms li[data-room-id="${roomId}"]`, WAIT);
  await openRoom(phone, elsewhereId, elsewhere);

  for (const n of [1, 2, 3]) {
    const r = await api(bob, 'POST', `/api/v1/rooms/${roomId}/messages`, { body: `bob ${n}` });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
  // Both of alice's pages count bob's three messages.
  await laptop.waitForSelector(badge(roomId, 3), WAIT);
  await phone.waitForSelector(badge(roomId, 3), WAIT);

  // Read on the laptop: the phone's badge goes, through its read_marker alone (its periodic
  // reloads of my rooms are stopped, so only the frame can tell it).
  await phone.evaluate(() => window.dyschat.timers.forEach((t) => clearInterval(t)));
  const markers = [];
  await phone.exposeFunction('sawReadMarker', (seq) => markers.push(seq));
  await phone.evaluate(() => window.dyschat.conn.addEventListener('frame', (ev) => {
    if (ev.detail.type === 'read_marker') window.sawReadMarker(ev.detail.seq);
  }));
  await openRoom(laptop, roomId, reading);
  await phone.waitForSelector(badge(roomId), { state: 'detached', ...WAIT });
  assert.ok(markers.length >= 1, 'the phone received read_marker');

  const mine = await api(phone, 'GET', '/api/v1/me/rooms');
  assert.equal(mine.status, 200, JSON.stringify(mine.body));
  const summary = mine.body.rooms.find((s) => s.room.room_id === roomId);
  assert.equal(summary.unread, 0, JSON.stringify(summary));
  assert.equal(summary.last_read_seq, summary.last_seq, JSON.stringify(summary));
  assert.equal(markers.at(-1), summary.last_read_seq);
  assert.deepEqual(env.browsers.pageErrors, []);
});
