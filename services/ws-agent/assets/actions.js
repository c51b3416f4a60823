// What a user does to the messages of the open room (contract section 7): reply, edit and
// delete (own messages; a higher role deletes others'), react and unreact, and jumping to the
// message a reply quotes (paging history back to it when needed). Edits, deletions and
// reactions go out as WebSocket frames; what they change comes back to everyone, this page
// included, as `message_updated`, which the conversation applies blindly (store.js).

import * as api from './api.js';
import { el, outranks } from './view.js';

const HIGHLIGHT_MS = 3000;
const JUMP_GIVE_UP_MS = 20000;

export class MessageUi {
  /**
   * `deps`: {app, render(), send(frame) -> bool, notify(text), announce(text), loadOlder(),
   * reply: ReplyBar, myRole(roomId), isDirect(roomId)}.
   */
  constructor(deps) {
    this.deps = deps;
    this.ui = {};
    this.fetching = new Set(); // "room:seq" of quoted messages being fetched
    this.focusNext = null;
    this.reset();
    const d = deps;
    this.act = {
      reply: (seq) => {
        d.reply.set(d.app.current, seq);
        d.render();
        el.input.focus();
      },
      edit: (seq) => {
        const m = this.conv() && this.conv().messages.get(seq);
        if (!m) return;
        Object.assign(this.ui, { editing: seq, editDraft: m.body, picker: null, confirmDelete: null });
        d.render();
      },
      draft: (text) => {
        this.ui.editDraft = text;
      },
      saveEdit: (seq, body) => this.saveEdit(seq, body),
      cancelEdit: (seq) => {
        this.ui.editing = null;
        this.focusNext = `edit:${seq}`;
        d.render();
      },
      askDelete: (seq) => {
        Object.assign(this.ui, { confirmDelete: seq, picker: null });
        this.focusNext = 'confirm:cancel';
        d.render();
      },
      confirmDelete: (seq) => {
        const roomId = d.app.current;
        if (!d.send({ type: 'delete', room_id: roomId, seq, ref: `delete:${roomId}:${seq}` })) {
          return d.notify('Not connected: the message was not deleted. Try again in a moment.');
        }
        this.ui.confirmDelete = null;
        d.render();
        el.scroller.focus();
      },
      cancelDelete: (seq) => {
        this.ui.confirmDelete = null;
        this.focusNext = `delete:${seq}`;
        d.render();
      },
      togglePicker: (seq) => {
        this.ui.picker = this.ui.picker === seq ? null : seq;
        if (this.ui.picker !== null) this.focusNext = 'picker';
        d.render();
      },
      closePicker: (seq) => {
        this.ui.picker = null;
        this.focusNext = `react:${seq}`;
        d.render();
      },
      toggleReaction: (seq, emoji, mine) => {
        const roomId = d.app.current;
        const type = mine ? 'unreact' : 'react';
        if (!d.send({ type, room_id: roomId, seq, emoji, ref: `${type}:${roomId}:${seq}` })) {
          return d.notify('Not connected: try again in a moment.');
        }
        if (this.ui.picker === seq) {
          this.ui.picker = null;
          this.focusNext = `react:${seq}`;
          d.render();
        }
      },
      jump: (seq) => this.jump(seq),
    };
  }

  conv() {
    const { app } = this.deps;
    return app.current ? app.convs.get(app.current) : null;
  }

  /** A room was opened (or closed): nothing is being edited, picked or jumped to. */
  reset() {
    clearTimeout(this.highlightTimer);
    this.ui = {
      editing: null,
      editDraft: '',
      picker: null,
      confirmDelete: null,
      highlight: null,
      jumpTo: null,
      jumpStarted: 0,
    };
  }

  saveEdit(seq, body) {
    const d = this.deps;
    const c = this.conv();
    const m = c && c.messages.get(seq);
    if (!m) return;
    if (!body.trim()) return d.notify('A message cannot be empty: delete it instead.');
    if (body !== m.body) {
      const roomId = c.roomId;
      if (!d.send({ type: 'edit', room_id: roomId, seq, body, ref: `edit:${roomId}:${seq}` })) {
        return d.notify('Not connected: your change was not saved. Try again in a moment.');
      }
    }
    this.ui.editing = null;
    this.focusNext = `edit:${seq}`;
    d.render();
  }

  /** Shows the message at `seq` of the open room, paging history back to it if needed. */
  jump(seq) {
    this.ui.jumpTo = seq;
    this.ui.jumpStarted = Date.now();
    this.deps.render();
  }

