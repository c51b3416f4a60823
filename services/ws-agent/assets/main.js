// Wires the pieces together: session (login), my rooms, direct messages, moderation, the
// WebSocket and the conversation view.
//
// "My rooms" comes from the server (`GET /api/v1/me/rooms`, the same on every device), never
// from the browser: it is reloaded at start, after every `ready`, after anything that changes
// membership, and every few seconds (a new direct room or an invitation sends no frame to a
// socket that is not in the room yet). Every room of it is joined on the socket.
// Resilience: after every `ready` each room is rejoined with `since` = the newest seq seen (of
// messages and change events) and every unacknowledged send is retried with its original
// client_msg_id. Messages that change (section 7) are actions.js and messages.js; the composer's
// reply and `@` completion compose.js; the notification bell feed.js; files (section 9) are
// uploaded by files.js and shown by attachments.js; message search is search.js.

import * as api from './api.js';
import { MessageUi } from './actions.js';
import { FileView } from './attachments.js';
import { MentionComplete, ReplyBar } from './compose.js';
import { Connection } from './connection.js';
import { Feed } from './feed.js';
import { Uploads } from './files.js';
import { renderMessages, resetMessages } from './messages.js';
import { Search } from './search.js';
import { Conversation, Outbox } from './store.js';
import * as view from './view.js';

const { el } = view;
const SESSION_KEY = 'dyschat.session';
const TYPING_EVERY_MS = 3000;
const TYPING_SHOWN_MS = 5000;
const MY_ROOMS_EVERY_MS = 5000;
const DIRECTORY_EVERY_MS = 30000;
const SEARCH_DELAY_MS = 200;
const READ_EVERY_MS = 1500;
/** A room joined this long ago is kept even when a my-rooms reply (maybe older) lacks it. */
const JOIN_GRACE_MS = 10000;

const app = {
  session: null, // {token, user_id, username, expires_at}
  rooms: new Map(), // room_id -> Room: the directory (GET /api/v1/rooms) and every room seen
  summaries: new Map(), // room_id -> RoomSummary, in the server's order (most recent activity first)
  order: [], // room ids of my rooms, in display order
  joined: new Set(), // rooms subscribed on the socket (= my rooms)
  joinedAt: new Map(), // room_id -> when this client joined it (see JOIN_GRACE_MS)
  removedAt: new Map(), // room_id -> when this client was removed from it (never rejoined by a stale list)
  current: null,
  convs: new Map(),
  outbox: new Outbox(),
  blocked: new Map(), // user_id -> username
  invited: new Map(), // room_id -> Map(user_id -> username): invitations sent from this page
  bans: new Map(), // room_id -> [Ban]
  seen: {}, // room_id -> newest seq shown on this device
  settingsOpen: false,
  /** The "New messages" line of the open room: {roomId, after, upTo} (the read marker when the
   * room was opened, and its newest seq then), or null. */
  newLine: null,
  lastTypingSent: 0,
  lastReadSent: new Map(),
  readTimers: new Map(),
  timers: [],
  conn: null,
};
window.dyschat = app; // handy in the console and for the browser test

const token = () => app.session && app.session.token;
const roomOf = (id) => (app.summaries.get(id) || {}).room || app.rooms.get(id) || null;
const isDirect = (id) => (roomOf(id) || {}).kind === 'direct';

function myRole(id) {
  const c = app.convs.get(id);
  const mine = c && app.session && c.members.get(app.session.user_id);
  if (mine && mine.role) return mine.role;
  const s = app.summaries.get(id);
  if (s && s.role) return s.role;
  const r = roomOf(id);
  return r && app.session && r.owner_id === app.session.user_id ? 'owner' : 'member';
}

function permissions(id) {
  const role = myRole(id);
  const staff = !isDirect(id) && (role === 'owner' || role === 'moderator');
  return { settings: staff, invite: staff, bans: staff, delete: staff && role === 'owner' };
}

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

const userKey = (what) => `dyschat.${what}.${app.session.user_id}`;
function loadLocal(what, fallback) {
  try {
    return JSON.parse(localStorage.getItem(userKey(what))) || fallback;
  } catch {
    return fallback;
  }
}
function saveLocal(what, value) {
  try {
    localStorage.setItem(userKey(what), JSON.stringify(value));
  } catch {
    /* storage full or disabled: only this device's hints are lost */
  }
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
  for (const t of app.timers) clearInterval(t);
  app.timers = [];
  app.session = null;
  app.convs.clear();
  app.joined.clear();
  app.summaries.clear();
  app.order = [];
  app.current = null;
  app.settingsOpen = false;
  app.newLine = null;
  app.outbox = new Outbox();
  reply.clear();
  mui.reset();
  feed.reset();
  uploads.reset();
  search.reset();
  resetMessages();
  files.retain(new Set());
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
  app.seen = loadLocal('seen', {});
  el.meName.textContent = session.username;
  view.showAuth(false);
  await Promise.all([refreshMyRooms(), refreshRooms(), refreshBlocks()]);
  app.conn = new Connection(token);
  app.conn.addEventListener('connecting', (ev) => {
    if (ev.detail.attempt > 0) view.setConnection('down', 'Reconnecting…');
    else view.setConnection('connecting', 'Connecting…');
  });
  app.conn.addEventListener('ready', onReady);
  app.conn.addEventListener('down', onDown);
  app.conn.addEventListener('unauthorized', sessionEnded);
  app.conn.addEventListener('frame', (ev) => onFrame(ev.detail));
  app.conn.start();
  app.timers.push(setInterval(() => document.visibilityState !== 'hidden' && refreshMyRooms(), MY_ROOMS_EVERY_MS));
  app.timers.push(setInterval(() => document.visibilityState !== 'hidden' && refreshRooms(), DIRECTORY_EVERY_MS));
  const last = loadLocal('current', null);
  const first = last && app.joined.has(last) ? last : app.order[0];
  if (first) openRoom(first);
  else render();
}

