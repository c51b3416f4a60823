// Wires the pieces together: session (login), rooms, the WebSocket and the conversation view.
// Resilience lives here: after every `ready` each joined room is rejoined with `since` = the
// last seq seen and every unacknowledged send is retried with its original client_msg_id.

import * as api from './api.js';
import { Connection } from './connection.js';
import { Conversation, Outbox } from './store.js';
import * as view from './view.js';

const { el } = view;
const SESSION_KEY = 'dyschat.session';
const TYPING_EVERY_MS = 3000;
const TYPING_SHOWN_MS = 5000;

const app = {
  session: null, // {token, user_id, username, expires_at}
  rooms: new Map(), // room_id -> Room
  joined: new Set(),
  current: null,
  convs: new Map(),
  outbox: new Outbox(),
  lastTypingSent: 0,
  conn: null,
};
window.dyschat = app; // handy in the console and for the browser test

// ---- session -----------------------------------------------------------------------------

function loadSession() {
  try {
    const s = JSON.parse(localStorage.getItem(SESSION_KEY));
    if (s && s.token && Date.parse(s.expires_at) > Date.now() + 60000) return s;
  } catch {
    /* nothing stored */
  }
  return null;
}

const joinedKey = () => `dyschat.joined.${app.session.user_id}`;
function saveJoined() {
  localStorage.setItem(joinedKey(), JSON.stringify([...app.joined]));
}

async function onAuthSubmit(ev) {
  ev.preventDefault();
  const mode = ev.submitter && ev.submitter.value === 'register' ? 'register' : 'login';
  const username = document.getElementById('auth-username').value.trim();
  const password = document.getElementById('auth-password').value;
  el.authError.textContent = '';
  try {
    if (mode === 'register') await api.register(username, password);
    const s = await api.login(username, password);
    localStorage.setItem(SESSION_KEY, JSON.stringify(s));
    await start(s);
  } catch (e) {
    el.authError.textContent =
      e.code === 'username_taken' ? 'That username is taken; pick another or log in.' : api.describe(e);
  }
}

/** Forgets the session on this page and shows the sign-in form (the token is not revoked). */
function endSession() {
  localStorage.removeItem(SESSION_KEY);
  if (app.conn) app.conn.stop();
  app.session = null;
  app.convs.clear();
  app.joined.clear();
  app.current = null;
  app.outbox = new Outbox();
  view.resetMessages();
  view.setConnection('', '');
  view.showAuth(true);
  document.getElementById('auth-username').focus();
}

/** The "Log out" button: the server revokes the token (every agent refuses it from then on and
 * closes its sockets, on every device that shares it), then this page forgets it. When the server
 * cannot be told, the page still forgets the token and says that it stays valid until it expires. */
async function logOut() {
  const session = app.session;
  if (!session) return;
  const button = document.getElementById('logout');
  button.disabled = true;
  if (app.conn) app.conn.stop(); // no reconnect while the token is being revoked
  let failure = null;
  try {
    await api.logout(session.token);
  } catch (e) {
    // Already refused (expired, or revoked elsewhere) means already logged out.
    if (e.code !== 'unauthorized') failure = e;
  } finally {
    button.disabled = false;
  }
  endSession();
  if (failure) {
    el.authError.textContent =
      `Signed out on this device, but the server could not be told (${api.describe(failure)}): ` +
      'that session stays valid until it expires.';
  }
}

/** The server refused the token (expired, or revoked by a logout elsewhere). */
function sessionEnded() {
  endSession();
  el.authError.textContent = 'Your session ended; please log in again.';
}

async function start(session) {
  app.session = session;
  try {
    app.joined = new Set(JSON.parse(localStorage.getItem(joinedKey())) || []);
  } catch {
    app.joined = new Set();
  }
  el.meName.textContent = session.username;
  view.showAuth(false);
  await refreshRooms();
  app.conn = new Connection(() => app.session && app.session.token);
  app.conn.addEventListener('connecting', (ev) => {
    if (ev.detail.attempt > 0) view.setConnection('down', 'Reconnecting…');
    else view.setConnection('connecting', 'Connecting…');
  });
  app.conn.addEventListener('ready', onReady);
  app.conn.addEventListener('down', onDown);
  app.conn.addEventListener('unauthorized', sessionEnded);
  app.conn.addEventListener('frame', (ev) => onFrame(ev.detail));
  app.conn.start();
  const first = [...app.joined][0];
  if (first) openRoom(first);
  else render();
}

