// A bullmq Worker run as its own process by mixed_workers.test.mjs, so that
// the test can SIGKILL it mid-job. The processor does the no-op counterpart
// of conveyor's work (reads the stored file if it is still there, counts its
// words, waits --delay ms), adds the job id to the Redis set --seen-key and
// returns {"processedBy":"node","jobId","words","pid"}.
//
//   node mixed_node_worker.mjs --port P [--concurrency 2] [--delay 150]
//        [--lock 1000] [--stalled 500] [--seen-key interop:node-processed]
import { Worker } from 'bullmq';
import IORedis from 'ioredis';
import fs from 'node:fs/promises';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    prefix: { type: 'string', default: 'bull' },
    queue: { type: 'string', default: 'file-upload' },
    concurrency: { type: 'string', default: '2' },
    delay: { type: 'string', default: '150' },
    lock: { type: 'string', default: '1000' },
    stalled: { type: 'string', default: '500' },
    'seen-key': { type: 'string', default: 'interop:node-processed' },
  },
});

const connection = new IORedis({ host: '127.0.0.1', port: Number(values.port), maxRetriesPerRequest: null });
const delay = Number(values.delay);
const worker = new Worker(values.queue, async (job) => {
  await connection.sadd(values['seen-key'], job.id);
  let words = 0;
  try {
    const text = await fs.readFile(job.data.storagePath, 'utf8');
    words = text.split(/\s+/).filter(Boolean).length;
  } catch { /* conveyor may have finished and removed it */ }
  await new Promise((r) => setTimeout(r, delay));
  await job.updateProgress({ stage: 'node', percent: 50 });
  return { processedBy: 'node', jobId: job.id, words, pid: process.pid };
}, {
  prefix: values.prefix,
  connection,
  concurrency: Number(values.concurrency),
  lockDuration: Number(values.lock),
  stalledInterval: Number(values.stalled),
  maxStalledCount: 1,
  drainDelay: 1,
});
worker.on('error', (err) => process.stderr.write(`worker error: ${err.message}\n`));
worker.on('failed', (job, err) => process.stderr.write(`failed ${job?.id}: ${err.message}\n`));
await worker.waitUntilReady();
process.stdout.write(`ready ${process.pid}\n`);

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, async () => {
    await worker.close();
    await connection.quit();
    process.exit(0);
  });
}
