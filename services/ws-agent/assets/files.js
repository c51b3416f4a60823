// Attaching files to the next message (contract section 9): the attach button (a file picker,
// several at once), files or images pasted into the message box, and files dropped on the
// conversation. Each file is uploaded at once, on its own request (`POST .../files?name=`, the
// raw bytes as the body with the file's type), through XMLHttpRequest because fetch reports no
// upload progress; it shows as a chip above the message box with its progress and a cancel, then
// as ready (removable) or failed (why, with retry). The ready ones go with the next message as
// `attachments` (section 7: 1 to 10 file ids of the same room). Uploads belong to the room they
// were made in: switching rooms keeps them there. At most a few run at once; the rest wait.

import * as api from './api.js';
import { formatSize } from './attachments.js';
import { node } from './view.js';

const $ = (id) => document.getElementById(id);
/** A message carries at most this many files (contract section 7). */
export const MAX_ATTACHMENTS = 10;
const PARALLEL = 3;
const UPLOAD_TIMEOUT_MS = 10 * 60 * 1000;
let nextId = 1;

/** The sentence for a failed upload of `name` (`size` bytes). */
function failure(name, size, status, err) {
  const message = (err && err.message) || '';
  switch (status) {
    case 413: {
      // The server says its limit in bytes ("a file is at most N bytes").
      const limit = /(\d+)\s*bytes/.exec(message);
      const max = limit ? Number(limit[1]) : null;
      // Rounded alike ("256 KB" over "256 KB"), the sizes are said in bytes.
      const say = (n) => (max !== null && formatSize(size) === formatSize(max) ? `${n.toLocaleString()} bytes` : formatSize(n));
      const most = max !== null ? `files may be at most ${say(max)}` : message;
      return `“${name}” (${say(size)}) is too large for this server${most ? `: ${most}` : ''}.`;
    }
    case 429: {
      const secs = Math.max(1, Math.ceil(((err && err.retry_after_ms) || 1000) / 1000));
      return `Too many uploads or too many bytes today: try again in ${secs} s.`;
    }
    case 403:
      return 'You may not upload files to this room.';
    case 404:
      return 'This room no longer exists or is not open to you.';
    case 401:
      return 'Not signed in: log in again.';
    case 503:
      return 'The server is busy: try again in a moment.';
    case 0:
      return 'The server cannot be reached.';
    default:
      return message || `The upload failed (HTTP ${status}).`;
  }
}

export class Uploads {
  /** `deps`: {token(), current() -> the open room id, notify(text, kind, ms), announce(text)}. */
  constructor(deps) {
    this.deps = deps;
    /** room_id -> [Upload]; Upload: {id, roomId, file, name, size, type, state ('queued',
     * 'uploading', 'done', 'failed'), loaded, xhr, result (File), error} */
    this.byRoom = new Map();
    this.running = 0;
    this.list = $('attach-list');
    this.input = $('attach-input');
    this.frame = 0;
    $('attach-btn').addEventListener('click', () => this.input.click());
    this.input.addEventListener('change', () => {
      this.add([...this.input.files]);
      this.input.value = '';
    });
    $('composer-input').addEventListener('paste', (ev) => {
      const files = [...((ev.clipboardData && ev.clipboardData.files) || [])];
      if (!files.length) return; // plain text pastes as usual
      ev.preventDefault();
      this.add(files);
    });
    this.dropZone($('conversation'));
  }

