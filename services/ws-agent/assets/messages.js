// The conversation log (contract sections 4, 7 and 8). Each message is first turned into a plain
// view model (what it shows and what this user may do with it), then into a node; a node is
// rebuilt only when its model changed, so a new message is one inserted node (the aria-live log
// announces only what is new), and scrolling keeps its place when older pages are prepended.
//
// What a message shows: sender, time, "(edited)", a quote of the message it answers (clickable:
// the log jumps to it), its body with the mentions marked (yours stand out), or a muted
// "message deleted" in its place; reaction chips (yours pressed, who reacted on hover); actions
// (reply, react, edit and delete when allowed); "Seen by …" under the newest message each other
// member has read; and a "New messages" line (on top of the first message after the read marker
// the room had when opened); its files (section 9, attachments.js), none once deleted.

import { attachmentsNode } from './attachments.js';
import { el, node } from './view.js';

/** The reactions offered by the picker, besides those already on the message. */
export const EMOJI = ['👍', '👎', '😂', '😍', '🎉', '😮', '😢', '🙏', '🔥', '👀', '✅', '🚀'];
const QUOTE_CHARS = 80;
const NAME_CHAR = /[A-Za-z0-9_.-]/;
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

/**
 * The body split into text and mentions, by the rule of contract section 7: `@` at the start or
 * after a character that cannot be in a username, the longest run of username characters after
 * it less any trailing `.` or `-`. `names` maps lowercased usernames of the mentioned members to
 * whether that is the reader. Returns strings and {mention, me} parts.
 */
export function mentionParts(body, names) {
  const parts = [];
  let last = 0;
  for (let i = 0; i < body.length; i += 1) {
    if (body[i] !== '@' || (i > 0 && NAME_CHAR.test(body[i - 1]))) continue;
    let end = i + 1;
    while (end < body.length && NAME_CHAR.test(body[end])) end += 1;
    while (end > i + 1 && (body[end - 1] === '.' || body[end - 1] === '-')) end -= 1;
    const who = names.get(body.slice(i + 1, end).toLowerCase());
    if (who === undefined) continue;
    if (i > last) parts.push(body.slice(last, i));
    parts.push({ mention: body.slice(i, end), me: who });
    last = end;
    i = end - 1;
  }
  if (last < body.length) parts.push(body.slice(last));
  return parts;
}

/** The start of a message's text for a quote (or what stands for it). */
export function quoteOf(m) {
  if (!m) return { who: '…', text: 'an earlier message' };
  if (m.deleted) return { who: m.sender_name, text: 'deleted message', deleted: true };
  const flat = m.body.replace(/\s+/g, ' ').trim();
  return { who: m.sender_name, text: flat.length > QUOTE_CHARS ? `${flat.slice(0, QUOTE_CHARS)}…` : flat };
}

/**
 * The view model of one message. `ctx`: {me, conv, pending, may(m) -> {edit, delete}, ui,
 * name(userId)}; `ui` is the log's state {editing, editDraft, picker, confirmDelete, highlight}.
 */
function model(m, ctx, seenBy) {
  const { me, ui } = ctx;
  const mine = m.sender_id === me.user_id;
  const pending = ctx.pending;
  const vm = {
    seq: pending ? null : m.seq,
    clientMsgId: m.client_msg_id,
    who: m.sender_name,
    sentAt: m.sent_at || null,
    mine,
    pending: pending ? { state: pending.state, error: pending.error } : null,
    deleted: !!m.deleted,
    edited: m.edited_at || null,
    body: m.deleted ? '' : m.body,
    mentionsMe: !m.deleted && (m.mentions || []).includes(me.user_id),
    files: m.deleted ? [] : (m.attachments || []).map((f) => ctx.files.model(f)),
    names: [],
    quote: null,
    reactions: [],
    may: { reply: false, react: false, edit: false, delete: false },
    editing: false,
    draft: '',
    picker: false,
    confirmDelete: false,
    highlight: !pending && ui.highlight === m.seq,
    seenBy,
    newLine: false,
  };
  if (m.reply_to) vm.quote = { seq: m.reply_to, ...quoteOf(ctx.conv.find(m.reply_to)) };
  if (vm.deleted) return vm;
  for (const id of m.mentions || []) vm.names.push([ctx.name(id).toLowerCase(), id === me.user_id]);
  vm.reactions = (m.reactions || []).map((r) => ({
    emoji: r.emoji,
    count: r.count,
    mine: (r.user_ids || []).includes(me.user_id),
    who: (r.user_ids || []).map(ctx.name),
  }));
  if (!pending) {
    const may = ctx.may(m);
    vm.may = { reply: true, react: true, edit: may.edit, delete: may.delete };
    vm.editing = may.edit && ui.editing === m.seq;
    vm.draft = vm.editing ? ui.editDraft : '';
    vm.picker = ui.picker === m.seq;
    vm.confirmDelete = may.delete && ui.confirmDelete === m.seq;
  }
  return vm;
}