async function onDown(ev) {
  view.setConnection('down', navigator.onLine === false ? 'Offline — will reconnect' : 'Reconnecting…');
  // Closed with 1008 (the token expired or was revoked), or refused at once repeatedly: check the
  // token over HTTP.
  if ((ev.detail.tokenEnded || ev.detail.attempt >= 2) && app.session) {
    const token = app.session.token;
    try {
      await api.me(token);
    } catch (e) {
      if (e.code === 'unauthorized' && app.session && app.session.token === token) sessionEnded();
    }
  }
}

function onReady() {
  view.setConnection('up', 'Connected');
  for (const roomId of app.joined) sendJoin(roomId);
  for (const e of app.outbox.pending()) app.conn.send(sendFrame(e));
}

// ---- rooms -------------------------------------------------------------------------------

async function refreshRooms() {
  try {
    const rooms = await api.allRooms(app.session.token);
    app.rooms = new Map(rooms.map((r) => [r.room_id, r]));
    render();
  } catch (e) {
    if (e.code === 'unauthorized') return sessionEnded();
    view.notify(`Could not load rooms. ${api.describe(e)}`);
  }
}

function conv(roomId) {
  let c = app.convs.get(roomId);
  if (!c) {
    c = new Conversation(roomId);
    app.convs.set(roomId, c);
  }
  return c;
}

function sendJoin(roomId) {
  const c = conv(roomId);
  const frame = { type: 'join', room_id: roomId, ref: `join:${roomId}` };
  if (c.synced) frame.since = c.lastSeq;
  c.rejoining = true;
  app.conn && app.conn.send(frame);
}

function joinRoom(roomId) {
  app.joined.add(roomId);
  saveJoined();
  sendJoin(roomId);
  openRoom(roomId);
}

function leaveRoom() {
  const roomId = app.current;
  if (!roomId) return;
  app.conn.send({ type: 'leave', room_id: roomId, ref: `leave:${roomId}` });
  app.joined.delete(roomId);
  saveJoined();
  app.convs.delete(roomId);
  app.current = null;
  view.resetMessages();
  render();
  setTimeout(refreshRooms, 300);
}

async function openRoom(roomId) {
  app.current = roomId;
  conv(roomId).unread = 0;
  // Switching rooms rebuilds the log: aria-busy keeps screen readers from reading it all out.
  el.messages.setAttribute('aria-busy', 'true');
  setTimeout(() => el.messages.removeAttribute('aria-busy'), 300);
  // On a phone the room list sits above the conversation: fold it away once a room is chosen.
  if (window.matchMedia('(max-width: 760px)').matches) document.getElementById('rooms-panel').open = false;
  view.resetMessages();
  render();
  el.input.focus();
  await loadMembers(roomId);
}

async function loadMembers(roomId) {
  try {
    const { members } = await api.members(app.session.token, roomId);
    const c = conv(roomId);
    c.members = new Map(members.map((m) => [m.user_id, { username: m.username, online: m.online }]));
    if (roomId === app.current) view.renderMembers(c);
  } catch (e) {
    // Right after a join the membership may not be visible yet; the join answer reloads it.
    if (e.code !== 'forbidden') view.notify(`Could not load members. ${api.describe(e)}`);
  }
}

async function createRoom(ev) {
  ev.preventDefault();
  const name = document.getElementById('create-name').value.trim();
  const topic = document.getElementById('create-topic').value.trim();
  if (!name) return view.notify('A room needs a name.');
  try {
    const room = await api.createRoom(app.session.token, name, topic);
    app.rooms.set(room.room_id, room);
    ev.target.reset();
    joinRoom(room.room_id);
  } catch (e) {
    view.notify(`Could not create the room. ${api.describe(e)}`);
  }
}

// ---- messages ----------------------------------------------------------------------------

