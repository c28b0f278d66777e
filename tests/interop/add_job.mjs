// Adds one job with the real bullmq Queue.add, using conveyor's defaults, and
// prints {"id": ...}.
//
//   node add_job.mjs --port 6379 [--prefix bull] [--queue file-upload]
//                    --id <jobId> --data '<json>'
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
    data: { type: 'string', default: '{}' },
  },
});

// In native ESM bullmq needs a constructed ioredis client, not options.
const connection = new IORedis({ host: values.host, port: Number(values.port), maxRetriesPerRequest: 1 });
const queue = new Queue(values.queue, { prefix: values.prefix, connection });
try {
  const job = await queue.add('file-upload', JSON.parse(values.data), {
    jobId: values.id,
    attempts: 3,
    backoff: { type: 'exponential', delay: 5000 },
    removeOnComplete: 1000,
    removeOnFail: 1000,
  });
  process.stdout.write(JSON.stringify({ id: job.id }) + '\n');
} finally {
  await queue.close();
  await connection.quit();  // a client we passed in is ours to close
}
