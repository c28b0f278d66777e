// Shared helpers of the interop tests (*.test.mjs, run by `node --test`):
// a real redis-server on a free port, the real `conveyor api` / `conveyor
// worker` processes with their data in a temp dir, HTTP helpers (fetch +
// FormData + Blob), bullmq connections and bounded waits.
//
// Every process a test starts is recorded by its PID and stopped by that PID
// (never by name) in `stop()`, and killed at the latest when the test process
// exits.
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import IORedis from 'ioredis';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..');
export const CONVEYOR_BINARY = path.resolve(
  HERE,
  process.env.CONVEYOR_BINARY || '../../build/src/app/conveyor',
);
export const PREFIX = 'bull';
export const QUEUE = 'file-upload';
export const JOB_NAME = 'file-upload';
export const SECRET = 'interop-secret-0123456789abcdef0123';
// conveyor's defaults (DESIGN.md §1 "Queue"), as a Node producer should pass them.
export const CONVEYOR_JOB_OPTS = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 5000 },
  removeOnComplete: 1000,
  removeOnFail: 1000,
};

// ---------------------------------------------------------------- processes

const live = new Map(); // pid -> ChildProcess, everything still running
function killLive() {
  for (const pid of live.keys()) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}
process.on('exit', killLive);
for (const [sig, code] of [['SIGTERM', 143], ['SIGINT', 130]]) {
  process.on(sig, () => { killLive(); process.exit(code); });
}

export class Proc {
  constructor(name, cmd, args, { env, logFile, cwd } = {}) {
    this.name = name;
    this.logFile = logFile;
    const out = logFile ? fs.openSync(logFile, 'a') : 'ignore';
    this.child = spawn(cmd, args, {
      env: env ?? process.env,
      cwd,
      stdio: ['ignore', out, out],
    });
    if (typeof out === 'number') fs.closeSync(out);
    this.pid = this.child.pid;
    if (!this.pid) throw new Error(`${name}: could not start ${cmd}`);
    live.set(this.pid, this.child);
    this.exitCode = undefined;
    this.signal = undefined;
    this.exited = once(this.child, 'exit').then(([code, signal]) => {
      this.exitCode = code;
      this.signal = signal;
      live.delete(this.pid);
      return { code, signal };
    });
  }
  get running() { return this.exitCode === undefined && this.signal === undefined; }
  log() {
    try { return fs.readFileSync(this.logFile, 'utf8'); } catch { return ''; }
  }
  kill(signal = 'SIGKILL') {
    if (this.running) {
      try { process.kill(this.pid, signal); } catch { /* raced with exit */ }
    }
    return this.exited;
  }
  // SIGTERM, then SIGKILL after `graceMs`.
  async stop(graceMs = 5000) {
    if (!this.running) return this.exited;
    this.kill('SIGTERM');
    const t = setTimeout(() => this.kill('SIGKILL'), graceMs);
    try { return await this.exited; } finally { clearTimeout(t); }
  }
}

export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

// ---------------------------------------------------------------- waiting

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Rejects with a message naming `what` when `promise` takes longer than `ms`.
export async function withTimeout(promise, ms, what) {
  let t;
  const timeout = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try { return await Promise.race([promise, timeout]); } finally { clearTimeout(t); }
}

// Polls `fn` until it returns a truthy value (returned); throws after `timeout`.
export async function waitFor(fn, { timeout = 10000, interval = 50, what = 'a condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${
        last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await sleep(interval);
  }
}

// Every event of the listed kinds a QueueEvents emits, in order, plus any
// `error` it emits (QueueEvents stops for good on a value that is not JSON).
// `waitFor(pred)` resolves with the first recorded event, past or future,
// that satisfies `pred`.
export class EventLog {
  constructor(queueEvents, kinds) {
    this.events = [];
    this.errors = [];
    this.waiters = [];
    for (const k of kinds) {
      queueEvents.on(k, (args) => this.push({ event: k, ...(typeof args === 'object' ? args : {}) }));
    }
    queueEvents.on('error', (e) => this.errors.push(e));
  }
  push(e) {
    this.events.push(e);
    this.waiters = this.waiters.filter((w) => !(w.pred(e) && (w.resolve(e), true)));
  }
  of(jobId) { return this.events.filter((e) => e.jobId === jobId); }
  waitFor(pred, timeout = 15000, what = 'an event') {
    const found = this.events.find(pred);
    if (found) return Promise.resolve(found);
    let w;
    const p = new Promise((resolve) => { w = { pred, resolve }; this.waiters.push(w); });
    return withTimeout(p, timeout, what).finally(() => { this.waiters = this.waiters.filter((x) => x !== w); });
  }
  // The event `event` of job `jobId`.
  waitJob(event, jobId, timeout = 15000) {
    return this.waitFor((e) => e.event === event && e.jobId === jobId, timeout,
      `QueueEvents "${event}" of job ${jobId}`);
  }
}

