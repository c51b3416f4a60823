// The client's model of one room: messages keyed by `seq` (so a message seen twice, from a
// replay, a history page and the live stream, is kept once) and always read back sorted by `seq`,
// plus the position of the live stream used to detect gaps (contract sections 4 and 7: the
// `prev_seq` chain of messages and the `prev_event_seq` chain of change events).

export class Conversation {
  constructor(roomId) {
    this.roomId = roomId;
    /** seq -> Message */
    this.messages = new Map();
    /** Highest seq received through the live stream or a replay; 0 before the first join. */
    this.lastSeq = 0;
    /** Highest change `event_seq` received (from `joined.last_event_seq` on a fresh join). */
    this.lastEventSeq = 0;
    /** Messages quoted by replies but not loaded in `messages` (seq -> Message), kept apart so
     * that paging history (which pages before the oldest loaded seq) skips nothing. */
    this.quoted = new Map();
    /** user_id -> {username, seq}: how far each other member has read (section 8 receipts). */
    this.receipts = new Map();
    /** Whether this room was ever joined on a socket (so later joins pass `since`). */
    this.synced = false;
    /** The room's newest seq when the last fresh join took effect. */
    this.joinedLast = 0;
    this.hasMore = true;
    this.loadingOlder = false;
    this.rejoining = false;
    /** The `since` of the join in flight (null for a fresh one). */
    this.rejoinSince = null;
    /** user_id -> {username, online, role} */
    this.members = new Map();
    /** Counts member frames (joined, left, role): a member list read meanwhile is stale. */
    this.membersVersion = 0;
    /** user_id -> {username, until} */
    this.typing = new Map();
    /** Live messages from others that arrived while another room was open. */
    this.unread = 0;
  }

  /**
   * Adds a message, or takes its newer state (pages and replays carry each message in its
   * current state); a deleted message never comes back. Returns true when it was new.
   */
  add(message) {
    const known = this.messages.get(message.seq);
    if (known && !known.synthetic && known.deleted && !message.deleted) return false;
    this.messages.set(message.seq, message);
    this.quoted.delete(message.seq);
    return !known;
  }

  /** A live or replayed message: returns the `since` to rejoin with when a gap shows, or null. */
  receive(message) {
    let gapSince = null;
    if (this.synced && message.seq > this.lastSeq && message.prev_seq > this.lastSeq) {
      // Messages after lastSeq are missing: replay from there (changes after it come again in
      // their current state, which is harmless).
      gapSince = this.lastSeq;
    }
    this.add(message);
    if (message.seq > this.lastSeq) this.lastSeq = message.seq;
    return gapSince;
  }

  /**
   * A `message_updated` frame: the message's whole new state replaces the one kept (loaded or
   * quoted), blindly. Returns the `since` to rejoin with when `prev_event_seq` shows a missed
   * change, or null.
   */
  update(frame) {
    let gapSince = null;
    if (this.synced && frame.event_seq > this.lastEventSeq && frame.prev_event_seq > this.lastEventSeq) {
      gapSince = this.lastEventSeq;
    }
    const m = frame.message;
    if (m && this.messages.has(m.seq)) this.messages.set(m.seq, m);
    else if (m && this.quoted.has(m.seq)) this.quoted.set(m.seq, m);
    if (frame.event_seq > this.lastEventSeq) this.lastEventSeq = frame.event_seq;
    return gapSince;
  }

  /**
   * Whether a gap found at `gapSince` (null: none) needs a join: none is in flight, or the one
   * in flight replays from later than the gap (a change gap found during a message gap's join).
   */
  coversGap(gapSince) {
    if (gapSince === null) return false;
    return !this.rejoining || (this.rejoinSince !== null && gapSince < this.rejoinSince);
  }

  /** Where a reconnecting socket resumes: the newest sequence value seen of either kind. */
  since() {
    return Math.max(this.lastSeq, this.lastEventSeq);
  }

  /** The message at `seq`, loaded or quoted. */
  find(seq) {
    return this.messages.get(seq) || this.quoted.get(seq) || null;
  }

  oldestSeq() {
    let min = Infinity;
    for (const seq of this.messages.keys()) if (seq < min) min = seq;
    return min === Infinity ? null : min;
  }

  newestSeq() {
    let max = 0;
    for (const seq of this.messages.keys()) if (seq > max) max = seq;
    return max;
  }

  sorted() {
    return [...this.messages.values()].sort((a, b) => a.seq - b.seq);
  }

  /** Forget everything (the server could not replay what was missed: page history again). */
  reset() {
    this.messages.clear();
    this.quoted.clear();
    this.lastSeq = 0;
    this.lastEventSeq = 0;
    this.synced = false;
    this.hasMore = true;
  }

  typingNames(now = Date.now()) {
    const names = [];
    for (const [id, t] of this.typing) {
      if (t.until > now) names.push(t.username);
      else this.typing.delete(id);
    }
    return names;
  }
}

/** Unacknowledged sends, kept until the ack (or the message itself) confirms them. */
export class Outbox {
  constructor() {
    /** client_msg_id -> {room_id, body, reply_to, attachments (Files), client_msg_id, state,
     * error, created} */
    this.entries = new Map();
  }

  static newId() {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return 'c' + [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  }

  /** `replyTo`: the seq of the message answered, or null; `attachments`: the Files it carries. */
  add(roomId, body, replyTo = null, attachments = []) {
    const entry = {
      room_id: roomId,
      body,
      reply_to: replyTo,
      attachments,
      client_msg_id: Outbox.newId(),
      state: 'pending',
      error: null,
      created: Date.now(),
    };
    this.entries.set(entry.client_msg_id, entry);
    return entry;
  }

  forRoom(roomId) {
    return [...this.entries.values()]
      .filter((e) => e.room_id === roomId)
      .sort((a, b) => a.created - b.created);
  }

  pending() {
    return [...this.entries.values()]
      .filter((e) => e.state === 'pending')
      .sort((a, b) => a.created - b.created);
  }
}
