// The composer's helpers: the message being answered (shown above the box with a cancel), and
// `@` completion from the open room's members (arrow keys move, Enter or Tab picks, Escape
// closes), a combobox in the ARIA sense: the textarea owns a listbox of options.

import { node } from './view.js';
import { quoteOf } from './messages.js';

const $ = (id) => document.getElementById(id);
const MAX_OPTIONS = 8;
/** `@` and the start of a username right before the caret; the `@` starts the text or follows
 * a character that cannot be in a username (contract section 7). */
const TRIGGER = /(^|[^A-Za-z0-9_.-])@([A-Za-z0-9_.-]{0,32})$/;

export class ReplyBar {
  constructor(onCancel) {
    this.bar = $('reply-bar');
    this.who = $('reply-who');
    this.text = $('reply-text');
    this.target = null; // {room_id, seq}
    $('reply-cancel').addEventListener('click', () => {
      this.clear();
      onCancel();
    });
  }

  set(roomId, seq) {
    this.target = { room_id: roomId, seq };
  }

  clear() {
    this.target = null;
    this.bar.hidden = true;
  }

  /** The seq answered in `roomId`, or null. */
  seqFor(roomId) {
    return this.target && this.target.room_id === roomId ? this.target.seq : null;
  }

  /** Shows the quoted message (`find(seq)` looks it up) when the open room is the one answered. */
  render(roomId, find) {
    const seq = this.seqFor(roomId);
    this.bar.hidden = seq === null;
    if (seq === null) return;
    const q = quoteOf(find(seq));
    this.bar.dataset.replyTo = String(seq);
    this.who.textContent = q.who;
    this.text.textContent = q.text;
  }
}

export class MentionComplete {
  /** `members()` answers the open room's members as [{user_id, username}], the user excluded. */
  constructor(input, members) {
    this.input = input;
    this.members = members;
    this.list = $('mention-list');
    this.options = [];
    this.active = 0;
    this.start = -1; // index of the `@` being completed
    input.setAttribute('role', 'combobox');
    input.setAttribute('aria-autocomplete', 'list');
    input.setAttribute('aria-controls', 'mention-list');
    input.setAttribute('aria-expanded', 'false');
    input.addEventListener('input', () => this.update());
    input.addEventListener('click', () => this.update());
    input.addEventListener('blur', () => setTimeout(() => this.close(), 150));
  }

  get open() {
    return this.options.length > 0;
  }

  update() {
    const caret = this.input.selectionStart;
    const before = this.input.value.slice(0, caret);
    const m = TRIGGER.exec(before);
    if (!m || this.input.selectionEnd !== caret) return this.close();
    const prefix = m[2].toLowerCase();
    this.start = caret - m[2].length - 1;
    const found = this.members()
      .filter((u) => u.username.toLowerCase().startsWith(prefix))
      .sort((a, b) => a.username.localeCompare(b.username))
      .slice(0, MAX_OPTIONS);
    if (!found.length) return this.close();
    const keep = this.options[this.active];
    this.options = found;
    const again = keep ? found.findIndex((u) => u.user_id === keep.user_id) : -1;
    this.active = again >= 0 ? again : 0;
    this.render();
  }

  render() {
    this.list.replaceChildren(
      ...this.options.map((u, i) => {
        const li = node('li', {
          id: `mention-opt-${i}`,
          role: 'option',
          'aria-selected': String(i === this.active),
          'data-username': u.username,
          class: i === this.active ? 'active' : '',
          text: `@${u.username}`,
        });
        // mousedown, not click: the textarea keeps the focus (and the caret).
        li.addEventListener('mousedown', (ev) => {
          ev.preventDefault();
          this.pick(i);
        });
        return li;
      }),
    );
    this.list.hidden = false;
    this.input.setAttribute('aria-expanded', 'true');
    this.input.setAttribute('aria-activedescendant', `mention-opt-${this.active}`);
  }

  close() {
    this.options = [];
    this.list.hidden = true;
    this.list.replaceChildren();
    this.input.setAttribute('aria-expanded', 'false');
    this.input.removeAttribute('aria-activedescendant');
  }

  pick(i) {
    const u = this.options[i];
    if (!u) return;
    const value = this.input.value;
    const caret = this.input.selectionStart;
    const insert = `@${u.username} `;
    this.input.value = value.slice(0, this.start) + insert + value.slice(caret);
    const at = this.start + insert.length;
    this.input.setSelectionRange(at, at);
    this.close();
    this.input.dispatchEvent(new Event('input'));
  }

  /** The composer's keydown: true when the completion used the key. */
  onKey(ev) {
    if (!this.open || ev.isComposing) return false;
    const n = this.options.length;
    switch (ev.key) {
      case 'ArrowDown':
        this.active = (this.active + 1) % n;
        break;
      case 'ArrowUp':
        this.active = (this.active - 1 + n) % n;
        break;
      case 'Enter':
      case 'Tab':
        if (ev.shiftKey) return false;
        ev.preventDefault();
        this.pick(this.active);
        return true;
      case 'Escape':
        ev.preventDefault();
        this.close();
        return true;
      default:
        return false;
    }
    ev.preventDefault();
    this.render();
    return true;
  }
}
