// The notification bell: the user's feed (contract section 8). The count is the server's
// `unread_notifications` (GET /api/v1/me) plus what arrives live (`notification` frames); the
// panel pages GET /api/v1/me/notifications, newest first; "Mark all as read" and opening the
// newest unread one tell the server (POST /api/v1/me/notifications/read {up_to}). While the tab
// is hidden a notification also shows through the browser's Notification API, once the user
// allowed it with the button in the panel (the permission is never asked on load). Escape or a
// click elsewhere closes the panel.
// The bell stays hidden while the server has no feed (an agent without section 8).

import * as api from './api.js';
import { node } from './view.js';

const $ = (id) => document.getElementById(id);
const PAGE = 30;
const timeFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

const VERB = {
  mention: 'mentioned you in',
  reply: 'replied to you in',
  dm: 'sent you a message',
  invite: 'invited you to',
};

export class Feed {
  /**
   * `ctx`: {token(), roomName(roomId), open(notification): opens its room at its message,
   * notify(text)}.
   */
  constructor(ctx) {
    this.ctx = ctx;
    this.box = $('bell-box');
    this.bell = $('bell');
    this.count = $('bell-count');
    this.panel = $('bell-panel');
    this.list = $('bell-list');
    this.more = $('bell-more');
    this.readAll = $('bell-read-all');
    this.permission = $('bell-permission');
    this.reset();
    this.bell.addEventListener('click', () => this.toggle());
    this.readAll.addEventListener('click', () => this.markRead(this.items[0]));
    this.more.addEventListener('click', () => this.loadPage(this.cursor));
    $('bell-desktop').addEventListener('click', () => this.askPermission());
    // Pressing anywhere else closes the panel (on pointerdown: a click may re-render its target).
    document.addEventListener('pointerdown', (ev) => {
      if (this.open && !this.box.contains(ev.target)) this.toggle(false);
    });
    this.panel.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') {
        this.toggle(false);
        this.bell.focus();
      }
    });
  }

  reset() {
    this.items = []; // Notification, newest first
    this.ids = new Set();
    this.unread = 0;
    this.cursor = null;
    this.available = false;
    this.loaded = false;
    this.open = false;
    this.box.hidden = true;
    this.panel.hidden = true;
  }

  /** At start and after every reconnection: the count and the newest page. */
  async load() {
    const t = this.ctx.token();
    if (!t) return;
    try {
      const me = await api.me(t);
      if (typeof me.unread_notifications !== 'number') return; // no feed on this server
      this.unread = me.unread_notifications;
      this.available = true;
      this.items = [];
      this.ids.clear();
      await this.loadPage(null);
    } catch (e) {
      if (e.code === 'not_found') this.available = false;
    }
    this.render();
  }

  async loadPage(before) {
    try {
      const page = await api.notifications(this.ctx.token(), before, PAGE);
      for (const n of page.notifications) this.keep(n, false);
      this.cursor = page.next_cursor || null;
      this.loaded = true;
    } catch (e) {
      if (e.code === 'not_found') this.available = false;
      else this.ctx.notify(`Could not load notifications. ${api.describe(e)}`);
    }
    this.render();
  }

  /** Keeps a notification once, in newest-first order; `live` ones count as new. */
  keep(n, live) {
    if (this.ids.has(n.notification_id)) return false;
    this.ids.add(n.notification_id);
    if (live) this.items.unshift(n);
    else this.items.push(n);
    this.items.sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0));
    return true;
  }

  /** A `notification` frame. */
  onFrame(f) {
    const n = f.notification;
    if (!n || !this.keep(n, true)) return;
    this.available = true;
    if (!n.read) this.unread += 1;
    this.render();
    if (document.visibilityState === 'hidden') this.desktop(n);
  }

  line(n) {
    const who = (n.from && n.from.username) || 'Someone';
    const verb = VERB[n.kind] || 'notified you in';
    const room = n.kind === 'dm' ? '' : ` ${this.ctx.roomName(n.room_id) || 'a room'}`;
    return `${who} ${verb}${room}`;
  }

  desktop(n) {
    if (!('Notification' in window) || Notification.permission !== 'granted') return;
    try {
      const shown = new Notification(this.line(n), { body: n.preview || '', tag: n.notification_id });
      shown.onclick = () => {
        window.focus();
        shown.close();
        this.pick(n);
      };
    } catch {
      /* some browsers only notify from a service worker: the bell still has it */
    }
  }

  async askPermission() {
    if (!('Notification' in window)) return;
    try {
      await Notification.requestPermission();
    } catch {
      /* refused or unsupported */
    }
    this.render();
  }

  toggle(force) {
    this.open = typeof force === 'boolean' ? force : !this.open;
    if (this.open && !this.loaded) this.loadPage(null);
    this.render();
    if (this.open) (this.list.querySelector('button') || this.readAll).focus();
  }

  /** Marks `n` and every older one read, on the server and here. */
  async markRead(n) {
    if (!n) return;
    let answer = null;
    try {
      answer = await api.readNotifications(this.ctx.token(), n.notification_id);
    } catch (e) {
      return this.ctx.notify(`Could not mark notifications read. ${api.describe(e)}`);
    }
    const at = this.items.indexOf(n);
    let flipped = 0;
    for (const m of this.items.slice(at < 0 ? 0 : at)) {
      if (!m.read) flipped += 1;
      m.read = true;
    }
    const newerUnread = this.items.slice(0, Math.max(0, at)).filter((m) => !m.read).length;
    this.unread = at <= 0 ? 0 : Math.max(newerUnread, this.unread - flipped);
    // The server says how many are left unread (`{up_to, unread_notifications}`).
    if (answer && typeof answer.unread_notifications === 'number') this.unread = answer.unread_notifications;
    this.render();
  }

  /** Opening a notification: its room at its message; read when nothing newer is unread. */
  pick(n) {
    const at = this.items.indexOf(n);
    if (!n.read && this.items.slice(0, at).every((m) => m.read)) this.markRead(n);
    this.toggle(false);
    this.ctx.open(n);
  }

  render() {
    this.box.hidden = !this.available;
    if (!this.available) return;
    this.count.hidden = this.unread === 0;
    this.count.textContent = String(this.unread);
    this.count.dataset.unread = String(this.unread);
    this.bell.setAttribute('aria-label', this.unread ? `Notifications, ${this.unread} unread` : 'Notifications');
    this.bell.setAttribute('aria-expanded', String(this.open));
    this.panel.hidden = !this.open;
    if (!this.open) return;
    this.permission.hidden = !('Notification' in window) || Notification.permission !== 'default';
    this.readAll.disabled = !this.items.some((m) => !m.read);
    this.more.hidden = !this.cursor;
    const focused = this.list.contains(document.activeElement) ? document.activeElement.dataset.focusKey : null;
    this.list.replaceChildren(
      ...this.items.map((n) =>
        node(
          'li',
          { 'data-notification-id': n.notification_id, 'data-kind': n.kind, 'data-read': String(!!n.read) },
          node(
            'button',
            {
              type: 'button',
              class: `note${n.read ? '' : ' unread'}`,
              'data-focus-key': n.notification_id,
              onclick: () => this.pick(n),
            },
            node('span', { class: 'note-line', text: this.line(n) }),
            n.preview ? node('span', { class: 'note-preview', text: n.preview }) : null,
            node('time', { datetime: n.created_at, text: timeFormat.format(new Date(n.created_at)) }),
            n.read ? null : node('span', { class: 'sr-only', text: '(unread)' }),
          ),
        ),
      ),
    );
    if (!this.items.length) this.list.replaceChildren(node('li', { class: 'count', text: 'Nothing yet.' }));
    if (focused) {
      const again = this.list.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }
}