const sendFrame = (e) => ({
  type: 'send',
  room_id: e.room_id,
  body: e.body,
  client_msg_id: e.client_msg_id,
  ref: `send:${e.client_msg_id}`,
});

function submitMessage(ev) {
  ev.preventDefault();
  const body = el.input.value;
  if (!app.current || !body.trim()) return;
  const entry = app.outbox.add(app.current, body);
  el.input.value = '';
  app.conn.send(sendFrame(entry)); // when offline, onReady sends it
  render();
}

function retrySend(clientMsgId, delayMs) {
  setTimeout(() => {
    const e = app.outbox.entries.get(clientMsgId);
    if (e && e.state === 'pending') app.conn.send(sendFrame(e));
  }, delayMs);
}

function onTypingInput() {
  const now = Date.now();
  if (app.current && el.input.value && now - app.lastTypingSent > TYPING_EVERY_MS) {
    app.lastTypingSent = now;
    app.conn.send({ type: 'typing', room_id: app.current });
  }
}

function loadOlder() {
  const c = app.current && app.convs.get(app.current);
  if (!c || !c.hasMore || c.loadingOlder || c.messages.size === 0) return;
  c.loadingOlder = true;
  const sent = app.conn.send({
    type: 'history',
    room_id: c.roomId,
    before: c.oldestSeq(),
    limit: 50,
    ref: `older:${c.roomId}`,
  });
  if (!sent) c.loadingOlder = false;
}

// ---- frames ------------------------------------------------------------------------------

function onFrame(f) {
  const c = f.room_id ? app.convs.get(f.room_id) : null;
  switch (f.type) {
    case 'joined':
      onJoined(f);
      break;
    case 'message': {
      if (!c) break;
      const fresh = !c.messages.has(f.seq);
      const gap = c.receive(f);
      if (fresh && f.room_id !== app.current && f.sender_id !== app.session.user_id) c.unread += 1;
      if (f.sender_id === app.session.user_id) app.outbox.entries.delete(f.client_msg_id);
      if (gap !== null && !c.rejoining) sendJoin(f.room_id);
      break;
    }
    case 'ack': {
      const e = app.outbox.entries.get(f.client_msg_id);
      app.outbox.entries.delete(f.client_msg_id);
      if (c && e && !c.messages.has(f.seq)) {
        c.add({
          room_id: f.room_id,
          seq: f.seq,
          prev_seq: null,
          message_id: f.message_id,
          client_msg_id: f.client_msg_id,
          sender_id: app.session.user_id,
          sender_name: app.session.username,
          body: e.body,
          sent_at: f.sent_at,
          synthetic: true,
        });
      }
      break;
    }
    case 'history':
      onHistory(f, c);
      break;
    case 'left':
      break;
    case 'member_joined':
    case 'member_left':
      if (c) {
        if (f.type === 'member_joined') {
          const known = c.members.get(f.user_id);
          c.members.set(f.user_id, { username: f.username, online: known ? known.online : true });
        } else c.members.delete(f.user_id);
      }
      break;
    case 'presence':
      if (c && c.members.has(f.user_id)) c.members.get(f.user_id).online = f.online;
      break;
    case 'typing':
      if (c && f.user_id !== app.session.user_id) {
        c.typing.set(f.user_id, { username: f.username, until: Date.now() + TYPING_SHOWN_MS });
        setTimeout(() => view.renderTyping(app.convs.get(app.current)), TYPING_SHOWN_MS + 50);
      }
      break;
    case 'error':
      onError(f);
      break;
    default:
      break;
  }
  render();
}

function onJoined(f) {
  const c = conv(f.room_id);
  c.rejoining = false;
  if (!f.recovered) {
    // Too much was missed to replay: start over from the newest page of history.
    c.reset();
    if (f.room_id === app.current) view.resetMessages();
  }
  if (!c.synced) {
    c.synced = true;
    c.lastSeq = f.last_seq;
    c.joinedLast = f.last_seq;
    app.conn.send({ type: 'history', room_id: f.room_id, limit: 50, ref: `initial:${f.room_id}` });
  }
  if (f.room_id === app.current) loadMembers(f.room_id);
  if (!app.rooms.has(f.room_id)) refreshRooms();
}

