// The files a message carries (contract section 9), as the conversation shows them. Images
// (png, jpeg, gif, webp) show inline; any other file is a chip with its name and size that
// downloads it under its own name. The file route wants the Bearer token, which an <img src> or
// a plain link cannot send, so the bytes are fetched with it into a `blob:` URL: kept while a
// message of the open room shows the file, revoked as soon as none does (a deletion, another
// room), and bounded in number, in size and in parallel fetches. A click on an image opens it
// larger in a modal dialog (Escape closes it).

import * as api from './api.js';
import { node } from './view.js';

const $ = (id) => document.getElementById(id);
/** The types shown inline (the server keeps them inline too; anything else is an attachment). */
export const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
/** Images larger than this are not previewed (a chip downloads them instead). */
const PREVIEW_MAX_BYTES = 16 * 1024 * 1024;
const MAX_CACHED = 200;
const PARALLEL = 4;
const FETCH_TIMEOUT_MS = 60000;
const FETCH_ATTEMPTS = 3;
const RETRY_MS = 1000;
const RETRY_MAX_MS = 10000;
/** A downloaded file's blob: URL lives this long after its link was clicked. */
const DOWNLOAD_URL_MS = 60000;

/** "512 B", "12 KB", "3.4 MB". */
export function formatSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} KB`;
  if (n < 1024 * 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} MB`;
  return `${(n / (1024 * 1024 * 1024)).toFixed(1)} GB`;
}

const isImage = (f) => IMAGE_TYPES.has((f.content_type || '').split(';')[0].trim().toLowerCase()) && f.size <= PREVIEW_MAX_BYTES;

/** Why a file could not be read, in words. */
function why(status) {
  if (status === 404) return 'no longer available';
  if (status === 429) return 'too many requests, try again later';
  if (status === 503) return 'the server is busy, try again later';
  if (status === 0) return 'the server cannot be reached';
  return `error ${status}`;
}

export class FileView {
  /** `deps`: {token(), render(), notify(text, kind, ms)}. */
  constructor(deps) {
    this.deps = deps;
    /** file_id -> {state: 'queued' | 'loading' | 'ready' | 'failed', url, error} */
    this.cache = new Map();
    this.queue = [];
    this.running = 0;
    this.dialog = $('lightbox');
    this.dialogImg = $('lightbox-img');
    this.dialogName = $('lightbox-name');
    this.shown = null; // the File in the dialog
    $('lightbox-close').addEventListener('click', () => this.dialog.close());
    $('lightbox-download').addEventListener('click', () => this.shown && this.download(this.shown));
    // A click on the backdrop (the dialog itself, outside its box) closes it.
    this.dialog.addEventListener('click', (ev) => {
      if (ev.target === this.dialog) this.dialog.close();
    });
    this.dialog.addEventListener('close', () => {
      this.shown = null;
      this.dialogImg.removeAttribute('src');
    });
  }

  /**
   * What a message shows of file `f`: its view model. An image's bytes arriving change nothing
   * in it (they are put into its <img> in place, so the message is not rebuilt and announced
   * again); only a failure does (the image becomes a chip).
   */
  model(f) {
    const image = isImage(f);
    const vm = { id: f.file_id, name: f.name, size: f.size, type: f.content_type, image, failed: null };
    if (!image) return vm;
    const c = this.entry(f.file_id);
    if (c.state === 'failed') vm.failed = c.error || 'unavailable';
    return vm;
  }

  /** The blob: URL of a loaded image, or null. */
  url(fileId) {
    const c = this.cache.get(fileId);
    return c && c.state === 'ready' ? c.url : null;
  }

  /** The cache entry of an image, queued for fetching on first sight. */
  entry(fileId) {
    let c = this.cache.get(fileId);
    if (!c) {
      c = { state: 'queued', url: null, error: null };
      this.cache.set(fileId, c);
      this.queue.push(fileId);
      queueMicrotask(() => this.pump());
    }
    return c;
  }

  pump() {
    while (this.running < PARALLEL && this.queue.length) {
      const id = this.queue.shift();
      const c = this.cache.get(id);
      if (!c || c.state !== 'queued') continue;
      c.state = 'loading';
      this.running += 1;
      this.fetchBlob(id)
        .then((blob) => {
          if (this.cache.get(id) !== c) return; // revoked meanwhile
          c.url = URL.createObjectURL(blob);
          c.state = 'ready';
          for (const img of document.querySelectorAll(`img[data-file-id="${CSS.escape(id)}"]`)) img.src = c.url;
        })
        .catch((e) => {
          if (this.cache.get(id) !== c) return;
          c.state = 'failed';
          c.error = e.message;
          this.deps.render();
        })
        .finally(() => {
          this.running -= 1;
          this.pump();
        });
    }
  }

