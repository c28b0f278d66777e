// Prints, as one JSON line, what the real bullmq library sees of a job and
// its queue: getJob(id) (name, data, opts, state, returnvalue, failedReason,
// attemptsMade, progress) and getJobCounts().
//
//   node read_job.mjs --port 6379 [--host 127.0.0.1] [--prefix bull]
//                     [--queue file-upload] --id <jobId>
import { Queue } from 'bullmq';
import IORedis from 'ioredis';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    prefix: { type: 'string', default: 'bull' },
    queue: { type: 'string', default: 'file-upload' },
    id: { type: 'string' },
  },
});

// In native ESM bullmq needs a constructed ioredis client, not options.
const connection = new IORedis({ host: values.host, port: Number(values.port), maxRetriesPerRequest: 1 });
const queue = new Queue(values.queue, { prefix: values.prefix, connection });
try {
  const job = await queue.getJob(values.id);
  const out = { job: null, counts: await queue.getJobCounts() };
  if (job) {
    out.job = {
      id: job.id,
      name: job.name,
      data: job.data,
      opts: job.opts,
      state: await job.getState(),
      returnvalue: job.returnvalue ?? null,
      failedReason: job.failedReason ?? null,
      attemptsMade: job.attemptsMade,
      progress: job.progress,
    };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
} finally {
  await queue.close();
  await connection.quit();  // a client we passed in is ours to close
}
