// HTTP API of the contract (section 2). Every failure becomes an ApiError carrying the
// contract's error code, so the UI can say what went wrong (rate limited, forbidden, ...).

export class ApiError extends Error {
  constructor(status, code, message, retryAfterMs) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
}

/** One request; `token` adds the Bearer header, `timeoutMs` bounds the wait. Resolves to the
 * parsed JSON body (null when there is none, as for a 204). */
export async function request(method, path, { token, body, timeoutMs } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined,
    });
  } catch (e) {
    throw new ApiError(0, 'offline', 'The server cannot be reached. Check your connection.');
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const err = data && data.error ? data.error : {};
    throw new ApiError(
      response.status,
      err.code || 'internal',
      err.message || `HTTP ${response.status}`,
      err.retry_after_ms,
    );
  }
  return data;
}

export const register = (username, password) =>
  request('POST', '/api/v1/auth/register', { body: { username, password } });
export const login = (username, password) =>
  request('POST', '/api/v1/auth/login', { body: { username, password } });
/** Revokes `token` on the server (every agent refuses it and closes its sockets): 204. */
export const logout = (token) => request('POST', '/api/v1/auth/logout', { token, timeoutMs: 10000 });
export const me = (token) => request('GET', '/api/v1/me', { token });
const room = (roomId) => `/api/v1/rooms/${encodeURIComponent(roomId)}`;
const user = (userId) => encodeURIComponent(userId);

/** `visibility` is "public" or "private" (contract section 5). */
export const createRoom = (token, name, topic, visibility) => {
  const body = { name };
  if (topic) body.topic = topic;
  if (visibility) body.visibility = visibility;
  return request('POST', '/api/v1/rooms', { token, body });
};
export const getRoom = (token, roomId) => request('GET', room(roomId), { token });
export const joinRoom = (token, roomId) => request('POST', `${room(roomId)}/join`, { token });
export const leaveRoom = (token, roomId) => request('POST', `${room(roomId)}/leave`, { token });
/** `changes`: any of {name, topic, visibility}. Answers the Room. */
export const updateRoom = (token, roomId, changes) => request('PATCH', room(roomId), { token, body: changes });
export const deleteRoom = (token, roomId) => request('DELETE', room(roomId), { token });
export const invite = (token, roomId, userId) =>
  request('POST', `${room(roomId)}/invites`, { token, body: { user_id: userId } });
export const uninvite = (token, roomId, userId) =>
  request('DELETE', `${room(roomId)}/invites/${user(userId)}`, { token });
export const setRole = (token, roomId, userId, role) =>
  request('PUT', `${room(roomId)}/members/${user(userId)}/role`, { token, body: { role } });
export const transferOwner = (token, roomId, userId) =>
  request('POST', `${room(roomId)}/owner`, { token, body: { user_id: userId } });
const reasonBody = (reason) => (reason ? { reason } : {});
export const kick = (token, roomId, userId, reason) =>
  request('POST', `${room(roomId)}/members/${user(userId)}/kick`, { token, body: reasonBody(reason) });
export const ban = (token, roomId, userId, reason) =>
  request('PUT', `${room(roomId)}/bans/${user(userId)}`, { token, body: reasonBody(reason) });
export const unban = (token, roomId, userId) => request('DELETE', `${room(roomId)}/bans/${user(userId)}`, { token });
export const bans = (token, roomId) => request('GET', `${room(roomId)}/bans`, { token });
/** My rooms: `{rooms: [RoomSummary]}`, most recent activity first. */
export const myRooms = (token) => request('GET', '/api/v1/me/rooms', { token });
/** The direct Room of the caller and `userId`, created on first use. */
export const openDm = (token, userId) => request('POST', '/api/v1/dms', { token, body: { user_id: userId } });
export const block = (token, userId) => request('PUT', `/api/v1/me/blocks/${user(userId)}`, { token });
export const unblock = (token, userId) => request('DELETE', `/api/v1/me/blocks/${user(userId)}`, { token });
export const blocks = (token) => request('GET', '/api/v1/me/blocks', { token });
/** Users whose name starts with `q` (ignoring case): `{users: [{user_id, username}]}`. */
export const searchUsers = (token, q, limit = 10) =>
  request('GET', `/api/v1/users?${new URLSearchParams({ q, limit: String(limit) })}`, { token });