function bodyNode(vm) {
  if (vm.deleted) return node('p', { class: 'body deleted', text: 'message deleted' });
  const names = new Map(vm.names);
  const parts = names.size ? mentionParts(vm.body, names) : [vm.body];
  return node(
    'p',
    { class: 'body' },
    ...parts.map((p) =>
      typeof p === 'string'
        ? document.createTextNode(p)
        : node('span', { class: `mention${p.me ? ' me' : ''}`, 'data-mention': p.mention.slice(1), text: p.mention }),
    ),
  );
}

function editNode(vm, act) {
  const input = node('textarea', {
    class: 'edit-input',
    rows: '2',
    maxlength: '4000',
    'aria-label': 'Edit your message',
    'data-focus-key': `editing:${vm.seq}`,
    'aria-describedby': `edit-help-${vm.seq}`,
  });
  input.value = vm.draft;
  input.addEventListener('input', () => act.draft(input.value));
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      act.saveEdit(vm.seq, input.value);
    } else if (ev.key === 'Escape') {
      ev.preventDefault();
      act.cancelEdit(vm.seq);
    }
  });
  return node(
    'div',
    { class: 'edit-box' },
    input,
    node('small', { id: `edit-help-${vm.seq}`, text: 'Enter saves, Escape cancels, Shift+Enter adds a line.' }),
    node(
      'div',
      { class: 'row-actions' },
      node('button', { type: 'button', class: 'small', 'data-edit': 'save', text: 'Save', onclick: () => act.saveEdit(vm.seq, input.value) }),
      node('button', { type: 'button', class: 'small secondary', 'data-edit': 'cancel', text: 'Cancel', onclick: () => act.cancelEdit(vm.seq) }),
    ),
  );
}

function reactionsNode(vm, act) {
  if (!vm.reactions.length) return null;
  return node(
    'div',
    { class: 'reactions', role: 'group', 'aria-label': 'Reactions' },
    ...vm.reactions.map((r) => {
      const who = r.who.join(', ');
      return node('button', {
        type: 'button',
        class: `chip${r.mine ? ' mine' : ''}`,
        'aria-pressed': String(r.mine),
        'data-emoji': r.emoji,
        'data-count': String(r.count),
        'data-focus-key': `chip:${vm.seq}:${r.emoji}`,
        title: `${who} reacted with ${r.emoji}`,
        'aria-label': `${r.emoji} ${r.count}: ${who}. ${r.mine ? 'Remove your reaction' : 'React too'}`,
        text: `${r.emoji} ${r.count}`,
        onclick: () => act.toggleReaction(vm.seq, r.emoji, r.mine),
      });
    }),
  );
}

function pickerNode(vm, act) {
  const on = new Set(vm.reactions.filter((r) => r.mine).map((r) => r.emoji));
  const offered = [...EMOJI, ...vm.reactions.map((r) => r.emoji).filter((e) => !EMOJI.includes(e))];
  const box = node(
    'div',
    { class: 'picker', role: 'group', 'aria-label': 'Pick a reaction' },
    ...offered.map((e) =>
      node('button', {
        type: 'button',
        class: `emoji${on.has(e) ? ' mine' : ''}`,
        'aria-pressed': String(on.has(e)),
        'data-pick-emoji': e,
        'data-focus-key': `pick:${vm.seq}:${e}`,
        'aria-label': on.has(e) ? `Remove ${e}` : `React with ${e}`,
        text: e,
        onclick: () => act.toggleReaction(vm.seq, e, on.has(e)),
      }),
    ),
  );
  box.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') act.closePicker(vm.seq);
  });
  return box;
}

