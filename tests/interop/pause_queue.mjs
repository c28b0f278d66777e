// Pauses or resumes a queue with the real bullmq library, or only reads its
// state, and prints one JSON line: {"paused": queue.isPaused(), "counts": …}.
//
//   node pause_queue.mjs --port 6379 [--host 127.0.0.1] [--prefix bull]
//                        [--queue file-upload] [--action pause|resume|status]
import { Queue } from 'bullmq';
import IORedis from 'ioredis';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    prefix: { type: 'string', default: 'bull' },
    queue: { type: 'string', default: 'file-upload' },
    action: { type: 'string', default: 'status' },
  },
});

const connection = new IORedis({ host: values.host, port: Number(values.port), maxRetriesPerRequest: 1 });
const queue = new Queue(values.queue, { prefix: values.prefix, connection });
try {
  if (values.action === 'pause') await queue.pause();
  else if (values.action === 'resume') await queue.resume();
  else if (values.action !== 'status') throw new Error(`unknown action ${values.action}`);
  const out = { paused: await queue.isPaused(), counts: await queue.getJobCounts() };
  process.stdout.write(JSON.stringify(out) + '\n');
} finally {
  await queue.close();
  await connection.quit();
}
