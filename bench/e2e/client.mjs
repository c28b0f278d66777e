// End-to-end load for bench/e2e.sh: uploads E2E_N small text files with
// E2E_CONCURRENCY clients spread over E2E_USERS users (each user its own
// token and session), polls their status until every job is final, and
// prints one line of key=value figures.
//
// env: PORT, JWT_SECRET (HS256 tokens are minted here, sub = "e2e-user-<u>"),
//      E2E_N (500), E2E_CONCURRENCY (32), E2E_USERS (1), E2E_POLL_INTERVAL_MS
//      (20), E2E_POLL_CONCURRENCY (8), E2E_POLL_FULL_EVERY (10),
//      E2E_TIMEOUT_S (300), E2E_PHASE (all), E2E_JOBS_FILE (with a phase)
//
// E2E_PHASE splits the run in two, for bench/e2e.sh's split mode: "upload"
// only uploads (no worker runs meanwhile) and writes the accepted jobs to
// E2E_JOBS_FILE; "drain" reads them back and only polls until every job is
// final (the worker was started just before). Each prints its own rate:
// what the upload side and the processing side each manage with the other
// one removed.
//
// A job's latency runs from the start of its upload request to the first
// status answer that says completed or failed. Polling sweeps the oldest
// unfinished jobs (see sweep()), at most E2E_POLL_CONCURRENCY requests in
// flight, one sweep every E2E_POLL_INTERVAL_MS at most: latencies carry about
// one sweep of granularity, the same for every target.
import { createHmac } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';

const env = (name, def) => Number(process.env[name] || def);
const N = env('E2E_N', 500);
const CONC = env('E2E_CONCURRENCY', 32);
const USERS = env('E2E_USERS', 1);
const POLL_INTERVAL_MS = env('E2E_POLL_INTERVAL_MS', 20);
const POLL_CONC = env('E2E_POLL_CONCURRENCY', 8);
const POLL_FULL_EVERY = env('E2E_POLL_FULL_EVERY', 10);
const TIMEOUT_MS = env('E2E_TIMEOUT_S', 300) * 1000;
const PHASE = process.env.E2E_PHASE || 'all';
const JOBS_FILE = process.env.E2E_JOBS_FILE;
if (!['all', 'upload', 'drain'].includes(PHASE) || (PHASE !== 'all' && !JOBS_FILE)) {
  console.error('client.mjs: E2E_PHASE is all, upload or drain; a phase needs E2E_JOBS_FILE');
  process.exit(2);
}
const BASE = `http://127.0.0.1:${process.env.PORT}`;
const SECRET = process.env.JWT_SECRET;
if (!process.env.PORT || !SECRET) {
  console.error('client.mjs: PORT and JWT_SECRET are required');
  process.exit(2);
}

function token(user) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const iat = Math.floor(Date.now() / 1000);
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: user, iat, exp: iat + 3600 })}`;
  return `${head}.${createHmac('sha256', SECRET).update(head).digest('base64url')}`;
}

// About 2 KiB of sentence-shaped text per file; files differ in word order.
const WORDS = ('harbour ledger invoice pallet forklift warehouse budget quarter audit freight ' +
  'customs tariff vessel cargo manifest crane berth tanker anchor pilot').split(' ');
function documentText(i) {
  const lines = [];
  for (let l = 0; l < 24; l++) {
    const w = [];
    for (let k = 0; k < 12; k++) w.push(WORDS[(i * 7 + l * 3 + k * 5) % WORDS.length]);
    lines.push(`Document ${i} line ${l}: ${w.join(' ')}.`);
  }
  return `${lines.join('\n')}\n`;
}

const pct = (s, p) => (s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function pool(items, limit, fn) {
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
}

const users = Array.from({ length: USERS }, (_, u) => ({
  auth: { authorization: `Bearer ${token(`e2e-user-${u}`)}` },
  session: `e2e-session-${u}`,
}));
const jobs = Array.from({ length: N }, (_, i) => ({ i, user: users[i % USERS], t0: 0, tAccepted: 0, tDone: 0, id: null, status: null }));
let uploadErrors = 0;
let pollErrors = 0;
let polls = 0;
let uploadsDone = false;
const deadline = performance.now() + TIMEOUT_MS;
const tStart = performance.now();

const uploader = PHASE === 'drain' ? Promise.resolve() : pool(jobs, CONC, async (job) => {
  const form = new FormData();
  form.append('session_id', job.user.session);
  form.append('file', new Blob([documentText(job.i)], { type: 'text/plain' }), `doc-${job.i}.txt`);
  job.t0 = performance.now();
  try {
    const res = await fetch(`${BASE}/api/chat/upload/async`, { method: 'POST', headers: job.user.auth, body: form });
    const body = await res.json();
    job.tAccepted = performance.now();
    if (res.status !== 202 || !body.data || !body.data.jobId) throw new Error(`HTTP ${res.status}`);
    job.id = body.data.jobId;
  } catch {
    uploadErrors++;
    job.status = 'upload_error';
    job.tDone = performance.now();
  }
}).then(() => { uploadsDone = true; });
if (PHASE === 'drain') {
  // The upload phase's accepted jobs, their latency counted from now.
  const saved = JSON.parse(readFileSync(JOBS_FILE, 'utf8'));
  const now = performance.now();
  for (const job of jobs) {
    job.id = saved[job.i] || null;
    job.t0 = now;
    if (!job.id) { job.status = 'upload_error'; job.tDone = now; }
  }
  uploadsDone = true;
}

// Status polls go through node:http on kept-alive connections: fetch costs
// several times the CPU per request, and the client shares the machine with
// the service it measures (a slower target gets more polls, which would
// otherwise slow it down further).
const pollAgent = new http.Agent({ keepAlive: true, maxSockets: POLL_CONC });
function getJson(path, headers) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${BASE}${path}`, { agent: pollAgent, headers }, (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode, body: JSON.parse(Buffer.concat(parts).toString('utf8')) });
        } catch (e) {
          reject(e);
        }
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