function actionsNode(vm, act) {
  if (!vm.may.reply || vm.editing) return null;
  const b = (name, text, label, onclick, extra = {}) =>
    node('button', {
      type: 'button',
      class: `small secondary${name === 'delete' ? ' danger-text' : ''}`,
      'data-msg-action': name,
      'data-focus-key': `${name}:${vm.seq}`,
      'aria-label': `${label} ${vm.who}'s message`,
      text,
      onclick,
      ...extra,
    });
  return node(
    'div',
    { class: 'msg-actions' },
    b('reply', 'Reply', 'Reply to', () => act.reply(vm.seq)),
    b('react', 'React', 'React to', () => act.togglePicker(vm.seq), { 'aria-expanded': String(vm.picker) }),
    vm.may.edit ? b('edit', 'Edit', 'Edit', () => act.edit(vm.seq)) : null,
    vm.may.delete ? b('delete', 'Delete', 'Delete', () => act.askDelete(vm.seq)) : null,
  );
}

function confirmNode(vm, act) {
  const text = vm.mine ? 'Delete this message for everyone?' : `Delete ${vm.who}'s message for everyone?`;
  const box = node(
    'p',
    { class: 'confirm', role: 'group', 'aria-label': 'Confirm deletion' },
    node('span', { id: `del-warn-${vm.seq}`, text }),
    node('button', {
      type: 'button',
      class: 'small danger',
      'data-confirm': 'delete',
      'aria-describedby': `del-warn-${vm.seq}`,
      text: 'Delete',
      onclick: () => act.confirmDelete(vm.seq),
    }),
    node('button', { type: 'button', class: 'small secondary', 'data-confirm': 'cancel', text: 'Cancel', onclick: () => act.cancelDelete(vm.seq) }),
  );
  box.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') act.cancelDelete(vm.seq);
  });
  return box;
}

function messageNode(vm, act, files) {
  const time = vm.sentAt ? timeFormat.format(new Date(vm.sentAt)) : '';
  let state = null;
  if (vm.pending) {
    state = node('span', {
      class: 'state',
      text: vm.pending.state === 'failed' ? `Not sent: ${vm.pending.error}` : 'Sending…',
    });
  }
  const classes = ['msg'];
  if (vm.mine) classes.push('mine');
  if (vm.pending) classes.push(vm.pending.state);
  if (vm.deleted) classes.push('deleted');
  if (vm.mentionsMe) classes.push('mentions-me');
  if (vm.highlight) classes.push('highlight');
  const quote = vm.quote
    ? node(
        'button',
        {
          type: 'button',
          class: `quote${vm.quote.deleted ? ' deleted' : ''}`,
          'data-reply-to': String(vm.quote.seq),
          'aria-label': `In reply to ${vm.quote.who}: ${vm.quote.text}. Show that message`,
          onclick: () => act.jump(vm.quote.seq),
        },
        node('span', { class: 'who', text: vm.quote.who }),
        node('span', { class: 'quote-text', text: vm.quote.text }),
      )
    : null;
  return node(
    'li',
    {
      class: classes.join(' '),
      'data-seq': vm.seq === null ? null : String(vm.seq),
      'data-client-msg-id': vm.clientMsgId,
      'data-mentions-me': vm.mentionsMe ? 'true' : null,
      'data-new': vm.newLine ? 'true' : null,
    },
    // The read marker the room had when opened: what follows is new.
    vm.newLine ? node('div', { class: 'new-line', role: 'separator', 'aria-label': 'New messages' }, node('span', { text: 'New messages' })) : null,
    node(
      'div',
      { class: 'meta' },
      node('span', { class: 'who', text: vm.who }),
      time ? node('time', { datetime: vm.sentAt, text: time }) : null,
      vm.edited && !vm.deleted ? node('span', { class: 'edited', title: `edited ${vm.edited}`, text: '(edited)' }) : null,
      vm.mentionsMe ? node('span', { class: 'sr-only', text: '(mentions you)' }) : null,
      state,
    ),
    quote,
    vm.editing ? editNode(vm, act) : bodyNode(vm),
    attachmentsNode(vm.files, files),
    reactionsNode(vm, act),
    actionsNode(vm, act),
    vm.picker ? pickerNode(vm, act) : null,
    vm.confirmDelete ? confirmNode(vm, act) : null,
    vm.seenBy.length
      ? node('p', { class: 'seen', 'data-seen-by': vm.seenBy.join(','), text: `Seen by ${vm.seenBy.join(', ')}` })
      : null,
  );
}

