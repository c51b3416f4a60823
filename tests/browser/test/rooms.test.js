// Rooms people run, in headless Chromium against a real mesh of two ws-agents: alice and bob
// use the first agent, carol the second (every frame between them crosses the mesh).
// Settings seen by others, roles (promote, transfer), kick, ban and unban, a private room
// invisible until an invitation, deletion, direct messages found by searching a user with an
// unread badge, and a block that stops the peer's messages.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';

import { WAIT } from '../lib/browser.js';
import { register, waitTitle } from '../lib/page.js';
import { SHOTS, suite } from '../lib/suite.js';

const env = suite({ agents: 2 });

/** One user's browser on the agent at `url`. */
const openUser = async (url) => (await env.browsers.open(url)).page;

const token = (page) => page.evaluate(() => window.dyschat.session.token);
const current = (page) => page.evaluate(() => window.dyschat.current);

async function createRoom(page, name, visibility = 'public') {
  await page.fill('#create-name', name);
  await page.selectOption('#create-visibility', visibility);
  await page.click('#create-form button[type="submit"]');
  await waitTitle(page, name);
  return current(page);
}

/** Refreshes the lists until `roomId` can be joined (or, with `present` false, for a while). */
async function joinable(page, roomId, present = true) {
  const sel = `#other-rooms [data-join="${roomId}"]`;
  if (!present) {
    await page.click('#refresh-rooms');
    await page.waitForTimeout(800);
    return (await page.$(sel)) !== null;
  }
  for (let i = 0; i < 20; i += 1) {
    await page.click('#refresh-rooms');
    if (await page.waitForSelector(sel, { timeout: 1000 }).catch(() => null)) return true;
  }
  return false;
}

async function joinRoom(page, roomId, title) {
  assert.ok(await joinable(page, roomId), `room ${roomId} is offered to join`);
  await page.click(`#other-rooms [data-join="${roomId}"]`);
  await waitTitle(page, title);
}

async function openRoom(page, roomId, title) {
  await page.click(`#my-rooms [data-room="${roomId}"], #dm-list [data-room="${roomId}"]`);
  await waitTitle(page, title);
}

const member = (userId) => `#member-list li[data-user="${userId}"]`;
const action = (name, userId) => `#member-list button[data-action="${name}"][data-user="${userId}"]`;

async function send(page, text) {
  await page.fill('#composer-input', text);
  await page.press('#composer-input', 'Enter');
}

async function waitForBodies(page, bodies) {
  await page.waitForFunction(
    (want) => {
      const have = new Set([...document.querySelectorAll('#messages li[data-seq] .body')].map((b) => b.textContent));
      return want.every((b) => have.has(b));
    },
    bodies,
    WAIT,
  );
}

async function noticeMatches(page, re) {
  await page.waitForFunction(
    (src) => !document.getElementById('notice').hidden && new RegExp(src, 'i').test(document.getElementById('notice-text').textContent),
    re.source,
    WAIT,
  );
}

async function openSettings(page) {
  if (await page.isHidden('#room-settings')) await page.click('#settings-btn');
  await page.waitForSelector('#room-settings:not([hidden])', WAIT);
}

