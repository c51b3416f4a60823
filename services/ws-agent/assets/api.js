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
export const createRoom = (token, name, topic) =>
  request('POST', '/api/v1/rooms', { token, body: topic ? { name, topic } : { name } });
export const members = (token, roomId) =>
  request('GET', `/api/v1/rooms/${encodeURIComponent(roomId)}/members`, { token });

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
    case 'unauthorized':
      return `Not signed in or wrong credentials: ${err.message}`;
    case 'offline':
      return err.message;
    default:
      return err.message || String(err);
  }
}