// ---------------------------------------------------------------- redis

export async function startRedis(dir) {
  const port = await freePort();
  const proc = new Proc('redis-server', 'redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir,
  ], { logFile: path.join(dir, 'redis.log') });
  await waitFor(() => canConnect(port), { timeout: 10000, what: `redis-server on ${port}` })
    .catch((e) => { throw new Error(`${e.message}\n${proc.log()}`); });
  return { port, proc };
}

// A connection for bullmq (Queue, Worker, QueueEvents need maxRetriesPerRequest null).
export function redisConnection(port) {
  return new IORedis({ host: '127.0.0.1', port, maxRetriesPerRequest: null, lazyConnect: false });
}

// ---------------------------------------------------------------- conveyor

// One test's world: temp DATA_DIR, redis-server, and conveyor processes.
export class Service {
  static async start(extraEnv = {}) {
    const s = new Service();
    s.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-interop-'));
    s.storageDir = path.join(s.dataDir, 'uploads');
    fs.mkdirSync(s.storageDir, { recursive: true });
    s.redis = await startRedis(s.dataDir);
    s.apiPort = await freePort();
    s.env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME ?? s.dataDir,
      JWT_SECRET: SECRET,
      REDIS_HOST: '127.0.0.1',
      REDIS_PORT: String(s.redis.port),
      DATA_DIR: s.dataDir,
      STORAGE_DIR: s.storageDir,
      PORT: String(s.apiPort),
      BIND_ADDRESS: '127.0.0.1',
      UPLOAD_FSYNC: 'false',
      SHUTDOWN_GRACE_MS: '2000',
      ...extraEnv,
    };
    s.procs = [];
    s.conns = [];
    s.closers = [];
    s.workerCount = 0;
    if (!fs.existsSync(CONVEYOR_BINARY)) {
      throw new Error(`conveyor binary not found at ${CONVEYOR_BINARY} (set CONVEYOR_BINARY)`);
    }
    return s;
  }

  get baseUrl() { return `http://127.0.0.1:${this.apiPort}`; }

  async startApi(extraEnv = {}) {
    const p = new Proc('conveyor api', CONVEYOR_BINARY, ['api'], {
      env: { ...this.env, ...extraEnv },
      logFile: path.join(this.dataDir, 'api.log'),
      cwd: this.dataDir,
    });
    this.procs.push(p);
    this.api = p;
    await waitFor(async () => {
      if (!p.running) throw new Error(`api exited: ${p.log()}`);
      const r = await fetch(`${this.baseUrl}/readyz`).catch(() => null);
      return r && r.status === 200;
    }, { timeout: 20000, what: 'conveyor api /readyz' });
    return p;
  }

  // Starts a `conveyor worker` (not awaited: jobs wait in the queue until it
  // runs; its log says "worker running" once it does).
  startWorker(extraEnv = {}) {
    const n = ++this.workerCount;
    const p = new Proc(`conveyor worker ${n}`, CONVEYOR_BINARY, ['worker'], {
      env: { ...this.env, ...extraEnv },
      logFile: path.join(this.dataDir, `worker-${n}.log`),
      cwd: this.dataDir,
    });
    this.procs.push(p);
    return p;
  }

  token(user) {
    return execFileSync(CONVEYOR_BINARY, ['token', '--user', user], {
      env: this.env, encoding: 'utf8', timeout: 10000,
    }).trim();
  }

  connection() {
    const c = redisConnection(this.redis.port);
    this.conns.push(c);
    return c;
  }

  // Registers something with an async close() (Queue, Worker, QueueEvents, server).
  track(closable) {
    this.closers.push(closable);
    return closable;
  }

  // POST /api/chat/upload/async; returns {status, body}.
  async upload(token, { session = 's1', name = 'notes.txt', type = 'text/plain', content, message } = {}) {
    const form = new FormData();
    form.append('session_id', session);
    if (message !== undefined) form.append('message', message);
    form.append('file', new Blob([content], { type }), name);
    const r = await withTimeout(fetch(`${this.baseUrl}/api/chat/upload/async`, {
      method: 'POST', headers: { Authorization: `Bearer ${token}` }, body: form,
    }), 15000, 'upload response');
    return { status: r.status, body: await r.json() };
  }

  // Uploads and returns the job id; throws unless 202.
  async uploadOk(token, opts) {
    const r = await this.upload(token, opts);
    if (r.status !== 202) throw new Error(`upload answered ${r.status}: ${JSON.stringify(r.body)}`);
    return r.body.data.jobId;
  }

  async status(token, jobId) {
    const r = await withTimeout(fetch(`${this.baseUrl}/api/chat/upload/status/${jobId}`, {
      headers: { Authorization: `Bearer ${token}` },
    }), 10000, 'status response');
    return { status: r.status, body: await r.json() };
  }

  // Polls the status endpoint until the job is completed or failed.
  async waitFinal(token, jobId, timeout = 20000) {
    return waitFor(async () => {
      const r = await this.status(token, jobId);
      const s = r.body?.data?.status;
      return (s === 'completed' || s === 'failed') ? r.body.data : null;
    }, { timeout, interval: 100, what: `job ${jobId} to finish (status endpoint)` });
  }

  // Writes a file into STORAGE_DIR as a Node producer would and returns the
  // conveyor job payload (src/queue/payload.h) for it.
  writeUpload(content, { id = randomUUID(), userId = 'u1', sessionId = 's1',
    originalName = 'notes.txt', mimeType = 'text/plain', message } = {}) {
    const storagePath = path.join(this.storageDir, id);
    fs.writeFileSync(storagePath, content);
    const payload = {
      jobId: id, userId, sessionId, storagePath, originalName, mimeType,
      size: Buffer.byteLength(content),
    };
    if (message !== undefined) payload.message = message;
    return payload;
  }

  logs() {
    return this.procs.map((p) => `----- ${p.name} (pid ${p.pid}) -----\n${p.log().slice(-4000)}`).join('\n');
  }

  async stop() {
    for (const c of this.closers.reverse()) {
      try { await withTimeout(Promise.resolve(c.close()), 5000, 'close'); } catch { /* best effort */ }
    }
    for (const c of this.conns) c.disconnect();
    await Promise.all(this.procs.map((p) => p.stop(3000)));
    await this.redis?.proc.stop(3000);
    if (process.env.KEEP_INTEROP_DATA !== '1') {
      fs.rmSync(this.dataDir, { recursive: true, force: true });
    }
  }
}

