// DOM rendering of the page around the conversation (the log itself is messages.js): room
// lists, header, settings, members, typing.

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
  dmList: $('dm-list'),
  dmQ: $('dm-q'),
  dmResults: $('dm-results'),
  otherRooms: $('other-rooms'),
  blockedList: $('blocked-list'),
  roomTitle: $('room-title'),
  roomTopic: $('room-topic'),
  roomKind: $('room-kind'),
  settingsBtn: $('settings-btn'),
  blockBtn: $('block-btn'),
  leaveBtn: $('leave-btn'),
  settings: $('room-settings'),
  settingsForm: $('settings-form'),
  settingsName: $('settings-name'),
  settingsTopic: $('settings-topic'),
  settingsVisibility: $('settings-visibility'),
  inviteForm: $('invite-form'),
  inviteQ: $('invite-q'),
  inviteResults: $('invite-results'),
  invitedList: $('invited-list'),
  bansBox: $('bans-box'),
  banList: $('ban-list'),
  deleteBox: $('delete-box'),
  deleteBtn: $('delete-btn'),
  deleteConfirmBox: $('delete-confirm-box'),
  deleteConfirm: $('delete-confirm'),
  deleteCancel: $('delete-cancel'),
  modBox: $('mod-box'),
  modReason: $('mod-reason'),
  announce: $('announce'),
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

