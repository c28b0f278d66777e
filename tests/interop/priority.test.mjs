// Priorities (src/uploads/priority.h) as Node's bullmq sees them: uploads
// through conveyor's API with the JWT claim `tier` land in BullMQ's
// `prioritized` zset (score = priority * 2^32 + pc, `opts.priority` and the
// hash's `priority`), and a bullmq Worker processes them in priority order:
// the premium upload, sent last, first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import { Service, PREFIX, QUEUE, SECRET, withTimeout } from './helpers.mjs';

// An HS256 JWT with extra claims (`conveyor token` mints `sub` only).
function tokenWithClaims(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iat: now, exp: now + 3600, ...claims })}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

test('a prioritised conveyor job is read and processed by a bullmq Worker', { timeout: 60000 }, async (t) => {
  const svc = await Service.start();
  t.after(() => svc.stop());
  try {
    await svc.startApi();
    const standard = tokenWithClaims({ sub: 'u-standard' });
    const premium = tokenWithClaims({ sub: 'u-premium', tier: 'premium' });
    const stdIds = [];
    for (let i = 0; i < 3; i++) {
      stdIds.push(await svc.uploadOk(standard, { content: `standard ${i}\n` }));
    }
    const premiumId = await svc.uploadOk(premium, { content: 'premium\n' });

    const queue = svc.track(new Queue(QUEUE, { prefix: PREFIX, connection: svc.connection() }));
    const job = await queue.getJob(premiumId);
    assert.equal(await job.getState(), 'prioritized');
    assert.equal(job.opts.priority, 1, 'premium, small file: priority 1');
    assert.equal(job.priority, 1);
    const std = await queue.getJob(stdIds[0]);
    assert.equal(std.opts.priority, 4, 'standard (no tier claim), small file: priority 4');
    const counts = await queue.getJobCounts();
    assert.equal(counts.prioritized, 4);
    assert.equal(counts.waiting, 0);
    assert.deepEqual(await queue.getCountsPerPriority([1, 4]), { 1: 1, 4: 3 });
    const score = await svc.connection().zscore(`${PREFIX}:${QUEUE}:prioritized`, premiumId);
    assert.equal(Math.floor(Number(score) / 2 ** 32), 1, `score ${score} = 1 * 2^32 + pc`);

    // One bullmq Worker, one job at a time: the premium job comes first.
    const order = [];
    const done = new Promise((resolve, reject) => {
      const worker = svc.track(new Worker(QUEUE, async (j) => {
        order.push(j.id);
        return { processedBy: 'node' };
      }, { prefix: PREFIX, connection: svc.connection(), concurrency: 1, drainDelay: 1 }));
      worker.on('completed', () => { if (order.length === 4) resolve(); });
      worker.on('failed', (j, err) => reject(err));
      worker.on('error', reject);
    });
    await withTimeout(done, 20000, 'the bullmq Worker to complete the four jobs');
    assert.deepEqual(order, [premiumId, ...stdIds]);
    const after = await queue.getJob(premiumId);
    assert.equal(await after.getState(), 'completed');
    assert.deepEqual(after.returnvalue, { processedBy: 'node' });
  } catch (e) {
    e.message += `\n${svc.logs()}`;
    throw e;
  }
});
