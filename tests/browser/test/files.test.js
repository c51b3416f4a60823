// Files (contract section 9), in headless Chromium against a real mesh of two ws-agents: alice
// on the first, bob on the second, so every file is uploaded through one agent and read through
// the other. Alice attaches an image with the attach button (its upload held back by the test,
// so its progress shows), a text file dropped on the conversation and one pasted into the
// message box; an upload cancelled while it runs and one over the server's size limit (a smaller
// DYSCHAT_MAX_FILE_BYTES for this mesh) show as such, and so does one past the daily byte quota
// (a small one here too). Bob sees the image rendered, larger in the
// dialog, and downloads the text file under its name with its bytes; after a reload too. A
// message of files alone carries their names. Deleting the message takes its files away from
// every page and from the server.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { WAIT } from '../lib/browser.js';
import { PASSWORD, register, waitTitle } from '../lib/page.js';
import { SHOTS, suite } from '../lib/suite.js';

const LIMIT = 256 * 1024;
/** The bytes a user may store per day here: a few uploads of nearly LIMIT exhaust it. */
const QUOTA = 1000 * 1000;
const env = suite({
  agents: 2,
  env: { DYSCHAT_MAX_FILE_BYTES: String(LIMIT), DYSCHAT_MAX_BYTES_PER_USER_PER_DAY: String(QUOTA) },
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function api(page, method, path, body) {
  const token = await page.evaluate(() => window.dyschat.session.token);
  const r = await fetch(`${new URL(page.url()).origin}${path}`, {
    method,
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

/** Whether the agent under test takes uploads (section 9), probed over HTTP with a throwaway user. */
async function serverHasFiles(url, suffix) {
  const call = (method, path, token, body, type = 'application/json') =>
    fetch(`${url}${path}`, {
      method,
      headers: { 'Content-Type': type, ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body,
    });
  const name = `pf_${suffix}`;
  await call('POST', '/api/v1/auth/register', null, JSON.stringify({ username: name, password: PASSWORD }));
  const { token } = await (await call('POST', '/api/v1/auth/login', null, JSON.stringify({ username: name, password: PASSWORD }))).json();
  const room = await (await call('POST', '/api/v1/rooms', token, JSON.stringify({ name: `probe ${suffix}` }))).json();
  const r = await call('POST', `/api/v1/rooms/${room.room_id}/files?name=probe.txt`, token, 'probe', 'text/plain');
  return r.status === 201;
}

/** Opens `roomId` from my rooms, reloading the list until it shows there. */
async function openRoom(page, roomId, title) {
  const sel = `#my-rooms [data-room="${roomId}"]`;
  for (let i = 0; i < 20 && !(await page.$(sel)); i += 1) {
    await page.click('#refresh-rooms');
    await page.waitForTimeout(500);
  }
  await page.click(sel);
  await waitTitle(page, title);
}

const exactly = (text) => `^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`;
const msg = (text) => `#messages li[data-seq]:has(.body:text-matches(${JSON.stringify(exactly(text))}))`;
const chip = (name) => `#attach-list li[data-upload="${name}"]`;

/** A PNG of `w` x `h` pixels, drawn by the page's canvas. */
async function png(page, w, h) {
  const b64 = await page.evaluate(
    ([w, h]) => {
      const c = document.createElement('canvas');
      c.width = w;
      c.height = h;
      const g = c.getContext('2d');
      g.fillStyle = '#c2410c';
      g.fillRect(0, 0, w, h);
      g.fillStyle = '#0b5cad';
      g.fillRect(w / 4, h / 4, w / 2, h / 2);
      return c.toDataURL('image/png').split(',')[1];
    },
    [w, h],
  );
  return Buffer.from(b64, 'base64');
}

/** Drops a text file on the conversation, as a browser does when one is dragged there. */
async function dropFile(page, name, text) {
  await page.evaluate(
    ([name, text]) => {
      const dt = new DataTransfer();
      dt.items.add(new File([text], name, { type: 'text/plain' }));
      const zone = document.getElementById('conversation');
      for (const type of ['dragenter', 'dragover', 'drop']) {
        zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
      }
    },
    [name, text],
  );
}

/** Pastes a text file into the message box. */
async function pasteFile(page, name, text) {
  await page.evaluate(
    ([name, text]) => {
      const dt = new DataTransfer();
      dt.items.add(new File([text], name, { type: 'text/plain' }));
      document.getElementById('composer-input').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
    },
    [name, text],
  );
}

/** Holds every upload of `page` for `ms` before letting it through; returns the undo. */
async function holdUploads(page, ms) {
  const pattern = '**/api/v1/rooms/*/files?*';
  const handler = async (route) => {
    await sleep(ms);
    await route.continue().catch(() => {}); // cancelled meanwhile
  };
  await page.route(pattern, handler);
  return () => page.unroute(pattern, handler);
}

test('attach, preview, download and delete files across two agents', async (t) => {
  const suffix = Date.now().toString(36).slice(-6);
  const { page: alice } = await env.browsers.open(env.mesh.urls[0]);
  const { page: bob } = await env.browsers.open(env.mesh.urls[1]);
  const pages = { alice, bob };
  const has = await serverHasFiles(env.mesh.urls[0], suffix);
  console.log(`[files test] the agent takes uploads: ${has}`);
  try {
    await register(alice, `falice_${suffix}`);
    await register(bob, `fbob_${suffix}`);
    const title = `Files ${suffix}`;
    await alice.fill('#create-name', title);
    await alice.click('#create-form button[type="submit"]');
    await waitTitle(alice, title);
    const roomId = await alice.evaluate(() => window.dyschat.current);
    assert.equal((await api(bob, 'POST', `/api/v1/rooms/${roomId}/join`)).status, 200);
    await openRoom(bob, roomId, title);
    if (!has) return t.skip('the agent has no file uploads yet (contract section 9)');

    const image = await png(alice, 40, 30);
    const notes = `notes of ${suffix}\nline two\n`;
    let caption = `files for you ${suffix}`;
    const ids = {};
    let removed = null; // the id of the file taken out before sending

    await t.test('attach button, drop and paste: each upload shows its progress, then is ready', async () => {
      const release = await holdUploads(alice, 1500);
      await alice.setInputFiles('#attach-input', { name: 'sunset.png', mimeType: 'image/png', buffer: image });
      await alice.waitForSelector(`${chip('sunset.png')}[data-state="uploading"] progress`, WAIT);
      assert.match(await alice.textContent(`${chip('sunset.png')} .upload-status`), /^\d+%$/);
      assert.ok(await alice.isVisible(`${chip('sunset.png')} [data-upload-action="cancel"]`), 'a running upload can be cancelled');
      await alice.waitForSelector(`${chip('sunset.png')}[data-state="done"]`, WAIT);
      await release();
      await dropFile(alice, 'notes.txt', notes);
      await alice.waitForSelector(`${chip('notes.txt')}[data-state="done"]`, WAIT);
      await pasteFile(alice, 'clip.txt', `pasted ${suffix}`);
      await alice.waitForSelector(`${chip('clip.txt')}[data-state="done"]`, WAIT);
      assert.equal(await alice.textContent(`${chip('notes.txt')} .upload-status`), 'ready');
      for (const name of ['sunset.png', 'notes.txt', 'clip.txt']) {
        ids[name] = await alice.getAttribute(chip(name), 'data-file-id');
        assert.ok(ids[name], name);
      }
      await alice.screenshot({ path: join(SHOTS, 'files-1-uploads.png') });
    });

    await t.test('cancel, a file over the limit, and removing a ready one', async () => {
      const release = await holdUploads(alice, 5000);
      await alice.setInputFiles('#attach-input', { name: 'slow.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(1000, 7) });
      await alice.waitForSelector(`${chip('slow.bin')}[data-state="uploading"]`, WAIT);
      await alice.click(`${chip('slow.bin')} [data-upload-action="cancel"]`);
      await alice.waitForSelector(chip('slow.bin'), { state: 'detached', ...WAIT });
      await release();
      await alice.setInputFiles('#attach-input', { name: 'big.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(LIMIT + 1, 1) });
      await alice.waitForSelector(`${chip('big.bin')}[data-state="failed"]`, WAIT);
      const why = await alice.textContent(`${chip('big.bin')} .upload-status`);
      assert.match(why, /too large/i, why);
      assert.match(why, /at most 262,?144 bytes/, 'the limit is said');
      await alice.click(`${chip('big.bin')} [data-upload-action="remove"]`);
      await alice.waitForSelector(chip('big.bin'), { state: 'detached', ...WAIT });
      await alice.click(`${chip('clip.txt')} [data-upload-action="remove"]`);
      await alice.waitForSelector(chip('clip.txt'), { state: 'detached', ...WAIT });
      removed = ids['clip.txt'];
      delete ids['clip.txt'];
    });

    await t.test('sent: the other agent shows the image and the file, and downloads it', async () => {
      await alice.fill('#composer-input', caption);
      await alice.press('#composer-input', 'Enter');
      await alice.waitForSelector('#attach-list', { state: 'hidden', ...WAIT });
      await alice.waitForSelector(`${msg(caption)} .attachments`, WAIT);
      const li = msg(caption);
      await bob.waitForSelector(`${li} .attachments img[data-file-id="${ids['sunset.png']}"]`, WAIT);
      await bob.waitForFunction(
        (sel) => {
          const img = document.querySelector(sel);
          return img && img.complete && img.naturalWidth === 40 && img.naturalHeight === 30;
        },
        `img[data-file-id="${ids['sunset.png']}"]`,
        WAIT,
      );
      assert.match(await bob.getAttribute(`${li} img`, 'src'), /^blob:/);
      const file = `${li} [data-download="${ids['notes.txt']}"]`;
      assert.equal(await bob.textContent(`${file} .file-name`), 'notes.txt');
      assert.match(await bob.textContent(`${file} .file-size`), /^\d+ B$/);
      assert.ok(removed);
      assert.equal(await bob.$(`${li} [data-file-id="${removed}"]`), null, 'the removed file is not attached');
      const [download] = await Promise.all([bob.waitForEvent('download', WAIT), bob.click(file)]);
      assert.equal(download.suggestedFilename(), 'notes.txt');
      assert.equal(readFileSync(await download.path(), 'utf8'), notes);
      // History says the same.
      const page = await api(bob, 'GET', `/api/v1/rooms/${roomId}/messages`);
      const m = page.body.messages.find((x) => x.body === caption);
      assert.deepEqual(m.attachments.map((f) => f.name).sort(), ['notes.txt', 'sunset.png']);
      await bob.screenshot({ path: join(SHOTS, 'files-2-received.png') });
    });

    await t.test('the image opens larger; after a reload it still shows', async () => {
      const li = msg(caption);
      await bob.click(`${li} .thumb`);
      await bob.waitForSelector('#lightbox[open]', WAIT);
      await bob.waitForFunction(() => document.getElementById('lightbox-img').naturalWidth === 40, null, WAIT);
      await bob.keyboard.press('Escape');
      await bob.waitForSelector('#lightbox:not([open])', { state: 'attached', ...WAIT });
      await bob.reload();
      await bob.waitForSelector('#conn[data-state="up"]', WAIT);
      await waitTitle(bob, title);
      await bob.waitForFunction(
        (sel) => {
          const img = document.querySelector(sel);
          return img && img.complete && img.naturalWidth === 40;
        },
        `img[data-file-id="${ids['sunset.png']}"]`,
        WAIT,
      );
    });

    await t.test('a message of files alone carries their names', async () => {
      await dropFile(alice, 'alone.txt', 'just a file');
      await alice.waitForSelector(`${chip('alone.txt')}[data-state="done"]`, WAIT);
      await alice.fill('#composer-input', '');
      await alice.click('#send-btn');
      await bob.waitForSelector(`${msg('alone.txt')} [data-download]`, WAIT);
    });

    await t.test('an edit keeps the files', async () => {
      const li = `#messages li[data-seq="${await alice.getAttribute(msg(caption), 'data-seq')}"]`;
      await alice.hover(li);
      await alice.click(`${li} [data-msg-action="edit"]`);
      caption = `files for you, edited ${suffix}`;
      await alice.fill(`${li} .edit-input`, caption);
      await alice.press(`${li} .edit-input`, 'Enter');
      const edited = msg(caption);
      await bob.waitForSelector(`${edited} .edited`, WAIT);
      await bob.waitForFunction(
        (sel) => {
          const img = document.querySelector(sel);
          return img && img.complete && img.naturalWidth === 40;
        },
        `img[data-file-id="${ids['sunset.png']}"]`,
        WAIT,
      );
      assert.ok(await bob.$(`${edited} [data-download="${ids['notes.txt']}"]`), 'the text file is still there');
    });

    await t.test('deleting the message takes its files away, on every page and on the server', async () => {
      const li = msg(caption);
      const seq = await bob.getAttribute(li, 'data-seq');
      await alice.hover(li);
      await alice.click(`${li} [data-msg-action="delete"]`);
      await alice.click(`${li} [data-confirm="delete"]`);
      const gone = `#messages li[data-seq="${seq}"].deleted`;
      await bob.waitForSelector(gone, WAIT);
      await alice.waitForSelector(gone, WAIT);
      assert.equal(await bob.$(`${gone} .attachments`), null);
      assert.equal(await bob.$(`img[data-file-id="${ids['sunset.png']}"]`), null);
      for (const id of Object.values(ids)) {
        const token = await bob.evaluate(() => window.dyschat.session.token);
        const r = await fetch(`${env.mesh.urls[1]}/api/v1/files/${id}`, { headers: { Authorization: `Bearer ${token}` } });
        assert.equal(r.status, 404, id);
      }
    });

    await t.test('at 390 px the composer with a file chip does not scroll sideways', async () => {
      await alice.setViewportSize({ width: 390, height: 800 });
      await dropFile(alice, `a-long-file-name-that-should-wrap-${suffix}-${'x'.repeat(40)}.txt`, 'x');
      await alice.waitForSelector('#attach-list li[data-state="done"]', WAIT);
      const wide = await alice.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
      assert.equal(wide, false);
      await alice.screenshot({ path: join(SHOTS, 'files-3-phone.png'), fullPage: true });
    });
    await t.test('past the daily byte quota an upload fails with 429, saying when to try again', async () => {
      let failed = null;
      for (let i = 0; i < Math.ceil(QUOTA / (LIMIT - 1000)) + 1 && !failed; i += 1) {
        const name = `quota-${i}.bin`;
        await alice.setInputFiles('#attach-input', { name, mimeType: 'application/octet-stream', buffer: Buffer.alloc(LIMIT - 1000, i) });
        await alice.waitForSelector(`${chip(name)}:is([data-state="done"], [data-state="failed"])`, WAIT);
        if ((await alice.getAttribute(chip(name), 'data-state')) === 'failed') failed = name;
      }
      assert.ok(failed, 'the quota ran out');
      const why = await alice.textContent(`${chip(failed)} .upload-status`);
      assert.match(why, /too many bytes today: try again in \d+ s/i, why);
      while (await alice.$('#attach-list [data-upload-action="remove"]')) await alice.click('#attach-list [data-upload-action="remove"]');
      await alice.waitForSelector('#attach-list', { state: 'hidden', ...WAIT });
    });

  } catch (e) {
    console.error(env.mesh.logs(40));
    for (const [who, p] of Object.entries(pages)) {
      await p.screenshot({ path: join(SHOTS, `failure-files-${who}.png`) }).catch(() => {});
    }
    throw e;
  }
});

test('no page broke its Content-Security-Policy, threw or missed a file', () => {
  assert.deepEqual(env.browsers.cspViolations, []);
  assert.deepEqual(env.browsers.pageErrors, []);
  assert.deepEqual(env.browsers.missingFiles, []);
});