  /** Files dragged over the conversation are dropped into the open room's attachments. */
  dropZone(zone) {
    const carriesFiles = (ev) => ev.dataTransfer && [...(ev.dataTransfer.types || [])].includes('Files');
    let depth = 0;
    zone.addEventListener('dragenter', (ev) => {
      if (!carriesFiles(ev) || !this.deps.current()) return;
      depth += 1;
      zone.classList.add('dropping');
    });
    zone.addEventListener('dragover', (ev) => {
      if (!carriesFiles(ev) || !this.deps.current()) return;
      ev.preventDefault(); // allows the drop
      ev.dataTransfer.dropEffect = 'copy';
    });
    zone.addEventListener('dragleave', () => {
      depth = Math.max(0, depth - 1);
      if (!depth) zone.classList.remove('dropping');
    });
    // A file dropped anywhere else (or with no room open) must not make the browser open it,
    // leaving the page: such drops do nothing.
    for (const type of ['dragover', 'drop']) {
      document.addEventListener(type, (ev) => {
        if (carriesFiles(ev) && !ev.defaultPrevented) ev.preventDefault();
      });
    }
    zone.addEventListener('drop', (ev) => {
      depth = 0;
      zone.classList.remove('dropping');
      const files = [...((ev.dataTransfer && ev.dataTransfer.files) || [])];
      if (!files.length || !this.deps.current()) return;
      ev.preventDefault();
      this.add(files);
    });
  }

  of(roomId) {
    return this.byRoom.get(roomId) || [];
  }

  /** Queues `files` for upload to the open room, up to what one message can carry. */
  add(files) {
    const roomId = this.deps.current();
    if (!roomId || !files.length) return;
    const list = this.of(roomId);
    const room = MAX_ATTACHMENTS - list.length;
    if (files.length > room) {
      this.deps.notify(`A message carries at most ${MAX_ATTACHMENTS} files: ${files.length - Math.max(0, room)} not added.`, 'warn', 6000);
    }
    for (const file of files.slice(0, Math.max(0, room))) {
      list.push({
        id: nextId++,
        roomId,
        file,
        // A pasted image may come without a name.
        name: file.name || `pasted-${new Date().toISOString().replace(/[:.]/g, '-')}.${(file.type.split('/')[1] || 'bin').replace(/[^a-z0-9]/gi, '')}`,
        size: file.size,
        type: file.type || 'application/octet-stream',
        state: 'queued',
        loaded: 0,
        xhr: null,
        result: null,
        error: null,
      });
    }
    this.byRoom.set(roomId, list);
    this.pump();
    this.render();
  }

  pump() {
    for (const list of this.byRoom.values()) {
      for (const u of list) {
        if (this.running >= PARALLEL) return;
        if (u.state === 'queued') this.start(u);
      }
    }
  }