export function node(tag, props = {}, ...children) {
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
/** Shows a message in the banner; `kind` is 'error', 'warn' or 'info'; `ms` hides it after a while. */
export function notify(text, kind = 'error', ms = 8000) {
  el.noticeText.textContent = text;
  el.notice.classList.toggle('warn', kind === 'warn');
  el.notice.classList.toggle('info', kind === 'info');
  el.notice.dataset.kind = kind;
  el.notice.hidden = false;
  clearTimeout(noticeTimer);
  if (ms) noticeTimer = setTimeout(() => (el.notice.hidden = true), ms);
}
$('notice-close').addEventListener('click', () => (el.notice.hidden = true));

/** A polite screen-reader announcement of something that went well (nothing shown). */
export function announce(text) {
  el.announce.textContent = '';
  setTimeout(() => (el.announce.textContent = text), 50);
}

/**
 * Replaces a list's children and puts the keyboard focus back on the "same" control (same
 * `data-focus-key`) when it was inside the list, so a re-render never throws focus away.
 */
function replaceKeepingFocus(list, children) {
  const active = document.activeElement;
  const key = active && list.contains(active) ? active.dataset.focusKey : null;
  list.replaceChildren(...children);
  if (key) {
    const again = [...list.querySelectorAll('[data-focus-key]')].find((n) => n.dataset.focusKey === key);
    if (again) again.focus();
  }
}

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

function badge(unread) {
  return unread
    ? node('span', { class: 'badge', 'data-unread': String(unread), text: String(unread), 'aria-label': `${unread} unread` })
    : null;
}

/** The mentions of the user among the unread (RoomSummary.mentions, section 5). */
function mentionBadge(mentions) {
  return mentions
    ? node('span', {
        class: 'badge mention',
        'data-mentions': String(mentions),
        text: `@${mentions}`,
        'aria-label': `${mentions} mentioning you`,
      })
    : null;
}

function openButton(id, text, title, current, actions) {
  return node('button', {
    type: 'button',
    class: 'open',
    'aria-current': id === current ? 'true' : 'false',
    'data-room': id,
    'data-focus-key': `open:${id}`,
    text,
    title,
    onclick: () => actions.open(id),
  });
}

/**
 * The lists on the left. `mine` and `dms` are RoomSummary objects with `unread` and `mentions`
 * already worked out (direct rooms carry `peer`); `others` are Room objects the user may join.
 */
export function renderRooms(mine, dms, others, current, actions) {
  replaceKeepingFocus(
    el.myRooms,
    mine.map((s) =>
      node(
        'li',
        { 'data-room-id': s.room.room_id, 'data-role': s.role },
        openButton(s.room.room_id, s.room.name, s.room.topic || s.room.name, current, actions),
        s.room.visibility === 'private' ? node('span', { class: 'tag', text: 'private' }) : null,
        mentionBadge(s.mentions),
        badge(s.unread),
      ),
    ),
  );
  if (!mine.length) el.myRooms.replaceChildren(node('li', { class: 'count', text: 'None yet.' }));
  replaceKeepingFocus(
    el.dmList,
    dms.map((s) => {
      const peer = s.peer || { username: s.room.name, online: false };
      return node(
        'li',
        { 'data-room-id': s.room.room_id, 'data-peer': peer.user_id, 'data-online': String(!!peer.online) },
        node('span', { class: `dot${peer.online ? ' on' : ''}`, 'aria-hidden': 'true' }),
        openButton(s.room.room_id, peer.username, `Direct messages with ${peer.username}`, current, actions),
        node('span', { class: 'sr-only', text: peer.online ? '(online)' : '(offline)' }),
        mentionBadge(s.mentions),
        badge(s.unread),
      );
    }),
  );
  if (!dms.length) el.dmList.replaceChildren(node('li', { class: 'count', text: 'No conversations yet.' }));
  replaceKeepingFocus(
    el.otherRooms,
    others.map((r) =>
      node(
        'li',
        { 'data-room-id': r.room_id },
        node('span', { class: 'open', text: r.name, title: r.topic || r.name }),
        r.visibility === 'private' ? node('span', { class: 'tag', text: 'invited' }) : null,
        node('span', { class: 'count', text: `${r.member_count} ✦`, title: `${r.member_count} members` }),
        node('button', {
          type: 'button',
          class: 'secondary',
          'data-join': r.room_id,
          'data-focus-key': `join:${r.room_id}`,
          'aria-label': `Join ${r.name}`,
          text: 'Join',
          onclick: () => actions.join(r.room_id),
        }),
      ),
    ),
  );
  if (!others.length) el.otherRooms.replaceChildren(node('li', { class: 'count', text: 'No other rooms.' }));
}

/** Users found by a search: one button each, `label(user)` its text, `pick(user)` on click. */
export function renderUserResults(list, users, label, pick, emptyText) {
  if (users === null) {
    list.replaceChildren();
    return;
  }
  replaceKeepingFocus(
    list,
    users.map((u) =>
      node(
        'li',
        { 'data-user': u.user_id },
        node('span', { class: 'open', text: u.username }),
        node('button', {
          type: 'button',
          class: 'secondary',
          'data-pick': u.username,
          'data-focus-key': `pick:${u.user_id}`,
          'aria-label': `${label} ${u.username}`,
          text: label,
          onclick: () => pick(u),
        }),
      ),
    ),
  );
  if (!users.length) list.replaceChildren(node('li', { class: 'count', text: emptyText }));
}

/** A list of users with one action button each (blocked users, invitations, bans). */
export function renderUserActions(list, users, label, act, emptyText, detail) {
  replaceKeepingFocus(
    list,
    users.map((u) =>
      node(
        'li',
        { 'data-user': u.user_id },
        node('span', { class: 'open', text: u.username, title: detail ? detail(u) : u.username }),
        node('button', {
          type: 'button',
          class: 'secondary',
          'data-act': label.toLowerCase(),
          'data-focus-key': `${label}:${u.user_id}`,
          'aria-label': `${label} ${u.username}`,
          text: label,
          onclick: () => act(u),
        }),
      ),
    ),
  );
  if (!users.length) list.replaceChildren(node('li', { class: 'count', text: emptyText }));
}

/**
 * The open room's header. `room` is a Room (or null); `ui` says what this user may do:
 * {title, kind, canSettings, canLeave, leaveHint, blockLabel}.
 */
export function renderRoomHeader(room, ui = {}) {
  el.roomTitle.textContent = room ? ui.title || room.name : 'No room open';
  el.roomTopic.textContent = room ? room.topic || '' : '';
  el.roomKind.textContent = room ? ui.kind || '' : '';
  el.leaveBtn.hidden = !room || !ui.canLeave;
  el.settingsBtn.hidden = !room || !ui.canSettings;
  el.blockBtn.hidden = !room || !ui.blockLabel;
  if (ui.blockLabel) el.blockBtn.textContent = ui.blockLabel;
  el.composer.hidden = !room;
  el.empty.hidden = !!room;
}

/**
 * The settings panel of the open room: `perm` = {settings, invite, bans, delete}; the form
 * fields are only filled by fillSettings (so a re-render never overwrites what is being typed).
 */
export function renderSettings(open, perm) {
  const shown = open && perm.settings;
  el.settings.hidden = !shown;
  el.settingsBtn.setAttribute('aria-expanded', String(shown));
  if (!shown) return;
  el.inviteForm.hidden = !perm.invite;
  el.bansBox.hidden = !perm.bans;
  el.deleteBox.hidden = !perm.delete;
}

export function fillSettings(room) {
  el.settingsName.value = room.name;
  el.settingsTopic.value = room.topic || '';
  el.settingsVisibility.value = room.visibility || 'public';
  el.deleteConfirmBox.hidden = true;
  el.deleteBtn.hidden = false;
}

const RANK = { owner: 3, moderator: 2, member: 1 };
const ROLE_ORDER = (r) => -(RANK[r] || 1);

/** Whether role `a` is higher than role `b` (someone acts on another only then, section 5). */
export const outranks = (a, b) => (RANK[a] || 0) > (RANK[b] || 1);

/** What `myRole` may do to a member of role `theirs` (contract section 5: only a higher role acts). */
export function allowedOn(myRole, theirs, direct) {
  const mine = RANK[myRole] || 0;
  const their = RANK[theirs] || 1;
  const moderate = !direct && mine >= 2 && mine > their;
  const owner = !direct && myRole === 'owner' && theirs !== 'owner';
  return {
    kick: moderate,
    ban: moderate,
    promote: owner && theirs !== 'moderator',
    demote: owner && theirs === 'moderator',
    transfer: owner,
  };
}

/**
 * Members with their role and the buttons this user may use on each. `ctx`:
 * {me, myRole, direct, act(action, userId, username)}.
 */
export function renderMembers(conv, ctx) {
  if (!conv) {
    el.memberList.replaceChildren();
    el.modBox.hidden = true;
    return;
  }
  const list = [...conv.members.entries()].sort(
    (a, b) =>
      ROLE_ORDER(a[1].role) - ROLE_ORDER(b[1].role) ||
      Number(b[1].online) - Number(a[1].online) ||
      a[1].username.localeCompare(b[1].username),
  );
  let anyModeration = false;
  const items = list.map(([id, m]) => {
    const role = m.role || 'member';
    const may = ctx && id !== ctx.me ? allowedOn(ctx.myRole, role, ctx.direct) : {};
    if (may.kick) anyModeration = true;
    const button = (action, text, label) =>
      node('button', {
        type: 'button',
        class: `small${action === 'ban' || action === 'kick' ? ' danger' : ' secondary'}`,
        'data-action': action,
        'data-user': id,
        'data-focus-key': `${action}:${id}`,
        'aria-label': `${label} ${m.username}`,
        text,
        onclick: () => ctx.act(action, id, m.username),
      });
    const buttons = [
      may.promote ? button('promote', 'Make moderator', 'Make moderator:') : null,
      may.demote ? button('demote', 'Make member', 'Make member (no longer moderator):') : null,
      may.transfer ? button('transfer', 'Make owner', 'Hand ownership to') : null,
      may.kick ? button('kick', 'Kick', 'Kick') : null,
      may.ban ? button('ban', 'Ban', 'Ban') : null,
    ].filter(Boolean);
    return node(
      'li',
      { 'data-user': id, 'data-online': String(m.online), 'data-role': role },
      node(
        'div',
        { class: 'who-line' },
        node('span', { class: `dot${m.online ? ' on' : ''}`, 'aria-hidden': 'true' }),
        node('span', { class: 'name', text: m.username }),
        node('span', { class: 'sr-only', text: m.online ? '(online)' : '(offline)' }),
        role !== 'member' && !(ctx && ctx.direct) ? node('span', { class: `tag role-${role}`, text: role }) : null,
      ),
      buttons.length ? node('div', { class: 'member-actions' }, ...buttons) : null,
    );
  });
  replaceKeepingFocus(el.memberList, items);
  el.modBox.hidden = !anyModeration;
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