// Random bytes that no detector takes for text (a "random binary" upload).
export function randomBinary(n = 4096) {
  const b = randomBytes(n);
  b[0] = 0x00; b[1] = 0xff; b[2] = 0xfe; b[3] = 0x01;
  return b;
}

// Headless Chromium (Debian's, at CHROMIUM_PATH or /usr/bin/chromium) for
// the browser tests. `skipUnlessChromium` is the node:test `skip` option:
// without chromium a test is skipped on a developer machine but fails in CI.
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const skipUnlessChromium = !fs.existsSync(CHROMIUM) && process.env.CI !== 'true'
  ? `no chromium at ${CHROMIUM} (apt-get install chromium)` : false;

// Launches chromium with a fresh profile in a temp dir; returns the browser
// context and a close() that also removes the profile.
export async function launchChromium(viewport) {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`chromium is required at ${CHROMIUM} (scripts/setup.sh installs it)`);
  const { chromium } = await import('playwright-core');
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-chromium-'));
  try {
    const browser = await withTimeout(chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport,
      timeout: 30000,
    }), 35000, 'chromium to start');
    const close = async () => {
      await browser.close().catch(() => {});
      fs.rmSync(userDataDir, { recursive: true, force: true });
    };
    return { browser, close };
  } catch (e) {
    fs.rmSync(userDataDir, { recursive: true, force: true });
    throw e;
  }
}