async function onDown(ev) {
  view.setConnection('down', navigator.onLine === false ? 'Offline — will reconnect' : 'Reconnecting…');
  // Closed with 1008 (the token expired or was revoked), or refused at once repeatedly: check the
  // token over HTTP.
  if ((ev.detail.tokenEnded || ev.detail.attempt >= 2) && app.session) {
    const checked = app.session.token;
    try {
      await api.me(checked);
    } catch (e) {
      if (e.code === 'unauthorized' && app.session && app.session.token === checked) sessionEnded();
    }
  }
}

async function onReady() {
  view.setConnection('up', 'Connected');
  // What changed while the socket was away (a kick, a deletion, a new direct room) is in my
  // rooms: reload it first, so a room we were removed from is not joined again.
  await refreshMyRooms({ subscribe: false });
  for (const roomId of app.joined) sendJoin(roomId);
  feed.load(); // notifications made while the socket was away
  for (const e of app.outbox.pending()) if (app.joined.has(e.room_id)) app.conn.send(sendFrame(e));
}

// ---- rooms -------------------------------------------------------------------------------

async function refreshRooms() {
  if (!app.session) return;
  try {
    const rooms = await api.allRooms(token());
    const fresh = new Map(rooms.map((r) => [r.room_id, r]));
    // Keep what we know of rooms we are in (direct rooms are never listed).
    for (const id of app.joined) if (!fresh.has(id) && app.rooms.has(id)) fresh.set(id, app.rooms.get(id));
    app.rooms = fresh;
    for (const [id, s] of app.summaries) if (fresh.has(id)) s.room = { ...s.room, ...fresh.get(id) };
    render();
  } catch (e) {
    if (e.code === 'unauthorized') return sessionEnded();
    view.notify(`Could not load rooms. ${api.describe(e)}`);
  }
}

let myRoomsRun = null;
let myRoomsAgain = false;
/**
 * Reloads my rooms (one request at a time; a call during one runs once more after it). New
 * rooms are joined on the socket (unless `subscribe` is false: onReady joins them all), rooms
 * no longer listed are dropped.
 */
function refreshMyRooms({ subscribe = true } = {}) {
  if (myRoomsRun) {
    myRoomsAgain = true;
    return myRoomsRun;
  }
  myRoomsRun = (async () => {
    try {
      do {
        myRoomsAgain = false;
        await loadMyRooms(subscribe);
      } while (myRoomsAgain);
    } finally {
      myRoomsRun = null;
    }
  })();
  return myRoomsRun;
}

async function loadMyRooms(subscribe) {
  if (!app.session) return;
  let reply;
  const asked = Date.now();
  try {
    reply = await api.myRooms(token());
  } catch (e) {
    if (e.code === 'unauthorized') return sessionEnded();
    if (e.code !== 'offline') view.notify(`Could not load your rooms. ${api.describe(e)}`);
    return;
  }
  if (!app.session) return;
  const listed = new Map(reply.rooms.map((s) => [s.room.room_id, s]));
  for (const id of [...app.joined]) {
    if (listed.has(id)) continue;
    const since = app.joinedAt.get(id) || 0;
    if (asked - since < JOIN_GRACE_MS) continue; // joined after the server read the list
    const name = (roomOf(id) || {}).name || 'a room';
    forgetRoom(id, `You are no longer a member of “${name}”.`, { keepListing: true });
  }
  const order = reply.rooms.map((s) => s.room.room_id);
  for (const id of app.order) if (!listed.has(id) && app.joined.has(id)) order.unshift(id);
  for (const s of reply.rooms) {
    const id = s.room.room_id;
    // Removed (kicked, left, deleted) after this list was read: the list is stale for it, and
    // joining it on the socket would make the user a member again.
    if ((app.removedAt.get(id) || 0) >= asked - 2000) {
      order.splice(order.indexOf(id), 1);
      continue;
    }
    app.summaries.set(id, { ...s, fetchedAt: Date.now() });
    if (s.room.kind !== 'direct') app.rooms.set(id, s.room);
    if (!app.joined.has(id)) {
      app.joined.add(id);
      if (subscribe) sendJoin(id);
    }
  }
  app.order = order;
  render();
}

/** A room this page just created, joined or opened: shown at once, before my rooms says so. */
function addSummary(room, role, peer) {
  const id = room.room_id;
  if (!app.summaries.has(id)) {
    app.summaries.set(id, {
      room,
      role,
      last_seq: 0,
      last_read_seq: 0,
      unread: 0,
      mentions: 0,
      last_message: null,
      peer: peer || null,
      fetchedAt: Date.now(),
    });
  }
  app.order = [id, ...app.order.filter((x) => x !== id)];
  if (room.kind !== 'direct') app.rooms.set(id, room);
  app.joinedAt.set(id, Date.now());
  app.removedAt.delete(id);
  if (!app.joined.has(id)) {
    app.joined.add(id);
    sendJoin(id);
  }
}

/**
 * Drops a room this user is no longer in (left, kicked, banned, deleted): its conversation,
 * pending sends, the open view when it was open. `message` tells the user why.
 */