async function api(page, method, path, body) {
  const r = await fetch(`${new URL(page.url()).origin}${path}`, {
    method,
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await token(page)}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

test('rooms people run: settings, roles, kick, ban, privacy, deletion, direct messages, blocks', async (t) => {
  const suffix = Date.now().toString(36).slice(-6);
  const names = { alice: `alice_${suffix}`, bob: `bob_${suffix}`, carol: `carol_${suffix}` };
  const alice = await openUser(env.mesh.urls[0]);
  const bob = await openUser(env.mesh.urls[0]);
  const carol = await openUser(env.mesh.urls[1]);
  const pages = { alice, bob, carol };
  const ids = {};
  try {
    ids.alice = await register(alice, names.alice);
    ids.bob = await register(bob, names.bob);
    ids.carol = await register(carol, names.carol);

    const club = `Club ${suffix}`;
    const renamed = `Club ${suffix} renamed`;
    const roomId = await createRoom(alice, club);

    await t.test('my rooms come from the server: the owner sees the new room with its role', async () => {
      await alice.waitForSelector(`#my-rooms li[data-room-id="${roomId}"][data-role="owner"]`, WAIT);
      assert.equal(await alice.isVisible('#settings-btn'), true, 'the owner has room settings');
      assert.equal(await alice.isHidden('#leave-btn'), true, 'the owner cannot leave');
      const mine = await api(alice, 'GET', '/api/v1/me/rooms');
      assert.equal(mine.status, 200, JSON.stringify(mine.body));
      assert.ok(mine.body.rooms.some((s) => s.room.room_id === roomId && s.role === 'owner'));
    });

    await t.test('the settings panel renames the room; the other user sees it', async () => {
      await joinRoom(bob, roomId, club);
      await joinRoom(carol, roomId, club);
      assert.equal(await bob.isHidden('#settings-btn'), true, 'a member has no settings');
      await alice.waitForSelector(member(ids.bob), WAIT);
      await openSettings(alice);
      await alice.fill('#settings-name', renamed);
      await alice.fill('#settings-topic', 'Now with a topic');
      await alice.click('#settings-save');
      await waitTitle(bob, renamed);
      await waitTitle(carol, renamed);
      await bob.waitForFunction(() => document.getElementById('room-topic').textContent === 'Now with a topic', null, WAIT);
      await bob.waitForSelector(`#my-rooms [data-room="${roomId}"]:text-is("${renamed}")`, WAIT);
      assert.equal(await bob.$(action('kick', ids.carol)), null, 'a member cannot kick a member');
      await alice.screenshot({ path: join(SHOTS, 'rooms-1-settings.png') });
    });

    await t.test('promote to moderator: the moderator may kick members but not the owner', async () => {
      await alice.waitForSelector(action('promote', ids.bob), WAIT);
      await alice.click(action('promote', ids.bob));
      await bob.waitForSelector(`${member(ids.bob)}[data-role="moderator"]`, WAIT);
      await carol.waitForSelector(`${member(ids.bob)}[data-role="moderator"]`, WAIT);
      await alice.waitForSelector(`${member(ids.bob)}[data-role="moderator"]`, WAIT);
      await bob.waitForSelector('#settings-btn:not([hidden])', WAIT);
      await bob.waitForSelector(action('kick', ids.carol), WAIT);
      assert.equal(await bob.$(action('kick', ids.alice)), null, 'no kick button on the owner');
      assert.equal(await bob.$(action('promote', ids.carol)), null, 'only the owner changes roles');
      await openSettings(bob);
      assert.equal(await bob.isHidden('#delete-box'), true, 'only the owner deletes');
    });

    await t.test('kick: the kicked user is told and loses the room; the others see them gone', async () => {
      await bob.fill('#mod-reason', 'too loud');
      await bob.click(action('kick', ids.carol));
      await noticeMatches(carol, /removed from .*too loud/);
      await carol.waitForFunction(() => document.getElementById('room-title').textContent === 'No room open', null, WAIT);
      assert.equal(await carol.$(`#my-rooms [data-room="${roomId}"]`), null, 'the room left my rooms');
      await alice.waitForSelector(member(ids.carol), { state: 'detached', ...WAIT });
      await bob.waitForSelector(member(ids.carol), { state: 'detached', ...WAIT });
      await carol.screenshot({ path: join(SHOTS, 'rooms-2-kicked.png') });
      // A kicked user may come back to a public room.
      await joinRoom(carol, roomId, renamed);
      await alice.waitForSelector(member(ids.carol), WAIT);
    });

    await t.test('ban and unban', async () => {
      await alice.waitForSelector(action('ban', ids.carol), WAIT);
      await alice.click(action('ban', ids.carol));
      await noticeMatches(carol, /removed from/);
      await carol.waitForFunction(() => document.getElementById('room-title').textContent === 'No room open', null, WAIT);
      await alice.waitForSelector(member(ids.carol), { state: 'detached', ...WAIT });
      assert.ok(await joinable(carol, roomId), 'a public room stays listed');
      await carol.click(`#other-rooms [data-join="${roomId}"]`);
      await noticeMatches(carol, /could not join/);
      assert.equal(await carol.$(`#my-rooms [data-room="${roomId}"]`), null, 'a banned user does not get in');
      await openSettings(alice);
      await alice.waitForSelector(`#ban-list li[data-user="${ids.carol}"]`, WAIT);
      await alice.click(`#ban-list li[data-user="${ids.carol}"] button`);
      await alice.waitForSelector(`#ban-list li[data-user="${ids.carol}"]`, { state: 'detached', ...WAIT });
      await joinRoom(carol, roomId, renamed);
      await alice.waitForSelector(member(ids.carol), WAIT);
    });

    await t.test('transfer ownership: the new owner may delete, the old one is a moderator', async () => {
      await alice.click(action('transfer', ids.bob));
      await bob.waitForSelector(`${member(ids.bob)}[data-role="owner"]`, WAIT);
      await alice.waitForSelector(`${member(ids.alice)}[data-role="moderator"]`, WAIT);
      await carol.waitForSelector(`${member(ids.bob)}[data-role="owner"]`, WAIT);
      await alice.waitForSelector('#leave-btn:not([hidden])', WAIT);
      await openSettings(bob);
      await bob.waitForSelector('#delete-box:not([hidden])', WAIT);
      await openSettings(alice);
      assert.equal(await alice.isHidden('#delete-box'), true, 'a moderator does not delete');
      assert.equal(await alice.$(action('kick', ids.bob)), null, 'a moderator cannot kick the owner');
    });

    await t.test('delete the room: the others get room_deleted', async () => {
      await bob.click('#delete-btn');
      await bob.click('#delete-confirm');
      await noticeMatches(alice, /was deleted/);
      await noticeMatches(carol, /was deleted/);
      for (const p of [alice, bob, carol]) {
        await p.waitForSelector(`#my-rooms [data-room="${roomId}"]`, { state: 'detached', ...WAIT });
        assert.equal(await p.$(`#other-rooms [data-join="${roomId}"]`), null);
      }
      assert.equal((await api(alice, 'GET', `/api/v1/rooms/${roomId}`)).status, 404);
    });

    await t.test('a private room is invisible to an outsider until invited, then joined', async () => {
      const secret = `Secret ${suffix}`;
      const secretId = await createRoom(alice, secret, 'private');
      assert.equal(await joinable(carol, secretId, false), false, 'not listed for an outsider');
      assert.equal((await api(carol, 'GET', `/api/v1/rooms/${secretId}`)).status, 404);
      await openSettings(alice);
      // Invite bob, then revoke: he never sees it.
      await alice.fill('#invite-q', names.bob.slice(0, 5));
      await alice.click(`#invite-results button[data-pick="${names.bob}"]`, WAIT);
      await alice.waitForSelector(`#invited-list li[data-user="${ids.bob}"]`, WAIT);
      await alice.click(`#invited-list li[data-user="${ids.bob}"] button`);
      await alice.waitForSelector(`#invited-list li[data-user="${ids.bob}"]`, { state: 'detached', ...WAIT });
      assert.equal(await joinable(bob, secretId, false), false, 'a revoked invitation shows nothing');
      // Invite carol: she sees it and joins.
      await alice.fill('#invite-q', names.carol);
      await alice.click(`#invite-results button[data-pick="${names.carol}"]`, WAIT);
      await alice.waitForSelector(`#invited-list li[data-user="${ids.carol}"]`, WAIT);
      await joinRoom(carol, secretId, secret);
      await alice.waitForSelector(member(ids.carol), WAIT);
      await alice.waitForSelector(`#invited-list li[data-user="${ids.carol}"]`, { state: 'detached', ...WAIT });
      await send(carol, 'hello secret');
      await waitForBodies(alice, ['hello secret']);
      await carol.screenshot({ path: join(SHOTS, 'rooms-3-private.png') });
    });

    let dmId;
    await t.test('a direct message found by searching a user; both see it; the other gets a badge', async () => {
      // bob sits in another room, so the direct room is not open on his side.
      await alice.fill('#dm-q', names.bob.slice(0, 6));
      await alice.click(`#dm-results button[data-pick="${names.bob}"]`, WAIT);
      await waitTitle(alice, names.bob);
      dmId = await current(alice);
      await send(alice, 'hi bob 1');
      await send(alice, 'hi bob 2');
      await waitForBodies(alice, ['hi bob 1', 'hi bob 2']);
      await bob.waitForSelector(`#dm-list li[data-room-id="${dmId}"] .badge[data-unread="2"]`, WAIT);
      await bob.waitForSelector(`#dm-list li[data-room-id="${dmId}"] button:text-is("${names.alice}")`, WAIT);
      await bob.waitForSelector(`#dm-list li[data-room-id="${dmId}"][data-online="true"]`, WAIT);
      await bob.screenshot({ path: join(SHOTS, 'rooms-4-dm-badge.png') });
      await openRoom(bob, dmId, names.alice);
      await waitForBodies(bob, ['hi bob 1', 'hi bob 2']);
      await bob.waitForSelector(`#dm-list li[data-room-id="${dmId}"] .badge`, { state: 'detached', ...WAIT });
      await send(bob, 'hi alice');
      await waitForBodies(alice, ['hi alice']);
      assert.equal(await bob.isHidden('#settings-btn'), true, 'a direct room has no settings');
      assert.equal(await bob.isHidden('#leave-btn'), true, 'a direct room is not left');
    });

    await t.test('a block stops the peer sending; unblocking lets them again', async () => {
      await bob.click('#block-btn');
      await bob.waitForSelector('#block-btn:text-is("Unblock ' + names.alice + '")', WAIT);
      if (!(await bob.evaluate(() => document.getElementById('blocked-panel').open))) {
        await bob.click('#blocked-panel > summary');
      }
      await bob.waitForSelector(`#blocked-list li[data-user="${ids.alice}"]`, WAIT);
      const blocks = await api(bob, 'GET', '/api/v1/me/blocks');
      assert.ok(blocks.body.users.some((u) => u.user_id === ids.alice), JSON.stringify(blocks.body));
      await send(alice, 'after the block');
      await alice.waitForSelector('#messages li.failed:has-text("after the block")', WAIT);
      await noticeMatches(alice, /not sent/);
      await bob.waitForTimeout(1000);
      assert.equal(await bob.$('#messages li:has-text("after the block")'), null, 'bob never gets it');
      await alice.screenshot({ path: join(SHOTS, 'rooms-5-blocked.png') });
      await bob.click(`#blocked-list li[data-user="${ids.alice}"] button`);
      await bob.waitForSelector(`#blocked-list li[data-user="${ids.alice}"]`, { state: 'detached', ...WAIT });
      await bob.waitForSelector('#block-btn:text-is("Block ' + names.alice + '")', WAIT);
      await send(alice, 'after the unblock');
      await waitForBodies(bob, ['after the unblock']);
    });

    await t.test('phone width: settings and members stay usable', async () => {
      await alice.setViewportSize({ width: 390, height: 844 });
      // A locator, not an element handle: the list is rendered again whenever my rooms refresh,
      // and a handle to the old row would be detached.
      const roomLink = alice.locator('#my-rooms [data-room]').first();
      if ((await roomLink.count()) > 0) {
        if (!(await roomLink.isVisible())) await alice.click('#rooms-panel > summary');
        await roomLink.click();
      }
      if (await alice.isVisible('#settings-btn')) await openSettings(alice);
      const overflow = await alice.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
      assert.equal(overflow, false, 'no horizontal scrolling at 390 px');
      await alice.screenshot({ path: join(SHOTS, 'rooms-6-phone.png'), fullPage: true });
    });
  } catch (e) {
    console.error(env.mesh.logs(40));
    for (const [who, p] of Object.entries(pages)) {
      await p.screenshot({ path: join(SHOTS, `failure-rooms-${who}.png`) }).catch(() => {});
    }
    throw e;
  }
});

test('no page broke its Content-Security-Policy or threw', () => {
  assert.deepEqual(env.browsers.cspViolations, []);
  assert.deepEqual(env.browsers.pageErrors, []);
});