/** user_id of each other member -> the newest loaded seq they have read (receipts, section 8). */
function seenMap(conv, me) {
  const bySeq = new Map();
  if (!conv.receipts.size) return bySeq;
  const seqs = [...conv.messages.keys()].sort((a, b) => a - b);
  for (const [userId, r] of conv.receipts) {
    if (userId === me.user_id) continue;
    let at = null;
    for (const s of seqs) {
      if (s > r.seq) break;
      at = s;
    }
    if (at === null || conv.messages.get(at).sender_id === userId) continue;
    if (!bySeq.has(at)) bySeq.set(at, []);
    bySeq.get(at).push(r.username);
  }
  for (const names of bySeq.values()) names.sort((a, b) => a.localeCompare(b));
  return bySeq;
}

const rendered = new Map(); // key -> {node, sig}

/**
 * Renders the open conversation: confirmed messages by seq, then this room's pending sends.
 * `ctx`: {me, outbox, ui, files (a FileView), newAfter and newUpTo (the read marker and the newest seq when the
 * room was opened: the line goes before the first message of others between them, or nowhere
 * when newAfter is null), may, name, act}. Returns the node of the message at `ui.jumpTo` when it is shown.
 */
export function renderMessages(conv, ctx) {
  if (!conv) {
    resetMessages();
    el.olderBtn.hidden = true;
    return null;
  }
  const { me, outbox, act } = ctx;
  const sc = el.scroller;
  const fromBottom = sc.scrollHeight - sc.scrollTop - sc.clientHeight;
  const stick = fromBottom < 60;
  const seen = seenMap(conv, me);
  const items = [];
  let lineDone = ctx.newAfter === null || ctx.newAfter === undefined;
  for (const m of conv.sorted()) {
    const vm = model(m, { ...ctx, conv, pending: null }, seen.get(m.seq) || []);
    if (!lineDone && m.seq > ctx.newAfter && m.seq <= (ctx.newUpTo || Infinity) && m.sender_id !== me.user_id) {
      lineDone = true;
      vm.newLine = true;
    }
    items.push({ key: `s${m.seq}`, vm });
  }
  for (const e of outbox.forRoom(conv.roomId)) {
    const m = { ...e, sender_name: me.username, sender_id: me.user_id, sent_at: null };
    items.push({ key: `p${e.client_msg_id}`, vm: model(m, { ...ctx, conv, pending: e }, []) });
  }
  const wanted = new Set(items.map((i) => i.key));
  for (const [key, r] of rendered) {
    if (!wanted.has(key)) {
      r.node.remove();
      rendered.delete(key);
    }
  }
  const focusKey = el.messages.contains(document.activeElement) ? document.activeElement.dataset.focusKey : null;
  let editFocus = null;
  let cursor = el.messages.firstChild;
  for (const item of items) {
    // The draft being typed is not part of what the node shows (the textarea holds it).
    const sig = JSON.stringify({ ...item.vm, draft: null });
    let r = rendered.get(item.key);
    if (!r || r.sig !== sig) {
      const fresh = messageNode(item.vm, act, ctx.files);
      if (item.vm.editing && !(r && r.editing)) editFocus = fresh;
      if (r) {
        if (r.node === cursor) cursor = fresh;
        r.node.replaceWith(fresh);
      }
      r = { node: fresh, sig, editing: item.vm.editing };
      rendered.set(item.key, r);
    }
    if (r.node !== cursor) el.messages.insertBefore(r.node, cursor);
    else cursor = cursor.nextSibling;
  }
  el.olderBtn.hidden = !conv.hasMore || conv.messages.size === 0;
  if (stick) sc.scrollTop = sc.scrollHeight;
  else sc.scrollTop = sc.scrollHeight - sc.clientHeight - fromBottom;
  if (editFocus) {
    const input = editFocus.querySelector('.edit-input');
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  } else if (focusKey && !el.messages.contains(document.activeElement)) {
    const again = el.messages.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
    if (again) again.focus();
  }
  const target = ctx.ui.jumpTo ? rendered.get(`s${ctx.ui.jumpTo}`) : null;
  return target ? target.node : null;
}

export function resetMessages() {
  el.messages.replaceChildren();
  rendered.clear();
}