function forgetRoom(roomId, message, { keepListing = false } = {}) {
  const wasOpen = app.current === roomId;
  app.removedAt.set(roomId, Date.now());
  app.joinedAt.delete(roomId);
  app.joined.delete(roomId);
  app.summaries.delete(roomId);
  app.order = app.order.filter((x) => x !== roomId);
  app.convs.delete(roomId);
  app.bans.delete(roomId);
  app.invited.delete(roomId);
  for (const [id, e] of app.outbox.entries) if (e.room_id === roomId) app.outbox.entries.delete(id);
  if (!keepListing) app.rooms.delete(roomId);
  if (wasOpen) {
    app.current = null;
    app.settingsOpen = false;
    app.newLine = null;
    mui.reset();
    resetMessages();
  }
  if (reply.seqFor(roomId) !== null) reply.clear();
  uploads.forget(roomId);
  if (message) view.notify(message, 'warn', 15000);
  render();
  if (wasOpen) document.getElementById('rooms-panel').open = true;
}

function conv(roomId) {
  let c = app.convs.get(roomId);
  if (!c) {
    c = new Conversation(roomId);
    app.convs.set(roomId, c);
  }
  return c;
}

/** Joins `roomId` on the socket; once synced, with `since` (default: the newest seq seen). */
function sendJoin(roomId, since) {
  const c = conv(roomId);
  const frame = { type: 'join', room_id: roomId, ref: `join:${roomId}` };
  if (c.synced) frame.since = since === undefined ? c.since() : since;
  c.rejoining = true;
  c.rejoinSince = frame.since === undefined ? null : frame.since;
  if (app.conn) app.conn.send(frame);
}

async function joinRoom(roomId) {
  try {
    await api.joinRoom(token(), roomId);
  } catch (e) {
    if (e.code === 'not_found') refreshRooms();
    const why = e.code === 'forbidden' ? 'You are banned from this room or may not join it.' : api.describe(e);
    return view.notify(`Could not join. ${why}`);
  }
  const room = app.rooms.get(roomId) || (await api.getRoom(token(), roomId).catch(() => null));
  if (!room) return;
  addSummary(room, 'member');
  openRoom(roomId);
  refreshMyRooms();
}

async function leaveRoom() {
  const roomId = app.current;
  if (!roomId) return;
  try {
    await api.leaveRoom(token(), roomId);
  } catch (e) {
    if (e.code === 'conflict') {
      return view.notify('The owner cannot leave: hand ownership to another member first, or delete the room.');
    }
    if (e.code !== 'not_found') return view.notify(`Could not leave. ${api.describe(e)}`);
  }
  const name = (roomOf(roomId) || {}).name || 'the room';
  forgetRoom(roomId, null, { keepListing: true });
  view.announce(`You left ${name}.`);
  setTimeout(refreshRooms, 300);
}

async function openRoom(roomId) {
  if (app.current !== roomId) {
    app.settingsOpen = false;
    mui.reset();
    // The "New messages" line goes where this user had read to (here or on another device).
    const s = app.summaries.get(roomId);
    const c = app.convs.get(roomId);
    const after = Math.max(s ? s.last_read_seq || 0 : 0, app.seen[roomId] || 0);
    const upTo = Math.max(s ? s.last_seq || 0 : 0, c ? c.newestSeq() : 0);
    app.newLine = upTo > after ? { roomId, after, upTo } : null;
  }
  app.current = roomId;
  saveLocal('current', roomId);
  // Switching rooms rebuilds the log: aria-busy keeps screen readers from reading it all out.
  el.messages.setAttribute('aria-busy', 'true');
  setTimeout(() => el.messages.removeAttribute('aria-busy'), 300);
  // On a phone the room list sits above the conversation: fold it away once a room is chosen.
  if (window.matchMedia('(max-width: 760px)').matches) document.getElementById('rooms-panel').open = false;
  resetMessages();
  render();
  el.input.focus();
  loadReceipts(roomId);
  await loadMembers(roomId);
}

/** How far the other members have read (section 8; rooms of at most 100 members). */
async function loadReceipts(roomId) {
  try {
    const { receipts } = await api.receipts(token(), roomId);
    const c = app.convs.get(roomId);
    if (!c) return;
    for (const r of receipts) setReceipt(c, r.user_id, r.username, r.last_read_seq);
    render();
  } catch {
    /* best effort: no "seen by" (a server without receipts, or a room just left) */
  }
}

function setReceipt(c, userId, username, seq) {
  const known = c.receipts.get(userId);
  if (known && known.seq >= seq) return;
  const member = c.members.get(userId);
  c.receipts.set(userId, { username: username || (member && member.username) || (known && known.username) || userId, seq });
}

async function loadMembers(roomId, attempt = 0) {
  try {
    const before = app.convs.has(roomId) ? app.convs.get(roomId).membersVersion : 0;
    const { members } = await api.members(token(), roomId);
    const c = app.convs.get(roomId);
    if (!c) return;
    // A member frame arrived while the list was read: it may predate the frame, read it again.
    if (c.membersVersion !== before && attempt < 3) return loadMembers(roomId, attempt + 1);
    c.members = new Map(
      members.map((m) => [m.user_id, { username: m.username, online: m.online, role: m.role || 'member' }]),
    );
    const invited = app.invited.get(roomId);
    if (invited) for (const id of c.members.keys()) invited.delete(id);
    const mine = c.members.get(app.session.user_id);
    const s = app.summaries.get(roomId);
    if (mine && s) s.role = mine.role;
    render();
  } catch (e) {
    // Right after a join the membership may not be visible yet; the join answer reloads it.
    if (e.code !== 'forbidden' && e.code !== 'not_found') view.notify(`Could not load members. ${api.describe(e)}`);
  }
}

