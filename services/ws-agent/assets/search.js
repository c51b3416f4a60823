// Message search (contract section 9): the box in the top bar asks
// `GET /api/v1/search/messages?q=` (with `room_id` when "this room only" is ticked) and lists the
// results, newest first, in a panel under it: the room, the sender, the time and the text around
// the first match with every matched word marked. "More results" follows `next_cursor`. Picking
// a result opens its room at the message (paging history back to it, as a reply's quote does).
// Words are matched the way the server matches them, as whole words ignoring case and
// diacritics, so what is marked is what was found. Escape or a click elsewhere closes the panel.

import * as api from './api.js';
import { node } from './view.js';

const $ = (id) => document.getElementById(id);
const PAGE = 20;
/** The text shown of a long message: this many characters, around the first match. */
const SNIPPET_CHARS = 240;
const SNIPPET_BEFORE = 60;
/** A run of letters, digits and combining marks: a word. */
const WORD = /[\p{L}\p{N}\p{M}]+/gu;
const timeFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

/** Case and diacritics folded away, as the server compares words. */
export const fold = (s) => s.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();

/** The query's words, folded. */
export function queryWords(q) {
  return new Set((q.match(WORD) || []).map(fold).filter(Boolean));
}

/**
 * `body` as text and marked parts: [{text, hit}], cut to a window around the first hit (with
 * "…" where text was left out).
 */
export function highlight(body, words) {
  const flat = body.replace(/\s+/g, ' ').trim();
  const hits = [];
  for (const m of flat.matchAll(WORD)) if (words.has(fold(m[0]))) hits.push([m.index, m.index + m[0].length]);
  let start = 0;
  if (flat.length > SNIPPET_CHARS && hits.length) start = Math.max(0, Math.min(hits[0][0] - SNIPPET_BEFORE, flat.length - SNIPPET_CHARS));
  const end = Math.min(flat.length, start + SNIPPET_CHARS);
  const parts = [];
  if (start > 0) parts.push({ text: '…', hit: false });
  let at = start;
  for (const [a, b] of hits) {
    if (b <= start || a >= end) continue;
    if (a > at) parts.push({ text: flat.slice(at, a), hit: false });
    parts.push({ text: flat.slice(Math.max(a, at), Math.min(b, end)), hit: true });
    at = Math.min(b, end);
  }
  if (at < end) parts.push({ text: flat.slice(at, end), hit: false });
  if (end < flat.length) parts.push({ text: '…', hit: false });
  return parts;
}

