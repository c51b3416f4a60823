// One WebSocket to the agent that keeps itself open: exponential back-off with jitter on
// failure, a ping heartbeat to notice dead links that never report a close, and an immediate
// retry when the browser comes back online. Frames are only sent after `ready`.
//
// The token goes in an `auth` frame, the first frame sent, never in the URL (`/ws?token=` would
// put it in proxies' access logs and the browser's history). A refused token (expired, revoked by
// a logout) is `unauthorized`: the connection stops and tells its owner, it does not retry.

const PING_EVERY_MS = 15000;
const DEAD_AFTER_MS = 40000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;
const AUTH_REF = 'auth';
/** The close code of a socket whose token ended (expired or revoked). */
const CLOSE_POLICY = 1008;

export class Connection extends EventTarget {
  constructor(tokenProvider) {
    super();
    this.tokenProvider = tokenProvider;
    this.ws = null;
    this.ready = false;
    this.attempt = 0;
    this.stopped = true;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastFrameAt = 0;
    window.addEventListener('online', () => this.kick());
    window.addEventListener('offline', () => this.drop('offline'));
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.drop('stopped');
  }

  /** Sends a frame when ready; returns false when it could not be sent (the caller retries). */
  send(frame) {
    if (!this.ready || !this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Reconnects now instead of waiting for the back-off (e.g. the network came back). */
  kick() {
    if (this.stopped || (this.ws && this.ws.readyState <= WebSocket.OPEN)) return;
    clearTimeout(this.retryTimer);
    this.open();
  }

  open() {
    if (this.stopped) return;
    const token = this.tokenProvider();
    if (!token) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws = ws;
    this.emit('connecting', { attempt: this.attempt });
    ws.onopen = () => {
      if (ws === this.ws) ws.send(JSON.stringify({ type: 'auth', token, ref: AUTH_REF }));
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      this.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (frame.type === 'ready') {
        this.ready = true;
        this.attempt = 0;
        this.emit('ready', frame);
      } else if (!this.ready && frame.type === 'error' && frame.ref === AUTH_REF) {
        // The token was refused: for good when unauthorized, otherwise (unavailable, rate
        // limited) try again after the back-off.
        if (frame.code === 'unauthorized') this.refused(frame.message);
        else this.drop(`not signed in: ${frame.message}`);
      } else if (this.ready && frame.type === 'error' && frame.code === 'unauthorized' && !frame.ref) {
        // Said of no frame of ours: the token ended (expired, or revoked by a logout) and the
        // server closes the socket next, with 1008.
        this.refused(frame.message);
      } else if (frame.type !== 'pong') {
        this.emit('frame', frame);
      }
    };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      this.lost(`closed (${ev.code})`, ev.code);
    };
    ws.onerror = () => {};
    clearInterval(this.pingTimer);
    this.lastFrameAt = Date.now();
    this.pingTimer = setInterval(() => this.heartbeat(ws), PING_EVERY_MS / 3);
  }

  heartbeat(ws) {
    if (ws !== this.ws) return;
    if (Date.now() - this.lastFrameAt > DEAD_AFTER_MS) {
      this.drop('no answer from the server');
      return;
    }
    if (this.ready && Date.now() - this.lastFrameAt > PING_EVERY_MS) {
      this.send({ type: 'ping' });
    }
  }

  /** Closes the current socket on purpose and schedules a reconnect (unless stopped). */
  drop(reason) {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    try {
      ws.close();
    } catch {
      /* already closed */
    }
    this.lost(reason);
  }

  /** The server refused the token: stop for good and let the owner end the session. */
  refused(reason) {
    this.stop();
    this.emit('unauthorized', { reason });
  }

  /** The socket is gone; `code` is its close code when the server closed it (1008: the token
   * ended, which the owner checks over HTTP). Reconnects after the back-off unless stopped. */
  lost(reason, code = 0) {
    const wasReady = this.ready;
    this.ready = false;
    this.ws = null;
    clearInterval(this.pingTimer);
    this.emit('down', { reason, wasReady, attempt: this.attempt, tokenEnded: code === CLOSE_POLICY });
    if (this.stopped) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempt += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (navigator.onLine === false) {
        this.lost('offline');
        return;
      }
      this.open();
    }, delay);
  }

  emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }
}