  /** The file's bytes; a busy agent (503), a rate limit (429) or a lost connection is tried
   * again a few times, after `Retry-After` when the server says it. */
  async fetchBlob(fileId) {
    for (let attempt = 1; ; attempt += 1) {
      let status = 0;
      let wait = RETRY_MS * attempt;
      try {
        const r = await fetch(api.fileUrl(fileId), {
          headers: { Authorization: `Bearer ${this.deps.token()}` },
          signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
        });
        if (r.ok) return await r.blob();
        status = r.status;
        const after = Number(r.headers.get('Retry-After'));
        if (after > 0) wait = Math.min(after * 1000, RETRY_MAX_MS);
      } catch {
        status = 0;
      }
      if (![0, 429, 503].includes(status) || attempt >= FETCH_ATTEMPTS) throw new Error(why(status));
      await new Promise((ok) => setTimeout(ok, wait));
    }
  }

  /**
   * After a render: only the files in `keep` (file ids shown by the open room) stay cached; the
   * others' URLs are revoked (their message was deleted, or another room is open). The dialog
   * closes when its file went.
   */
  retain(keep) {
    for (const [id, c] of this.cache) {
      if (keep.has(id) && this.cache.size <= MAX_CACHED) continue;
      if (c.url) URL.revokeObjectURL(c.url);
      this.cache.delete(id);
    }
    this.queue = this.queue.filter((id) => this.cache.has(id));
    if (this.shown && !keep.has(this.shown.file_id) && this.dialog.open) this.dialog.close();
  }

  /** The image larger, in the dialog. */
  open(f) {
    const c = this.cache.get(f.file_id);
    if (!c || !c.url) return;
    this.shown = f;
    this.dialogImg.src = c.url;
    this.dialogImg.alt = f.name;
    this.dialogName.textContent = `${f.name} · ${formatSize(f.size)}`;
    if (!this.dialog.open) this.dialog.showModal();
    $('lightbox-close').focus();
  }

  /** Fetches `f` with the token and saves it under its own name. */
  async download(f) {
    const cached = this.cache.get(f.file_id);
    let url = cached && cached.url;
    let own = false;
    if (!url) {
      try {
        url = URL.createObjectURL(await this.fetchBlob(f.file_id));
        own = true;
      } catch (e) {
        return this.deps.notify(`Could not download “${f.name}”: ${e.message}.`);
      }
    }
    const a = node('a', { href: url, download: f.name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    if (own) setTimeout(() => URL.revokeObjectURL(url), DOWNLOAD_URL_MS);
  }
}

/** The files of a message (view models from FileView.model); null when there are none. */
export function attachmentsNode(files, view) {
  if (!files.length) return null;
  return node(
    'ul',
    { class: 'attachments', 'aria-label': 'Attached files' },
    ...files.map((f) => {
      const size = formatSize(f.size);
      const file = { file_id: f.id, name: f.name, size: f.size, content_type: f.type };
      if (f.image && !f.failed) {
        return node(
          'li',
          { class: 'attachment image', 'data-file-id': f.id },
          node(
            'button',
            {
              type: 'button',
              class: 'thumb',
              'data-focus-key': `file:${f.id}`,
              'aria-label': `Show ${f.name} larger (${size})`,
              onclick: () => view.open(file),
            },
            // No src until the bytes are here (FileView puts it in place).
            node('img', { src: view.url(f.id), alt: f.name, 'data-file-id': f.id }),
          ),
        );
      }
      const note = f.failed ? ` (no preview: ${f.failed})` : '';
      return node(
        'li',
        { class: 'attachment file', 'data-file-id': f.id },
        node(
          'button',
          {
            type: 'button',
            class: 'file-chip',
            'data-download': f.id,
            'data-focus-key': `file:${f.id}`,
            'aria-label': `Download ${f.name} (${size})`,
            title: `Download ${f.name}`,
            onclick: () => view.download(file),
          },
          node('span', { class: 'file-icon', 'aria-hidden': 'true', text: '📄' }),
          node('span', { class: 'file-name', text: f.name }),
          node('span', { class: 'file-size', text: `${size}${note}` }),
        ),
      );
    }),
  );
}