export class Search {
  /** `deps`: {token(), current() -> the open room id, roomName(roomId), open(result)}. */
  constructor(deps) {
    this.deps = deps;
    this.form = $('search-form');
    this.input = $('search-q');
    this.roomOnly = $('search-room');
    this.box = $('search-box');
    this.panel = $('search-panel');
    this.list = $('search-list');
    this.status = $('search-status');
    this.more = $('search-more');
    this.reset();
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.run();
    });
    this.roomOnly.addEventListener('change', () => this.input.value.trim() && this.run());
    this.more.addEventListener('click', () => this.page());
    document.addEventListener('pointerdown', (ev) => {
      if (this.open && !this.box.contains(ev.target)) this.show(false);
    });
    this.box.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && this.open) {
        this.show(false);
        this.input.focus();
      }
    });
  }

  reset() {
    /** room_id -> name, for rooms of results the page does not know yet (joined elsewhere). */
    this.names = new Map();
    this.asked = 0; // counts queries: only the latest one's answers are shown
    this.query = null; // {q, roomId, words}
    this.results = [];
    this.cursor = null;
    this.error = null;
    this.loading = false;
    this.open = false;
    this.panel.hidden = true;
    this.input.value = '';
  }

  /** A new query from the box. */
  run() {
    const q = this.input.value.trim();
    if (!q) return this.show(false);
    const roomId = this.roomOnly.checked ? this.deps.current() : null;
    this.query = { q, roomId, words: queryWords(q) };
    this.results = [];
    this.cursor = null;
    this.show(true);
    this.page();
  }

  async page() {
    const query = this.query;
    if (!query) return;
    const mine = ++this.asked;
    this.loading = true;
    this.error = null;
    this.render();
    try {
      const reply = await api.searchMessages(this.deps.token(), query.q, { roomId: query.roomId, before: this.cursor, limit: PAGE });
      if (mine !== this.asked) return;
      const seen = new Set(this.results.map((r) => `${r.room_id}:${r.seq}`));
      for (const r of reply.results || []) {
        if (r.message && !r.message.deleted && !seen.has(`${r.room_id}:${r.seq}`)) this.results.push(r);
      }
      this.cursor = reply.next_cursor || null;
    } catch (e) {
      if (mine !== this.asked) return;
      this.error = e.status === 404 && e.code === 'not_found' && !query.roomId ? 'Search is not available on this server.' : api.describe(e);
    }
    this.loading = false;
    this.render();
  }

  show(open) {
    this.open = open;
    if (!open) this.asked += 1; // answers still on their way are not shown
    this.render();
  }

  pick(r) {
    this.show(false);
    this.deps.open(r);
  }

  render() {
    this.panel.hidden = !this.open;
    if (!this.open || !this.query) return;
    const { q, roomId } = this.query;
    const where = roomId ? ` in ${this.deps.roomName(roomId) || 'this room'}` : '';
    const n = this.results.length;
    this.status.textContent = this.loading
      ? `Searching for “${q}”${where}…`
      : this.error
        ? `Could not search: ${this.error}`
        : n
          ? `${n}${this.cursor ? '+' : ''} message${n === 1 ? '' : 's'} found for “${q}”${where}.`
          : `No message found for “${q}”${where}.`;
    this.status.classList.toggle('error', !!this.error);
    this.more.hidden = this.loading || !this.cursor;
    const focused = this.list.contains(document.activeElement) ? document.activeElement.dataset.focusKey : null;
    this.list.replaceChildren(...this.results.map((r) => this.item(r)));
    if (focused) {
      const again = this.list.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  /** The room's name: the page's, else read once over HTTP (the result renders again). */
  roomName(roomId) {
    const known = this.deps.roomName(roomId);
    if (known) return known;
    if (!this.names.has(roomId)) {
      this.names.set(roomId, null);
      api
        .getRoom(this.deps.token(), roomId)
        .then((room) => {
          this.names.set(roomId, room.name);
          this.render();
        })
        .catch(() => {
          /* shown as "a room" */
        });
    }
    return this.names.get(roomId);
  }

  item(r) {
    const m = r.message;
    const room = this.roomName(r.room_id) || 'a room';
    const text = m.body || (m.attachments || []).map((f) => f.name).join(', ');
    return node(
      'li',
      { 'data-room-id': r.room_id, 'data-seq': String(r.seq) },
      node(
        'button',
        {
          type: 'button',
          class: 'hit',
          'data-focus-key': `hit:${r.room_id}:${r.seq}`,
          onclick: () => this.pick(r),
        },
        node(
          'span',
          { class: 'hit-head' },
          node('span', { class: 'hit-room', text: room }),
          node('span', { class: 'who', text: m.sender_name }),
          m.sent_at ? node('time', { datetime: m.sent_at, text: timeFormat.format(new Date(m.sent_at)) }) : null,
        ),
        node(
          'span',
          { class: 'hit-text' },
          ...highlight(text, this.query.words).map((p) => (p.hit ? node('mark', { text: p.text }) : document.createTextNode(p.text))),
        ),
        (m.attachments || []).length ? node('span', { class: 'hit-files', text: `📎 ${m.attachments.length} file${m.attachments.length === 1 ? '' : 's'}` }) : null,
      ),
    );
  }
}
