// Runs a real bullmq Worker until it has completed one job, then prints
// {"id", "data", "attemptsMade"} of that job. The processor reports progress
// 50 and returns {"processedBy":"node","echo":<data>}. Exits non-zero if no
// job completes within --timeout ms.
//
//   node work_job.mjs --port 6379 [--prefix bull] [--queue file-upload]
//                     [--timeout 15000]
import { Worker } from 'bullmq';
import IORedis from 'ioredis';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    prefix: { type: 'string', default: 'bull' },
    queue: { type: 'string', default: 'file-upload' },
    timeout: { type: 'string', default: '15000' },
  },
});

const connection = new IORedis({ host: values.host, port: Number(values.port), maxRetriesPerRequest: null });
let done;
const finished = new Promise((resolve) => { done = resolve; });
const worker = new Worker(
  values.queue,
  async (job) => {
    await job.updateProgress(50);
    return { processedBy: 'node', echo: job.data };
  },
  {
    prefix: values.prefix,
    connection,
    drainDelay: 1,
  },
);
worker.on('completed', (job) => done({ id: job.id, data: job.data, attemptsMade: job.attemptsMade }));
worker.on('error', (err) => process.stderr.write(`worker error: ${err}\n`));

const timer = setTimeout(() => done(null), Number(values.timeout));
const result = await finished;
clearTimeout(timer);
await worker.close();
await connection.quit();  // a client we passed in is ours to close
if (!result) {
  process.stderr.write('no job completed in time\n');
  process.exit(1);
}
process.stdout.write(JSON.stringify(result) + '\n');
