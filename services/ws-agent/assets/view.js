// DOM rendering. Messages are reconciled by key (seq, or client_msg_id while pending), so a new
// message is one inserted node: the aria-live log announces only what is new and scrolling
// keeps its place when older pages are prepended.

const $ = (id) => document.getElementById(id);

export const el = {
  conn: $('conn'),
  notice: $('notice'),
  noticeText: $('notice-text'),
  authView: $('auth-view'),
  chatView: $('chat-view'),
  whoami: $('whoami'),
  meName: $('me-name'),
  myRooms: $('my-rooms'),
  otherRooms: $('other-rooms'),
  roomTitle: $('room-title'),
  roomTopic: $('room-topic'),
  leaveBtn: $('leave-btn'),
  scroller: $('scroller'),
  olderBtn: $('older-btn'),
  empty: $('empty'),
  messages: $('messages'),
  typing: $('typing'),
  composer: $('composer'),
  input: $('composer-input'),
  memberList: $('member-list'),
  authError: $('auth-error'),
};

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

function node(tag, props = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') n.className = v;
    else if (k === 'text') n.textContent = v;
    else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) n.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c) n.append(c);
  return n;
}

let noticeTimer = null;
/** Shows a message in the banner; `kind` is 'error' or 'warn'; `ms` hides it after a while. */
export function notify(text, kind = 'error', ms = 8000) {
  el.noticeText.textContent = text;
  el.notice.classList.toggle('warn', kind === 'warn');
  el.notice.hidden = false;
  clearTimeout(noticeTimer);
  if (ms) noticeTimer = setTimeout(() => (el.notice.hidden = true), ms);
}
$('notice-close').addEventListener('click', () => (el.notice.hidden = true));

export function setConnection(state, text) {
  el.conn.textContent = text;
  el.conn.className = `conn ${state}`;
  el.conn.dataset.state = state;
}

export function showAuth(show) {
  el.authView.hidden = !show;
  el.chatView.hidden = show;
  el.whoami.hidden = show;
}

/** Room lists: `mine` and `others` are Room objects; `current` is the open room id. */
export function renderRooms(mine, others, current, actions) {
  el.myRooms.replaceChildren(
    ...mine.map((r) =>
      node(
        'li',
        {},
        node('button', {
          type: 'button',
          class: 'open',
          'aria-current': r.room_id === current ? 'true' : 'false',
          'data-room': r.room_id,
          text: r.name,
          title: r.topic || r.name,
          onclick: () => actions.open(r.room_id),
        }),
        r.unread
          ? node('span', { class: 'badge', text: String(r.unread), 'aria-label': `${r.unread} unread` })
          : null,
      ),
    ),
  );
  if (!mine.length) el.myRooms.replaceChildren(node('li', { class: 'count', text: 'None yet.' }));
  el.otherRooms.replaceChildren(
    ...others.map((r) =>
      node(
        'li',
        {},
        node('span', { class: 'open', text: r.name, title: r.topic || r.name }),
        node('span', { class: 'count', text: `${r.member_count} ✦` }),
        node('button', {
          type: 'button',
          class: 'secondary',
          'data-join': r.room_id,
          'aria-label': `Join ${r.name}`,
          text: 'Join',
          onclick: () => actions.join(r.room_id),
        }),
      ),
    ),
  );
  if (!others.length) el.otherRooms.replaceChildren(node('li', { class: 'count', text: 'No other rooms.' }));
}

export function renderRoomHeader(room) {
  el.roomTitle.textContent = room ? room.name : 'No room open';
  el.roomTopic.textContent = room ? room.topic : '';
  el.leaveBtn.hidden = !room;
  el.composer.hidden = !room;
  el.empty.hidden = !!room;
}

function messageNode(m, mine, pending) {
  const time = m.sent_at ? timeFormat.format(new Date(m.sent_at)) : '';
  let state = null;
  if (pending) {
    state = node('span', {
      class: 'state',
      text: pending.state === 'failed' ? `Not sent: ${pending.error}` : 'Sending…',
    });
  }
  const li = node(
    'li',
    {
      class: `msg${mine ? ' mine' : ''}${pending ? ` ${pending.state}` : ''}`,
      'data-seq': pending ? null : String(m.seq),
      'data-client-msg-id': m.client_msg_id,
    },
    node(
      'div',
      { class: 'meta' },
      node('span', { class: 'who', text: m.sender_name }),
      time ? node('time', { datetime: m.sent_at, text: time }) : null,
      state,
    ),
    node('p', { class: 'body', text: m.body }),
  );
  return li;
}

const rendered = new Map(); // key -> {node, sig}

/** Renders the open conversation: confirmed messages by seq, then this room's pending sends. */
export function renderMessages(conv, outbox, me) {
  if (!conv) {
    el.messages.replaceChildren();
    rendered.clear();
    el.olderBtn.hidden = true;
    return;
  }
  const sc = el.scroller;
  const fromBottom = sc.scrollHeight - sc.scrollTop - sc.clientHeight;
  const stick = fromBottom < 60;
  const items = conv.sorted().map((m) => ({ key: `s${m.seq}`, m, pending: null }));
  for (const e of outbox.forRoom(conv.roomId)) {
    const m = { ...e, sender_name: me.username, sender_id: me.user_id, sent_at: null };
    items.push({ key: `p${e.client_msg_id}`, m, pending: e });
  }
  const wanted = new Set(items.map((i) => i.key));
  for (const [key, r] of rendered) {
    if (!wanted.has(key)) {
      r.node.remove();
      rendered.delete(key);
    }
  }
  let cursor = el.messages.firstChild;
  for (const item of items) {
    const sig = item.pending ? `${item.pending.state}:${item.pending.error}` : item.m.message_id;
    let r = rendered.get(item.key);
    if (!r || r.sig !== sig) {
      const fresh = messageNode(item.m, item.m.sender_id === me.user_id, item.pending);
      if (r) {
        if (r.node === cursor) cursor = fresh;
        r.node.replaceWith(fresh);
      }
      r = { node: fresh, sig };
      rendered.set(item.key, r);
    }
    if (r.node !== cursor) el.messages.insertBefore(r.node, cursor);
    else cursor = cursor.nextSibling;
  }
  el.olderBtn.hidden = !conv.hasMore || conv.messages.size === 0;
  if (stick) sc.scrollTop = sc.scrollHeight;
  else sc.scrollTop = sc.scrollHeight - sc.clientHeight - fromBottom;
}

export function resetMessages() {
  el.messages.replaceChildren();
  rendered.clear();
}

export function renderMembers(conv) {
  if (!conv) {
    el.memberList.replaceChildren();
    return;
  }
  const list = [...conv.members.entries()].sort(
    (a, b) => Number(b[1].online) - Number(a[1].online) || a[1].username.localeCompare(b[1].username),
  );
  el.memberList.replaceChildren(
    ...list.map(([id, m]) =>
      node(
        'li',
        { 'data-user': id, 'data-online': String(m.online) },
        node('span', { class: `dot${m.online ? ' on' : ''}`, 'aria-hidden': 'true' }),
        node('span', { text: m.username }),
        node('span', { class: 'sr-only', text: m.online ? '(online)' : '(offline)' }),
      ),
    ),
  );
}

export function renderTyping(conv) {
  const names = conv ? conv.typingNames() : [];
  el.typing.textContent =
    names.length === 0
      ? ''
      : names.length === 1
        ? `${names[0]} is typing…`
        : `${names.slice(0, 3).join(', ')} are typing…`;
}