async function createRoom(ev) {
  ev.preventDefault();
  const name = document.getElementById('create-name').value.trim();
  const topic = document.getElementById('create-topic').value.trim();
  const visibility = document.getElementById('create-visibility').value;
  if (!name) return view.notify('A room needs a name.');
  try {
    const room = await api.createRoom(token(), name, topic, visibility);
    ev.target.reset();
    addSummary(room, 'owner');
    openRoom(room.room_id);
    refreshMyRooms();
  } catch (e) {
    view.notify(`Could not create the room. ${api.describe(e)}`);
  }
}

// ---- settings, invitations, bans -----------------------------------------------------------

function toggleSettings() {
  app.settingsOpen = !app.settingsOpen;
  if (app.settingsOpen && app.current) {
    const room = roomOf(app.current);
    if (room) view.fillSettings(room);
    if (permissions(app.current).bans) loadBans(app.current);
  }
  render();
  if (app.settingsOpen) el.settingsName.focus();
}

async function saveSettings(ev) {
  ev.preventDefault();
  const roomId = app.current;
  const room = roomOf(roomId);
  if (!room) return;
  const changes = {};
  const name = el.settingsName.value.trim();
  const topic = el.settingsTopic.value.trim();
  const visibility = el.settingsVisibility.value;
  if (!name) return view.notify('A room needs a name.');
  if (name !== room.name) changes.name = name;
  if (topic !== (room.topic || '')) changes.topic = topic;
  if (visibility !== (room.visibility || 'public')) changes.visibility = visibility;
  if (!Object.keys(changes).length) return view.announce('Nothing to save.');
  try {
    const updated = await api.updateRoom(token(), roomId, changes);
    roomUpdated(updated);
    view.notify('Room settings saved.', 'info', 4000);
  } catch (e) {
    view.notify(`Could not save the settings. ${api.describe(e)}`);
  }
}

function roomUpdated(room) {
  const id = room.room_id;
  const s = app.summaries.get(id);
  if (s) s.room = { ...s.room, ...room };
  if (room.kind !== 'direct' && (app.rooms.has(id) || s)) app.rooms.set(id, { ...(app.rooms.get(id) || {}), ...room });
  const focused = el.settings.contains(document.activeElement);
  if (app.settingsOpen && id === app.current && !focused) view.fillSettings(roomOf(id));
  render();
}

async function deleteRoom() {
  const roomId = app.current;
  const name = (roomOf(roomId) || {}).name || 'the room';
  try {
    await api.deleteRoom(token(), roomId);
  } catch (e) {
    if (e.code !== 'not_found') return view.notify(`Could not delete the room. ${api.describe(e)}`);
  }
  forgetRoom(roomId, null);
  view.notify(`The room “${name}” was deleted.`, 'info', 6000);
}

async function loadBans(roomId) {
  try {
    const { bans } = await api.bans(token(), roomId);
    app.bans.set(roomId, bans);
    render();
  } catch (e) {
    if (e.code !== 'forbidden' && e.code !== 'not_found') view.notify(`Could not load the bans. ${api.describe(e)}`);
  }
}

async function inviteUser(user) {
  const roomId = app.current;
  try {
    await api.invite(token(), roomId, user.user_id);
  } catch (e) {
    return view.notify(`Could not invite ${user.username}. ${api.describe(e)}`);
  }
  if (!app.invited.has(roomId)) app.invited.set(roomId, new Map());
  app.invited.get(roomId).set(user.user_id, user.username);
  el.inviteQ.value = '';
  view.renderUserResults(el.inviteResults, null);
  view.notify(`${user.username} is invited.`, 'info', 4000);
  render();
}

async function revokeInvite(user) {
  const roomId = app.current;
  try {
    await api.uninvite(token(), roomId, user.user_id);
  } catch (e) {
    return view.notify(`Could not revoke the invitation. ${api.describe(e)}`);
  }
  const list = app.invited.get(roomId);
  if (list) list.delete(user.user_id);
  view.announce(`Invitation of ${user.username} revoked.`);
  render();
}

async function unbanUser(user) {
  const roomId = app.current;
  try {
    await api.unban(token(), roomId, user.user_id);
  } catch (e) {
    return view.notify(`Could not unban ${user.username}. ${api.describe(e)}`);
  }
  view.notify(`${user.username} is no longer banned.`, 'info', 4000);
  loadBans(roomId);
}

/** A member action from the member list: kick, ban, promote, demote or transfer. */
async function memberAction(action, userId, username) {
  const roomId = app.current;
  const reason = el.modReason.value.trim();
  const t = token();
  try {
    switch (action) {
      case 'kick':
        await api.kick(t, roomId, userId, reason);
        view.notify(`${username} was kicked.`, 'info', 4000);
        break;
      case 'ban':
        await api.ban(t, roomId, userId, reason);
        view.notify(`${username} was banned.`, 'info', 4000);
        loadBans(roomId);
        break;
      case 'promote':
      case 'demote': {
        const role = action === 'promote' ? 'moderator' : 'member';
        await api.setRole(t, roomId, userId, role);
        setMemberRole(roomId, userId, role);
        view.announce(`${username} is now a ${role}.`);
        break;
      }
      case 'transfer': {
        const room = await api.transferOwner(t, roomId, userId);
        setMemberRole(roomId, userId, 'owner');
        setMemberRole(roomId, app.session.user_id, 'moderator');
        roomUpdated(room);
        view.notify(`${username} is now the owner; you are a moderator.`, 'info', 6000);
        break;
      }
      default:
        return;
    }
  } catch (e) {
    return view.notify(`Could not ${action === 'transfer' ? 'hand over ownership' : action} ${username}. ${api.describe(e)}`);
  }
  if (action === 'kick' || action === 'ban') {
    el.modReason.value = '';
    const c = app.convs.get(roomId);
    if (c) c.members.delete(userId);
    render();
  }
}