/** One page of a room's history (`before`/`after` are seq values): `{messages, has_more}`. */
export const messages = (token, roomId, { before, after, limit } = {}) => {
  const q = new URLSearchParams();
  if (before) q.set('before', String(before));
  if (after !== undefined) q.set('after', String(after));
  if (limit) q.set('limit', String(limit));
  return request('GET', `${room(roomId)}/messages?${q}`, { token });
};
/** How far each member has read (section 8): `{receipts: [{user_id, username, last_read_seq}]}`. */
export const receipts = (token, roomId) => request('GET', `${room(roomId)}/receipts`, { token });
/** The user's feed, newest first (section 8): `{notifications, next_cursor}`. */
export const notifications = (token, before, limit = 50) => {
  const q = new URLSearchParams({ limit: String(limit) });
  if (before) q.set('before', before);
  return request('GET', `/api/v1/me/notifications?${q}`, { token });
};
/** Marks the notification `upTo` and every older one read. */
export const readNotifications = (token, upTo) =>
  request('POST', '/api/v1/me/notifications/read', { token, body: { up_to: upTo } });

/** Messages holding every word of `q` (section 9), newest first: `{results: [{room_id, seq,
 * message}], next_cursor}`; `roomId` keeps one room, `before` is a previous `next_cursor`. */
export const searchMessages = (token, q, { roomId, before, limit = 20 } = {}) => {
  const p = new URLSearchParams({ q, limit: String(limit) });
  if (roomId) p.set('room_id', roomId);
  if (before) p.set('before', before);
  return request('GET', `/api/v1/search/messages?${p}`, { token, timeoutMs: 15000 });
};
/** Where a file's bytes are served (section 9; members of its room, with the Bearer token). */
export const fileUrl = (fileId) => `/api/v1/files/${encodeURIComponent(fileId)}`;
/** Where a file is uploaded to a room, named `name`. */
export const uploadUrl = (roomId, name) => `${room(roomId)}/files?${new URLSearchParams({ name })}`;

/** Every member (with `role`), following `next_cursor` a bounded number of pages. */
export async function members(token, roomId, maxPages = 5) {
  const all = [];
  let cursor = null;
  for (let page = 0; page < maxPages; page += 1) {
    const q = new URLSearchParams();
    if (cursor) q.set('cursor', cursor);
    const qs = q.toString();
    const reply = await request('GET', `${room(roomId)}/members${qs ? `?${qs}` : ''}`, { token });
    all.push(...reply.members);
    cursor = reply.next_cursor;
    if (!cursor) break;
  }
  return { members: all };
}

/** Every room, following `next_cursor` (bounded, so a huge directory cannot stall the page). */
export async function allRooms(token, maxPages = 20) {
  const rooms = [];
  let cursor = null;
  for (let page = 0; page < maxPages; page += 1) {
    const q = new URLSearchParams({ limit: '100' });
    if (cursor) q.set('cursor', cursor);
    const reply = await request('GET', `/api/v1/rooms?${q}`, { token });
    rooms.push(...reply.rooms);
    cursor = reply.next_cursor;
    if (!cursor) break;
  }
  return rooms;
}

/** A human sentence for an error, with the wait when rate limited. */
export function describe(err) {
  switch (err.code) {
    case 'rate_limited': {
      const secs = Math.max(1, Math.ceil((err.retryAfterMs || 1000) / 1000));
      return `Slow down: too many requests. Try again in ${secs} s.`;
    }
    case 'forbidden':
      return `Not allowed: ${err.message}`;
    case 'not_found':
      return `Not found: ${err.message}`;
    case 'conflict':
      return `Not possible now: ${err.message}`;
    case 'unauthorized':
      return `Not signed in or wrong credentials: ${err.message}`;
    case 'too_large':
      return `Too large: ${err.message}`;
    case 'offline':
      return err.message;
    default:
      return err.message || String(err);
  }
}