// A sweep polls the oldest open jobs a batch (E2E_POLL_CONCURRENCY) at a
// time and stops after a batch in which no job was final: both services
// finish jobs in queue order, so the jobs past that batch are still waiting.
// Every E2E_POLL_FULL_EVERY-th sweep polls all of the oldest 64 instead,
// which bounds how late a job finished out of order is seen. The client's
// own load then follows the jobs that finish, not how quickly the service
// answers a poll: with fixed 64-job sweeps, a service that answers faster
// took more polls per job (19 against 2 in one measured pair), and they
// shared the two cores with the service being measured.
let sweeps = 0;
async function sweep() {
  const open = jobs.filter((j) => j.id && !j.tDone).slice(0, 64);
  const full = sweeps++ % POLL_FULL_EVERY === 0;
  for (let at = 0; at < open.length; at += POLL_CONC) {
    let finals = 0;
    await pool(open.slice(at, at + POLL_CONC), POLL_CONC, async (job) => {
      try {
        const res = await getJson(`/api/chat/upload/status/${job.id}`, job.user.auth);
        const body = res.body;
        polls++;
        if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
        const st = body.data.status;
        if (st === 'completed' || st === 'failed') {
          job.tDone = performance.now();
          job.status = st;
          finals++;
        }
      } catch {
        pollErrors++;
      }
    });
    if (finals === 0 && !full) return;
  }
}

const poller = (async () => {
  if (PHASE === 'upload') return;
  for (;;) {
    if (uploadsDone && !jobs.some((j) => j.id && !j.tDone)) return;
    if (performance.now() > deadline) return;
    const start = performance.now();
    await sweep();
    const wait = POLL_INTERVAL_MS - (performance.now() - start);
    if (wait > 0) await sleep(wait);
  }
})();

await uploader;
await poller;
pollAgent.destroy();
const totalS = (performance.now() - tStart) / 1000;
const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : 'nan');
const upl = jobs.filter((j) => j.tAccepted).map((j) => j.tAccepted - j.t0).sort((a, b) => a - b);
if (PHASE === 'upload') {
  writeFileSync(JOBS_FILE, JSON.stringify(jobs.map((j) => j.id)));
  const accepted = jobs.filter((j) => j.id).length;
  console.log([
    `n=${N}`, `conc=${CONC}`, `users=${USERS}`, `upload_s=${f(totalS, 2)}`,
    `uploads_per_s=${f(accepted / totalS)}`, `accepted=${accepted}`, `upload_errors=${uploadErrors}`,
    `upload_p50_ms=${f(pct(upl, 50))}`, `upload_p99_ms=${f(pct(upl, 99))}`,
  ].join(' '));
  if (accepted !== N) process.exitCode = 1;
  process.exit();
}
const done = jobs.filter((j) => j.status === 'completed');
const lat = done.map((j) => j.tDone - j.t0).sort((a, b) => a - b);
console.log([
  `n=${N}`, `conc=${CONC}`, `users=${USERS}`, `total_s=${f(totalS, 2)}`,
  `jobs_per_s=${f(done.length / totalS)}`, `completed=${done.length}`,
  `failed=${jobs.filter((j) => j.status === 'failed').length}`,
  `unfinished=${jobs.filter((j) => !j.tDone).length}`, `upload_errors=${uploadErrors}`,
  `upload_p50_ms=${f(pct(upl, 50))}`, `upload_p99_ms=${f(pct(upl, 99))}`,
  `lat_p50_ms=${f(pct(lat, 50))}`, `lat_p99_ms=${f(pct(lat, 99))}`,
  `polls=${polls}`, `poll_errors=${pollErrors}`,
].join(' '));
if (done.length !== N) process.exitCode = 1;