function setMemberRole(roomId, userId, role) {
  const c = app.convs.get(roomId);
  if (c) c.membersVersion += 1;
  if (c && c.members.has(userId)) c.members.get(userId).role = role;
  if (userId === app.session.user_id) {
    const s = app.summaries.get(roomId);
    if (s) s.role = role;
    if (role !== 'owner' && role !== 'moderator' && roomId === app.current) app.settingsOpen = false;
  }
  if (role === 'owner') {
    const r = roomOf(roomId);
    if (r) r.owner_id = userId;
  }
  render();
}

// ---- people: search, direct messages, blocks -------------------------------------------------

/** A search box over GET /api/v1/users?q=: results rendered as they come, the latest wins. */
function userSearch(input, list, label, pick, exclude) {
  let timer = null;
  let asked = 0;
  const run = async () => {
    const q = input.value.trim();
    const mine = ++asked;
    if (!q) return view.renderUserResults(list, null);
    try {
      const { users } = await api.searchUsers(token(), q, 10);
      if (mine !== asked) return;
      const shown = users.filter((u) => !exclude(u));
      view.renderUserResults(list, shown, label, pick, `Nobody found starting with “${q}”.`);
    } catch (e) {
      if (mine === asked) view.renderUserResults(list, [], label, pick, api.describe(e));
    }
  };
  input.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(run, SEARCH_DELAY_MS);
  });
  input.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    clearTimeout(timer);
    run();
  });
}

async function openDm(user) {
  try {
    const room = await api.openDm(token(), user.user_id);
    el.dmQ.value = '';
    view.renderUserResults(el.dmResults, null);
    addSummary(room, 'member', { user_id: user.user_id, username: user.username, online: false });
    const s = app.summaries.get(room.room_id);
    if (s && !s.peer) s.peer = { user_id: user.user_id, username: user.username, online: false };
    openRoom(room.room_id);
    refreshMyRooms();
  } catch (e) {
    const why = e.code === 'forbidden' ? `${user.username} does not accept messages from you.` : api.describe(e);
    view.notify(`Could not open the conversation. ${why}`);
  }
}

async function refreshBlocks() {
  try {
    const { users } = await api.blocks(token());
    app.blocked = new Map(users.map((u) => [u.user_id, u.username]));
    render();
  } catch (e) {
    if (e.code === 'unauthorized') sessionEnded();
  }
}

function currentPeer() {
  const s = app.current && app.summaries.get(app.current);
  return s && s.room.kind === 'direct' ? s.peer : null;
}

async function toggleBlock() {
  const peer = currentPeer();
  if (!peer) return;
  if (app.blocked.has(peer.user_id)) await unblockUser(peer);
  else await blockUser(peer);
}

async function blockUser(user) {
  try {
    await api.block(token(), user.user_id);
  } catch (e) {
    return view.notify(`Could not block ${user.username}. ${api.describe(e)}`);
  }
  app.blocked.set(user.user_id, user.username);
  view.notify(`${user.username} is blocked: they cannot message you.`, 'info', 5000);
  render();
}

async function unblockUser(user) {
  try {
    await api.unblock(token(), user.user_id);
  } catch (e) {
    return view.notify(`Could not unblock ${user.username}. ${api.describe(e)}`);
  }
  app.blocked.delete(user.user_id);
  view.notify(`${user.username} is unblocked.`, 'info', 4000);
  render();
}

// ---- messages ----------------------------------------------------------------------------

const sendFrame = (e) => {
  const f = { type: 'send', room_id: e.room_id, body: e.body, client_msg_id: e.client_msg_id, ref: `send:${e.client_msg_id}` };
  if (e.reply_to) f.reply_to = e.reply_to;
  if (e.attachments.length) f.attachments = e.attachments.map((a) => a.file_id);
  return f;
};

/**
 * Sends the message box's text with the files uploaded for this room. A message of files alone
 * carries their names as its text (a body may not be blank: contract section 2), which also
 * makes it findable by search.
 */