function onHistory(f, c) {
  if (!c) return;
  for (const m of f.messages) c.add(m);
  c.hasMore = f.has_more;
  const initial = (f.ref || '').startsWith('initial:');
  if (initial) {
    // History (Redis) may trail the stream: replay whatever it lacks up to joined.last_seq.
    const newest = f.messages.length ? f.messages[f.messages.length - 1].seq : 0;
    if (newest < c.joinedLast) {
      c.rejoining = true;
      app.conn.send({ type: 'join', room_id: c.roomId, since: newest, ref: `join:${c.roomId}` });
    }
  } else {
    c.loadingOlder = false;
  }
  // Fill the view when the first pages are too short to scroll.
  requestAnimationFrame(() => {
    if (c.roomId === app.current && el.scroller.scrollHeight <= el.scroller.clientHeight) loadOlder();
  });
}

function onError(f) {
  const ref = f.ref || '';
  if (ref.startsWith('send:')) {
    const e = app.outbox.entries.get(ref.slice(5));
    if (!e) return;
    if (f.code === 'rate_limited' || f.code === 'unavailable') {
      const wait = f.retry_after_ms || 1000;
      view.notify(api.describe({ code: f.code, retryAfterMs: wait, message: f.message }), 'warn', wait + 1000);
      retrySend(e.client_msg_id, wait);
    } else {
      e.state = 'failed';
      e.error = f.code === 'forbidden' ? 'you are not a member of this room' : f.message;
      view.notify(`Message not sent: ${e.error}`);
    }
    return;
  }
  if (ref.startsWith('join:')) {
    const roomId = ref.slice(5);
    const c = app.convs.get(roomId);
    if (c) c.rejoining = false;
    if (f.code === 'not_found' || f.code === 'forbidden') {
      app.joined.delete(roomId);
      saveJoined();
      app.convs.delete(roomId);
      if (app.current === roomId) app.current = null;
    } else if (f.code === 'rate_limited' || f.code === 'unavailable') {
      setTimeout(() => app.joined.has(roomId) && sendJoin(roomId), f.retry_after_ms || 1000);
    }
  }
  if (ref.startsWith('older:')) {
    const c = app.convs.get(ref.slice(6));
    if (c) c.loadingOlder = false;
  }
  view.notify(api.describe({ code: f.code, retryAfterMs: f.retry_after_ms, message: f.message }));
}

// ---- rendering ---------------------------------------------------------------------------

function render() {
  if (!app.session) return;
  const all = [...app.rooms.values()].sort((a, b) => a.name.localeCompare(b.name));
  const mine = [...app.joined].map((id) => ({
    ...(app.rooms.get(id) || { room_id: id, name: id, topic: '', member_count: 0 }),
    unread: app.convs.has(id) ? app.convs.get(id).unread : 0,
  }));
  const others = all.filter((r) => !app.joined.has(r.room_id));
  view.renderRooms(mine, others, app.current, { open: openRoom, join: joinRoom });
  const c = app.current ? conv(app.current) : null;
  view.renderRoomHeader(app.current ? app.rooms.get(app.current) || { name: app.current, topic: '' } : null);
  view.renderMessages(c, app.outbox, app.session);
  view.renderMembers(c);
  view.renderTyping(c);
}

// ---- start -------------------------------------------------------------------------------

document.getElementById('auth-form').addEventListener('submit', onAuthSubmit);
document.getElementById('logout').addEventListener('click', logOut);
document.getElementById('create-form').addEventListener('submit', createRoom);
document.getElementById('refresh-rooms').addEventListener('click', refreshRooms);
el.composer.addEventListener('submit', submitMessage);
el.leaveBtn.addEventListener('click', leaveRoom);
el.olderBtn.addEventListener('click', loadOlder);
el.input.addEventListener('input', onTypingInput);
el.input.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    el.composer.requestSubmit();
  }
});
el.scroller.addEventListener('scroll', () => {
  if (el.scroller.scrollTop < 80) loadOlder();
});

const saved = loadSession();
if (saved) start(saved);
else view.showAuth(true);