  start(u) {
    u.state = 'uploading';
    u.loaded = 0;
    u.error = null;
    this.running += 1;
    const xhr = new XMLHttpRequest();
    u.xhr = xhr;
    xhr.open('POST', api.uploadUrl(u.roomId, u.name));
    xhr.setRequestHeader('Authorization', `Bearer ${this.deps.token()}`);
    xhr.setRequestHeader('Content-Type', u.type);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.timeout = UPLOAD_TIMEOUT_MS;
    xhr.upload.addEventListener('progress', (ev) => {
      if (!ev.lengthComputable) return;
      u.loaded = ev.loaded;
      this.renderSoon();
    });
    const finish = (state, error, result) => {
      if (u.xhr !== xhr) return; // cancelled or retried meanwhile
      u.xhr = null;
      u.state = state;
      u.error = error;
      u.result = result;
      if (state === 'done') u.loaded = u.size;
      this.running -= 1;
      // Said once per upload (the chips themselves change with every progress event).
      if (state === 'failed') this.deps.announce(`Upload of ${u.name} failed: ${error}`);
      else this.deps.announce(`${u.name} is uploaded and goes with your next message.`);
      this.pump();
      this.render();
    };
    xhr.addEventListener('load', () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if (xhr.status === 201 && body && body.file_id) return finish('done', null, body);
      finish('failed', failure(u.name, u.size, xhr.status, body && body.error), null);
    });
    xhr.addEventListener('error', () => finish('failed', failure(u.name, u.size, 0), null));
    xhr.addEventListener('timeout', () => finish('failed', 'The upload took too long.', null));
    xhr.send(u.file);
    this.render();
  }

  /** Cancels (when uploading) and removes an upload. */
  remove(u, { focus = true } = {}) {
    if (u.xhr) {
      const xhr = u.xhr;
      u.xhr = null;
      this.running -= 1;
      xhr.abort();
    }
    const list = this.of(u.roomId).filter((x) => x !== u);
    if (list.length) this.byRoom.set(u.roomId, list);
    else this.byRoom.delete(u.roomId);
    this.pump();
    this.render();
    if (focus) $('composer-input').focus();
  }

  retry(u) {
    if (u.state !== 'failed') return;
    u.state = 'queued';
    this.pump();
    this.render();
  }

  /** Whether an upload of `roomId` is still running or waiting. */
  busy(roomId) {
    return this.of(roomId).some((u) => u.state === 'queued' || u.state === 'uploading');
  }

  /** The Files uploaded to `roomId` and not yet sent. */
  ready(roomId) {
    return this.of(roomId)
      .filter((u) => u.state === 'done')
      .map((u) => u.result);
  }

  /** The ready Files of `roomId`, taken out of the composer (they go with a message). */
  take(roomId) {
    const files = this.ready(roomId);
    const left = this.of(roomId).filter((u) => u.state !== 'done');
    if (left.length) this.byRoom.set(roomId, left);
    else this.byRoom.delete(roomId);
    this.render();
    return files;
  }

  /** Drops every upload of `roomId` (the room is gone), cancelling those in flight. */
  forget(roomId) {
    for (const u of this.of(roomId)) if (u.xhr) this.remove(u, { focus: false });
    this.byRoom.delete(roomId);
    this.render();
  }

  reset() {
    for (const roomId of [...this.byRoom.keys()]) this.forget(roomId);
  }

  renderSoon() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  /** The chips of the open room's uploads. */
  render() {
    const list = this.of(this.deps.current());
    this.list.hidden = !list.length;
    const focused = this.list.contains(document.activeElement) ? document.activeElement.dataset.focusKey : null;
    this.list.replaceChildren(
      ...list.map((u) => {
        const pct = u.size ? Math.min(100, Math.round((u.loaded / u.size) * 100)) : 0;
        const status =
          u.state === 'done'
            ? 'ready'
            : u.state === 'failed'
              ? u.error
              : u.state === 'queued'
                ? 'waiting…'
                : `${pct}%`;
        return node(
          'li',
          { class: `upload ${u.state}`, 'data-upload': u.name, 'data-state': u.state, 'data-file-id': u.result ? u.result.file_id : null },
          node('span', { class: 'file-name', text: u.name }),
          node('span', { class: 'file-size', text: formatSize(u.size) }),
          u.state === 'uploading' || u.state === 'queued'
            ? node('progress', { max: '100', value: String(pct), 'aria-label': `Uploading ${u.name}` })
            : null,
          node('span', { class: 'upload-status', text: status }),
          u.state === 'failed'
            ? node('button', {
                type: 'button',
                class: 'small secondary',
                'data-upload-action': 'retry',
                'data-focus-key': `retry:${u.id}`,
                'aria-label': `Retry uploading ${u.name}`,
                text: 'Retry',
                onclick: () => this.retry(u),
              })
            : null,
          node('button', {
            type: 'button',
            class: 'small secondary',
            'data-upload-action': u.state === 'done' || u.state === 'failed' ? 'remove' : 'cancel',
            'data-focus-key': `remove:${u.id}`,
            'aria-label': u.state === 'done' || u.state === 'failed' ? `Remove ${u.name}` : `Cancel uploading ${u.name}`,
            text: u.state === 'done' || u.state === 'failed' ? 'Remove' : 'Cancel',
            onclick: () => this.remove(u),
          }),
        );
      }),
    );
    if (focused) {
      const again = this.list.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }
}