function submitMessage(ev) {
  ev.preventDefault();
  const roomId = app.current;
  if (!roomId) return;
  if (uploads.busy(roomId)) return view.notify('Wait until the files are uploaded (or cancel them), then send.', 'warn', 5000);
  const attached = uploads.ready(roomId);
  const text = el.input.value;
  if (!text.trim() && !attached.length) return;
  const body = text.trim() ? text : attached.map((f) => f.name).join(', ').slice(0, 4000);
  uploads.take(roomId);
  const entry = app.outbox.add(roomId, body, reply.seqFor(roomId), attached);
  reply.clear();
  mentions.close();
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

/**
 * Unread messages of a room and, of those, the ones mentioning the user: the server's counts
 * (my rooms) plus what arrived since, or this device's count when it has read further.
 */
function countsOf(id) {
  if (id === app.current) return { unread: 0, mentions: 0 };
  const s = app.summaries.get(id);
  const c = app.convs.get(id);
  const me = app.session.user_id;
  const seen = app.seen[id] || 0;
  const serverRead = s ? s.last_read_seq || 0 : 0;
  const fromOthers = (after) => {
    const n = { unread: 0, mentions: 0 };
    if (!c) return n;
    for (const m of c.messages.values()) {
      if (m.seq <= after || m.sender_id === me || m.deleted) continue;
      n.unread += 1;
      if ((m.mentions || []).includes(me)) n.mentions += 1;
    }
    return n;
  };
  if (seen > serverRead) return fromOthers(seen);
  const live = fromOthers(s ? Math.max(s.last_seq || 0, seen) : seen);
  return { unread: (s ? s.unread || 0 : 0) + live.unread, mentions: (s ? s.mentions || 0 : 0) + live.mentions };
}

let seenSaveTimer = null;
/** The open room was seen up to its newest message: remember it, and tell the server (section 8). */
function markSeen(id) {
  const c = app.convs.get(id);
  if (!c) return;
  const newest = c.newestSeq();
  if (newest > (app.seen[id] || 0)) {
    app.seen[id] = newest;
    clearTimeout(seenSaveTimer);
    seenSaveTimer = setTimeout(() => app.session && saveLocal('seen', app.seen), 500);
  }
  const s = app.summaries.get(id);
  const read = Math.max(s ? s.last_read_seq || 0 : 0, app.lastReadSent.get(id) || 0);
  if (!s || newest <= read || app.readTimers.has(id)) return;
  // At most one read marker per room every READ_EVERY_MS: they share the user's frame budget.
  app.readTimers.set(
    id,
    setTimeout(() => {
      app.readTimers.delete(id);
      const seq = app.convs.has(id) ? app.convs.get(id).newestSeq() : 0;
      if (!seq || !app.joined.has(id) || !app.conn) return;
      if (app.conn.send({ type: 'read', room_id: id, seq, ref: `read:${id}` })) app.lastReadSent.set(id, seq);
    }, READ_EVERY_MS),
  );
}

/**
 * The server moved this user's read marker (a read here or on another device): the room's
 * `last_read_seq` follows, and so does its badge. Read up to the newest message known, nothing
 * is unread; read part of the way, the exact count comes from the server (my rooms).
 */
function onReadMarker(f) {
  const s = app.summaries.get(f.room_id);
  if (!s || !(f.seq > (s.last_read_seq || 0))) return;
  s.last_read_seq = f.seq;
  if (f.seq > (app.lastReadSent.get(f.room_id) || 0)) app.lastReadSent.set(f.room_id, f.seq);
  if (f.seq > (app.seen[f.room_id] || 0)) app.seen[f.room_id] = f.seq;
  const c = app.convs.get(f.room_id);
  const newest = Math.max(s.last_seq || 0, c ? c.newestSeq() || 0 : 0);
  if (f.seq >= newest) {
    s.last_seq = newest;
    s.unread = 0;
    s.mentions = 0;
  } else {
    refreshMyRoomsSoon(200);
  }
}

// ---- frames ------------------------------------------------------------------------------

let myRoomsSoon = null;
function refreshMyRoomsSoon(ms = 800) {
  clearTimeout(myRoomsSoon);
  myRoomsSoon = setTimeout(() => refreshMyRooms(), ms);
}

function onFrame(f) {
  const c = f.room_id ? app.convs.get(f.room_id) : null;
  switch (f.type) {
    case 'joined':
      onJoined(f);
      break;
    case 'message': {
      if (!c) break;
      const gap = c.receive(f);
      if (c.coversGap(gap)) sendJoin(f.room_id, gap);
      if (f.sender_id === app.session.user_id) app.outbox.entries.delete(f.client_msg_id);
      const s = app.summaries.get(f.room_id);
      if (s && (!s.last_message || f.seq > s.last_message.seq)) {
        s.last_message = f;
        app.order = [f.room_id, ...app.order.filter((x) => x !== f.room_id)];
      }
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
          reply_to: e.reply_to || null,
          edited_at: null,
          deleted: false,
          reactions: [],
          mentions: [],
          attachments: e.attachments || [],
          synthetic: true,
        });
      }
      break;
    }
    case 'message_updated': {
      if (!c) break;
      const gap = c.update(f);
      if (c.coversGap(gap)) sendJoin(f.room_id, gap);
      const s = app.summaries.get(f.room_id);
      if (s && s.last_message && f.message && s.last_message.seq === f.message.seq) s.last_message = f.message;
      mui.updated(c, f.message);
      break;
    }
    case 'receipt':
      if (c) setReceipt(c, f.user_id, null, f.seq);
      break;
    case 'notification':
      feed.onFrame(f);
      break;
    case 'edited':
    case 'deleted':
    case 'reacted':
    case 'unreacted':
      break; // what changed comes to every socket as message_updated
    case 'history':
      onHistory(f, c);
      break;
    case 'read_marker':
      onReadMarker(f);
      break;
    case 'left':
      break;
    case 'member_joined':
      if (app.invited.has(f.room_id)) app.invited.get(f.room_id).delete(f.user_id); // invitation used
      if (c) {
        c.membersVersion += 1;
        const known = c.members.get(f.user_id);
        c.members.set(f.user_id, {
          username: f.username,
          online: known ? known.online : true,
          role: known ? known.role : 'member',
        });
      }
      break;
    case 'member_left':
      if (c) {
        c.membersVersion += 1;
        c.members.delete(f.user_id);
      }
      if (f.user_id === app.session.user_id && app.joined.has(f.room_id)) refreshMyRoomsSoon(0); // left elsewhere
      break;
    case 'member_role':
      setMemberRole(f.room_id, f.user_id, f.role);
      if (f.user_id === app.session.user_id) refreshMyRoomsSoon();
      break;
    case 'room_updated':
      if (f.room) roomUpdated(f.room);
      refreshMyRoomsSoon();
      break;
    case 'kicked': {
      const room = roomOf(f.room_id);
      const name = room ? room.name : 'a room';
      const who = c && f.by && c.members.get(f.by) ? c.members.get(f.by).username : null;
      const reason = f.reason ? ` Reason: ${f.reason}` : '';
      forgetRoom(f.room_id, `You were removed from “${name}”${who ? ` by ${who}` : ''}.${reason}`, { keepListing: true });
      setTimeout(refreshRooms, 300);
      break;
    }
    case 'room_deleted': {
      const room = roomOf(f.room_id);
      if (app.joined.has(f.room_id) || room) {
        forgetRoom(f.room_id, `The room “${room ? room.name : f.room_id}” was deleted.`);
      }
      break;
    }
    case 'presence':
      if (c && c.members.has(f.user_id)) c.members.get(f.user_id).online = f.online;
      for (const s of app.summaries.values()) if (s.peer && s.peer.user_id === f.user_id) s.peer.online = f.online;
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
    if (f.room_id === app.current) resetMessages();
  }
  if (!c.synced) {
    c.synced = true;
    c.lastSeq = f.last_seq;
    c.lastEventSeq = typeof f.last_event_seq === 'number' ? f.last_event_seq : f.last_seq;
    c.joinedLast = f.last_seq;
    app.conn.send({ type: 'history', room_id: f.room_id, limit: 50, ref: `initial:${f.room_id}` });
  }
  if (f.room_id === app.current) loadMembers(f.room_id);
  if (!roomOf(f.room_id)) refreshMyRooms();
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
      c.rejoinSince = newest;
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
  if (ref.startsWith('read:')) return; // read markers are best effort (an agent without section 8)
  if (mui.onError(ref, f)) return;
  if (ref.startsWith('send:')) {
    const e = app.outbox.entries.get(ref.slice(5));
    if (!e) return;
    if (f.code === 'rate_limited' || f.code === 'unavailable') {
      const wait = f.retry_after_ms || 1000;
      view.notify(api.describe({ code: f.code, retryAfterMs: wait, message: f.message }), 'warn', wait + 1000);
      retrySend(e.client_msg_id, wait);
    } else {
      e.state = 'failed';
      e.error =
        f.code === 'forbidden'
          ? isDirect(e.room_id)
            ? 'this person does not accept your messages'
            : 'you may not send to this room'
          : f.message;
      view.notify(`Message not sent: ${e.error}.`);
    }
    return;
  }
  if (ref.startsWith('join:')) {
    const roomId = ref.slice(5);
    const c = app.convs.get(roomId);
    if (c) c.rejoining = false;
    if (f.code === 'not_found' || f.code === 'forbidden') {
      const name = (roomOf(roomId) || {}).name || 'a room';
      forgetRoom(roomId, `You can no longer open “${name}”: ${f.message}`, { keepListing: f.code === 'forbidden' });
      return;
    }
    if (f.code === 'rate_limited' || f.code === 'unavailable') {
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
  const summaries = app.order.map((id) => app.summaries.get(id)).filter(Boolean);
  const withUnread = summaries.map((s) => ({ ...s, ...countsOf(s.room.room_id) }));
  const mine = withUnread.filter((s) => s.room.kind !== 'direct');
  const dms = withUnread.filter((s) => s.room.kind === 'direct');
  const others = [...app.rooms.values()]
    .filter((r) => r.kind !== 'direct' && !app.joined.has(r.room_id))
    .sort((a, b) => a.name.localeCompare(b.name));
  view.renderRooms(mine, dms, others, app.current, { open: openRoom, join: joinRoom });
  view.renderUserActions(
    el.blockedList,
    [...app.blocked].map(([user_id, username]) => ({ user_id, username })),
    'Unblock',
    unblockUser,
    'Nobody.',
  );

  const id = app.current;
  const c = id ? conv(id) : null;
  const room = id ? roomOf(id) || { room_id: id, name: id, topic: '' } : null;
  const direct = id ? isDirect(id) : false;
  const role = id ? myRole(id) : null;
  const perm = id ? permissions(id) : { settings: false };
  const peer = currentPeer();
  view.renderRoomHeader(room, {
    title: direct && peer ? peer.username : room && room.name,
    kind: direct
      ? `Direct messages${peer ? ` with ${peer.username}${peer.online ? ' (online)' : ''}` : ''}`
      : room
        ? `${room.visibility === 'private' ? 'Private' : 'Public'} room · you are ${role === 'owner' ? 'the owner' : `a ${role}`}`
        : '',
    canSettings: perm.settings,
    canLeave: !direct && role !== 'owner',
    blockLabel: peer ? (app.blocked.has(peer.user_id) ? `Unblock ${peer.username}` : `Block ${peer.username}`) : null,
  });
  if (app.settingsOpen && !perm.settings) app.settingsOpen = false;
  view.renderSettings(app.settingsOpen, perm);
  if (app.settingsOpen) {
    const invited = app.invited.get(id) || new Map();
    view.renderUserActions(
      el.invitedList,
      [...invited].map(([user_id, username]) => ({ user_id, username })),
      'Revoke',
      revokeInvite,
      'No invitation sent from here.',
    );
    view.renderUserActions(
      el.banList,
      app.bans.get(id) || [],
      'Unban',
      unbanUser,
      'Nobody is banned.',
      (b) => `banned ${b.at}${b.reason ? `: ${b.reason}` : ''}`,
    );
  }
  const line = app.newLine && app.newLine.roomId === id ? app.newLine : null;
  const target = renderMessages(c, {
    ...mui.ctx(c),
    files,
    newAfter: line ? line.after : null,
    newUpTo: line ? line.upTo : null,
  });
  files.retain(shownFiles(c));
  uploads.render();
  mui.afterRender(c, target);
  reply.render(id, (seq) => (c ? c.find(seq) : null));
  view.renderMembers(c, { me: app.session.user_id, myRole: role, direct, act: memberAction });
  view.renderTyping(c);
  if (id && document.visibilityState !== 'hidden') markSeen(id);
}

/** The ids of the files the open conversation shows (its blob: URLs are kept, others revoked). */
function shownFiles(c) {
  const ids = new Set();
  if (!c) return ids;
  const add = (m) => {
    if (!m.deleted) for (const f of m.attachments || []) ids.add(f.file_id);
  };
  for (const m of c.messages.values()) add(m);
  for (const e of app.outbox.forRoom(c.roomId)) add(e);
  return ids;
}

// ---- start -------------------------------------------------------------------------------

const reply = new ReplyBar(() => el.input.focus());
const mentions = new MentionComplete(el.input, () => {
  const c = app.current && app.convs.get(app.current);
  if (!c || !app.session) return [];
  return [...c.members]
    .filter(([id]) => id !== app.session.user_id)
    .map(([user_id, m]) => ({ user_id, username: m.username }));
});
const mui = new MessageUi({
  app,
  render,
  send: (frame) => !!app.conn && app.conn.send(frame),
  notify: view.notify,
  announce: view.announce,
  loadOlder,
  reply,
  myRole,
  isDirect,
});
const feed = new Feed({
  token,
  roomName: (id) => {
    const s = app.summaries.get(id);
    if (s && s.peer) return s.peer.username;
    return (roomOf(id) || {}).name || null;
  },
  open: openNotification,
  notify: view.notify,
});

const files = new FileView({ token, render, notify: view.notify });
const uploads = new Uploads({ token, current: () => app.current, notify: view.notify, announce: view.announce });
const search = new Search({
  token,
  current: () => app.current,
  roomName: (id) => {
    const s = app.summaries.get(id);
    if (s && s.peer) return s.peer.username;
    return (roomOf(id) || {}).name || null;
  },
  open: openSearchResult,
});

/** A search result picked: its room, at its message (paged back to when older than what is loaded). */
async function openSearchResult(r) {
  if (!app.joined.has(r.room_id)) await refreshMyRooms();
  if (!app.joined.has(r.room_id)) return view.notify('That conversation is no longer open to you.', 'warn', 6000);
  if (app.current !== r.room_id) openRoom(r.room_id);
  mui.jump(r.seq);
}

/** A notification picked in the bell (or the system's): its room, at its message. */
async function openNotification(n) {
  if (n.kind === 'invite' && !app.joined.has(n.room_id)) return joinRoom(n.room_id);
  if (!app.joined.has(n.room_id)) await refreshMyRooms();
  if (!app.joined.has(n.room_id)) return view.notify('That conversation is no longer open to you.', 'warn', 6000);
  if (app.current !== n.room_id) openRoom(n.room_id);
  if (n.seq) mui.jump(n.seq);
}

document.getElementById('auth-form').addEventListener('submit', onAuthSubmit);
document.getElementById('logout').addEventListener('click', logOut);
document.getElementById('create-form').addEventListener('submit', createRoom);
document.getElementById('refresh-rooms').addEventListener('click', () => {
  refreshRooms();
  refreshMyRooms();
});
el.composer.addEventListener('submit', submitMessage);
el.leaveBtn.addEventListener('click', leaveRoom);
el.settingsBtn.addEventListener('click', toggleSettings);
el.settingsForm.addEventListener('submit', saveSettings);
el.blockBtn.addEventListener('click', toggleBlock);
el.deleteBtn.addEventListener('click', () => {
  el.deleteConfirmBox.hidden = false;
  el.deleteBtn.hidden = true;
  el.deleteCancel.focus();
});
el.deleteCancel.addEventListener('click', () => {
  el.deleteConfirmBox.hidden = true;
  el.deleteBtn.hidden = false;
  el.deleteBtn.focus();
});
el.deleteConfirm.addEventListener('click', deleteRoom);
el.olderBtn.addEventListener('click', loadOlder);
el.input.addEventListener('input', onTypingInput);
el.input.addEventListener('keydown', (ev) => {
  if (mentions.onKey(ev)) return;
  if (ev.key === 'Escape' && app.current && reply.seqFor(app.current) !== null) {
    ev.preventDefault();
    reply.clear();
    render();
    return;
  }
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    el.composer.requestSubmit();
  }
});
el.scroller.addEventListener('scroll', () => {
  if (el.scroller.scrollTop < 80) loadOlder();
});
userSearch(el.dmQ, el.dmResults, 'Message', openDm, (u) => u.user_id === app.session.user_id);
userSearch(el.inviteQ, el.inviteResults, 'Invite', inviteUser, (u) => {
  const c = app.current && app.convs.get(app.current);
  return u.user_id === app.session.user_id || !!(c && c.members.has(u.user_id));
});
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && app.session) {
    refreshMyRooms();
    render();
  }
});

const saved = loadSession();
if (saved) start(saved);
else view.showAuth(true);
