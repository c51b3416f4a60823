// What every browser test does on a page: register a user through the form, wait for a room.

import { WAIT } from './browser.js';

/** The password the tests register their users with. */
export const PASSWORD = 'correct horse battery';

/** Registers `username` through the page's form and waits until connected; the user's id. */
export async function register(page, username, password = PASSWORD) {
  await page.fill('#auth-username', username);
  await page.fill('#auth-password', password);
  await page.click('#register-btn');
  await page.waitForSelector('#chat-view:not([hidden])', WAIT);
  await page.waitForSelector('#conn[data-state="up"]', WAIT);
  return page.evaluate(() => window.dyschat.session.user_id);
}

/** Waits until the page shows the room titled `title`. */
export async function waitTitle(page, title) {
  await page.waitForFunction((t) => document.getElementById('room-title').textContent === t, title, WAIT);
}
