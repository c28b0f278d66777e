// The same benchmark as queue_bench.cc with the real bullmq (6.7.0, from
// tests/interop/node_modules): Queue.add in a loop for the first half of the
// jobs, addBulk (chunks of 1000) for the second, then a Worker with
// concurrency 16 and a no-op processor. CPU is this process's
// process.cpuUsage() while processing. Prints one JSON line.
//
//   node bullmq_bench.mjs --port 6379 [--jobs 20000] [--concurrency 16]
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../tests/interop/package.json'));
const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    jobs: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '16' },
  },
});
const jobs = Number(values.jobs);
const concurrency = Number(values.concurrency);
const connOpts = { host: values.host, port: Number(values.port), maxRetriesPerRequest: null };
// Same options conveyor writes by default.
const opts = { attempts: 3, backoff: { type: 'exponential', delay: 5000 },
               removeOnComplete: 1000, removeOnFail: 1000 };
const id = (i) => `bench-${String(i).padStart(8, '0')}`;

const qconn = new IORedis(connOpts);
const queue = new Queue('bench', { connection: qconn });
await queue.waitUntilReady();
const half = Math.floor(jobs / 2);
let t0 = performance.now();
for (let i = 0; i < half; i++) {
  await queue.add('bench', { i }, { ...opts, jobId: id(i) });
}
const singleS = (performance.now() - t0) / 1000;
t0 = performance.now();
for (let i = half; i < jobs; i += 1000) {
  const batch = [];
  for (let k = i; k < Math.min(i + 1000, jobs); k++) {
    batch.push({ name: 'bench', data: { i: k }, opts: { ...opts, jobId: id(k) } });
  }
  await queue.addBulk(batch);
}
const bulkS = (performance.now() - t0) / 1000;

const latencies = [];
let done = 0;
let finish;
const finished = new Promise((resolve) => { finish = resolve; });
const wconn = new IORedis(connOpts);
const cpu0 = process.cpuUsage();
t0 = performance.now();
const worker = new Worker('bench', async (job) => {
  latencies.push(job.processedOn - job.timestamp);
}, { connection: wconn, concurrency, autorun: true });
worker.on('completed', () => { if (++done === jobs) finish(); });
worker.on('error', (e) => { console.error(e); process.exit(1); });
await finished;
const processS = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
await worker.close();
await queue.close();
await wconn.quit();
await qconn.quit();

latencies.sort((a, b) => a - b);
const pct = (p) => latencies[Math.floor(p * (latencies.length - 1))] ?? 0;
console.log(JSON.stringify({
  impl: 'bullmq', jobs,
  add_rate_single: Math.round(half / singleS),
  add_rate_multi: Math.round((jobs - half) / bulkS),
  process_rate: Math.round(jobs / processS),
  consumers: concurrency,
  cpu_s_per_10k: Number(((cpu.user + cpu.system) / 1e6 / jobs * 10000).toFixed(3)),
  p50_ms: pct(0.5), p99_ms: pct(0.99),
}));