  /** What this user may do with message `m` of conversation `c`. */
  may(c, m) {
    const { app, myRole, isDirect } = this.deps;
    const me = app.session.user_id;
    if (m.deleted) return { edit: false, delete: false };
    if (m.sender_id === me) return { edit: true, delete: true };
    const sender = c.members.get(m.sender_id);
    return { edit: false, delete: !isDirect(c.roomId) && outranks(myRole(c.roomId), sender ? sender.role : 'member') };
  }

  /** A user's name from the member list (or the receipts), else the id. */
  name(c, userId) {
    const { app } = this.deps;
    if (userId === app.session.user_id) return app.session.username;
    const m = c.members.get(userId) || c.receipts.get(userId);
    return m ? m.username : userId;
  }

  /** The context renderMessages needs for conversation `c`; `newAfter`: the "New messages" line. */
  ctx(c, newAfter) {
    const { app } = this.deps;
    return {
      me: { user_id: app.session.user_id, username: app.session.username },
      outbox: app.outbox,
      ui: this.ui,
      newAfter,
      may: (m) => this.may(c, m),
      name: (id) => this.name(c, id),
      act: this.act,
    };
  }

  /** After the log was rendered: fetch quoted messages not loaded, go on with a jump, focus. */
  afterRender(c, target) {
    if (!c) return;
    this.fetchQuoted(c);
    if (this.focusNext) {
      const key = this.focusNext;
      this.focusNext = null;
      const n =
        key === 'picker'
          ? el.messages.querySelector('.picker button')
          : key === 'confirm:cancel'
            ? el.messages.querySelector('.confirm [data-confirm="cancel"]')
            : el.messages.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
      if (n) n.focus();
    }
    const seq = this.ui.jumpTo;
    if (!seq) return;
    if (target) {
      this.ui.jumpTo = null;
      this.ui.highlight = seq;
      clearTimeout(this.highlightTimer);
      this.highlightTimer = setTimeout(() => {
        if (this.ui.highlight === seq) {
          this.ui.highlight = null;
          this.deps.render();
        }
      }, HIGHLIGHT_MS);
      this.deps.render();
      const shown = el.messages.querySelector(`li[data-seq="${seq}"]`);
      if (shown) {
        shown.scrollIntoView({ block: 'center' });
        shown.setAttribute('tabindex', '-1');
        shown.focus({ preventScroll: true });
      }
      return;
    }
    const oldest = c.oldestSeq();
    const gone = (oldest !== null && seq >= oldest && seq <= c.newestSeq()) || (!c.hasMore && oldest !== null && seq < oldest);
    if (gone || Date.now() - this.ui.jumpStarted > JUMP_GIVE_UP_MS) {
      this.ui.jumpTo = null;
      this.deps.notify('That message is no longer in the history.', 'warn', 5000);
      return;
    }
    if (oldest !== null && seq < oldest) this.deps.loadOlder(); // its answer renders again
  }

  /** Quoted messages older than what is loaded are read over HTTP, one request each. */
  fetchQuoted(c) {
    const { app } = this.deps;
    for (const m of c.messages.values()) {
      const seq = m.reply_to;
      if (!seq || c.find(seq)) continue;
      const key = `${c.roomId}:${seq}`;
      if (this.fetching.has(key)) continue;
      this.fetching.add(key);
      // The parent and the message after it (there is one: the reply).
      api
        .messages(app.session.token, c.roomId, { after: seq - 1, limit: 2 })
        .then((page) => {
          const found = page.messages.find((x) => x.seq === seq);
          if (found && !c.messages.has(seq)) {
            c.quoted.set(seq, found);
            this.deps.render();
          }
        })
        .catch(() => {
          /* shown as "an earlier message" */
        });
    }
  }

  /** A `message_updated` applied to `c`: close what acted on a message that is now deleted. */
  updated(c, message) {
    if (!message || !message.deleted || c.roomId !== this.deps.app.current) return;
    if (this.ui.editing === message.seq) this.ui.editing = null;
    if (this.ui.picker === message.seq) this.ui.picker = null;
    if (this.ui.confirmDelete === message.seq) this.ui.confirmDelete = null;
    if (this.deps.reply.seqFor(c.roomId) === message.seq) {
      this.deps.reply.clear();
      this.deps.notify('The message you were replying to was deleted.', 'warn', 6000);
    }
  }

  /** An `error` answering one of our frames: true when it was ours. */
  onError(ref, f) {
    const kind = ref.split(':')[0];
    const what = { edit: 'save your edit', delete: 'delete the message', react: 'add the reaction', unreact: 'remove the reaction' }[kind];
    if (!what) return false;
    const why = f.code === 'conflict' ? 'the message was deleted or has too many reactions' : api.describe({ code: f.code, retryAfterMs: f.retry_after_ms, message: f.message });
    this.deps.notify(`Could not ${what}: ${why}`);
    return true;
  }
}
