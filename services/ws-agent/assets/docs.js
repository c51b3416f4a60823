// A small offline explorer for /openapi.json: one collapsible panel per operation with inputs
// for its parameters and body, and the raw answer. Hand-written so /docs needs no CDN.

const ops = document.getElementById('ops');
const tokenInput = document.getElementById('token');
tokenInput.value = (() => {
  try {
    return JSON.parse(localStorage.getItem('dyschat.session')).token || '';
  } catch {
    return '';
  }
})();

function h(tag, props = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'text') n.textContent = v;
    else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, v);
  }
  n.append(...children.filter(Boolean));
  return n;
}

function resolve(doc, schema) {
  if (schema && schema.$ref) return resolve(doc, doc.components.schemas[schema.$ref.split('/').pop()]);
  return schema || {};
}

/** An example value built from a schema, to prefill request bodies. */
function example(doc, schema, depth = 0) {
  const s = resolve(doc, schema);
  if (depth > 4) return null;
  if (s.example !== undefined) return s.example;
  const type = Array.isArray(s.type) ? s.type.find((t) => t !== 'null') : s.type;
  if (type === 'object' || s.properties) {
    const out = {};
    for (const [k, v] of Object.entries(s.properties || {})) out[k] = example(doc, v, depth + 1);
    return out;
  }
  if (type === 'array') return [example(doc, s.items, depth + 1)];
  if (type === 'integer' || type === 'number') return 0;
  if (type === 'boolean') return false;
  return 'string';
}

function operation(doc, path, method, op, n) {
  const params = (op.parameters || []).map((p) => {
    const id = `p${n}-${p.name}`;
    return {
      p,
      wrap: h('div', {},
        h('label', { for: id, text: `${p.name} (${p.in}${p.required ? ', required' : ''})` }),
        h('input', { id, 'data-name': p.name, 'data-in': p.in })),
    };
  });
  const media = op.requestBody && op.requestBody.content && op.requestBody.content['application/json'];
  const bodyId = `b${n}`;
  const body = media
    ? h('textarea', { id: bodyId }, JSON.stringify(example(doc, media.schema), null, 2))
    : null;
  const out = h('pre', { 'aria-live': 'polite', text: '' });
  const send = async () => {
    let url = path;
    const query = new URLSearchParams();
    for (const { wrap } of params) {
      const input = wrap.querySelector('input');
      if (!input.value) continue;
      if (input.dataset.in === 'path') url = url.replace(`{${input.dataset.name}}`, encodeURIComponent(input.value));
      else if (input.dataset.in === 'query') query.set(input.dataset.name, input.value);
    }
    if ([...query].length) url += `?${query}`;
    const headers = { Accept: 'application/json' };
    if (tokenInput.value) headers.Authorization = `Bearer ${tokenInput.value.trim()}`;
    if (body) headers['Content-Type'] = 'application/json';
    out.textContent = `${method.toUpperCase()} ${url} …`;
    try {
      const r = await fetch(url, { method: method.toUpperCase(), headers, body: body ? body.value : undefined });
      const text = await r.text();
      let shown = text;
      try {
        shown = JSON.stringify(JSON.parse(text), null, 2);
      } catch {
        /* not JSON */
      }
      out.textContent = `${r.status} ${r.statusText}\n\n${shown}`;
    } catch (e) {
      out.textContent = `request failed: ${e}`;
    }
  };
  const responses = Object.entries(op.responses || {})
    .map(([code, r]) => `${code}: ${r.description || ''}`)
    .join('\n');
  return h('details', { class: 'op' },
    h('summary', {},
      h('span', { class: 'method', text: method.toUpperCase() }),
      h('code', { text: path }),
      h('span', { class: 'muted', text: op.summary || '' })),
    h('div', { class: 'body' },
      op.description ? h('p', { text: op.description }) : null,
      ...params.map((x) => x.wrap),
      body ? h('label', { for: bodyId, text: 'JSON body' }) : null,
      body,
      h('p', {}, h('button', { type: 'button', onclick: send, text: 'Send request' })),
      h('h4', { text: 'Responses' }),
      h('pre', { text: responses }),
      out));
}

async function main() {
  const doc = await (await fetch('/openapi.json')).json();
  const tagOrder = (doc.tags || []).map((t) => t.name);
  const groups = new Map(tagOrder.map((t) => [t, []]));
  let n = 0;
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of ['get', 'post', 'put', 'patch', 'delete']) {
      const op = item[method];
      if (!op) continue;
      const tag = (op.tags && op.tags[0]) || 'other';
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push(operation(doc, path, method, op, (n += 1)));
    }
  }
  const sections = [];
  for (const [tag, list] of groups) {
    if (!list.length) continue;
    const about = (doc.tags || []).find((t) => t.name === tag);
    sections.push(h('h2', { text: about && about.description ? `${tag}: ${about.description}` : tag }), ...list);
  }
  ops.replaceChildren(h('p', { class: 'muted', text: `${doc.info.title} ${doc.info.version}, ${n} operations.` }), ...sections);
}

main().catch((e) => {
  ops.textContent = `Could not load /openapi.json: ${e}`;
});
