// conveyor → Node.js: a job added through conveyor's HTTP API is read by the
// real bullmq (getJob, getJobCounts) and, with conveyor's worker not running,
// processed by a bullmq Worker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Queue, Worker } from 'bullmq';
import { Service, PREFIX, QUEUE, JOB_NAME, withTimeout } from './helpers.mjs';

test('a job added by conveyor api is read and processed by bullmq', { timeout: 60000 }, async (t) => {
  const svc = await Service.start();
  t.after(() => svc.stop());
  try {
    await svc.startApi();
    const token = svc.token('u1');
    const text = 'Quarterly invoice notes.\nThe supplier asked for payment within 30 days.\n';
    const jobId = await svc.uploadOk(token, {
      session: 'sess-1', name: 'invoice notes.txt', type: 'text/plain', content: text, message: 'summarise',
    });
    assert.match(jobId, /^[0-9a-f-]{36}$/);

    const queue = svc.track(new Queue(QUEUE, { prefix: PREFIX, connection: svc.connection() }));
    const job = await queue.getJob(jobId);
    assert.ok(job, 'bullmq getJob finds the job conveyor added');
    assert.equal(job.id, jobId);
    assert.equal(job.name, JOB_NAME);
    // A prioritized job (src/uploads/priority.h): standard tier, small file.
    assert.equal(await job.getState(), 'prioritized');
    assert.equal(job.opts.priority, 4);
    assert.equal(job.attemptsMade, 0);
    // Job data: src/queue/payload.h.
    assert.equal(job.data.jobId, jobId);
    assert.equal(job.data.userId, 'u1');
    assert.equal(job.data.sessionId, 'sess-1');
    assert.equal(job.data.originalName, 'invoice notes.txt');
    assert.equal(job.data.mimeType, 'text/plain');
    assert.equal(job.data.size, Buffer.byteLength(text));
    assert.equal(job.data.message, 'summarise');
    assert.ok(job.data.storagePath.startsWith(svc.storageDir + '/'),
      `storagePath ${job.data.storagePath} is inside STORAGE_DIR`);
    // Options: conveyor's defaults, as bullmq decodes them.
    assert.equal(job.opts.attempts, 3);
    assert.deepEqual(job.opts.backoff, { type: 'exponential', delay: 5000 });
    assert.equal(job.opts.removeOnComplete, 1000);
    assert.equal(job.opts.removeOnFail, 1000);
    assert.ok(job.timestamp > 0 && job.timestamp <= Date.now());

    const before = await queue.getJobCounts();
    assert.equal(before.prioritized, 1);
    assert.equal(before.waiting, 0);
    assert.equal(before.active, 0);
    assert.equal(before.completed, 0);
    assert.equal(before.failed, 0);
    assert.equal(before.delayed, 0);

    // Processed by a bullmq Worker (conveyor's worker is not running).
    let seen;
    const done = new Promise((resolve, reject) => {
      const worker = svc.track(new Worker(QUEUE, async (j) => {
        seen = { id: j.id, name: j.name, data: j.data };
        await j.updateProgress({ stage: 'node', percent: 50 });
        return { processedBy: 'node', bytes: j.data.size };
      }, { prefix: PREFIX, connection: svc.connection(), drainDelay: 1 }));
      worker.on('completed', (j) => resolve(j));
      worker.on('failed', (j, err) => reject(err));
      worker.on('error', reject);
    });
    await withTimeout(done, 15000, 'the bullmq Worker to complete the job');
    assert.equal(seen.id, jobId);
    assert.equal(seen.name, JOB_NAME);
    assert.equal(seen.data.userId, 'u1');

    const after = await queue.getJob(jobId);
    assert.equal(await after.getState(), 'completed');
    assert.deepEqual(after.returnvalue, { processedBy: 'node', bytes: Buffer.byteLength(text) });
    assert.equal(after.attemptsMade, 1);
    assert.ok(after.finishedOn >= after.processedOn);
    const counts = await queue.getJobCounts();
    assert.equal(counts.completed, 1);
    assert.equal(counts.waiting, 0);
    assert.equal(counts.prioritized, 0);
    assert.equal(counts.active, 0);

    // Only conveyor's worker writes the database row, so conveyor's status
    // endpoint still reports the upload as pending: a Node worker that takes
    // conveyor's jobs owns their outcome (the returnvalue in Redis).
    const st = await svc.status(token, jobId);
    assert.equal(st.status, 200);
    assert.equal(st.body.data.status, 'pending');
    assert.equal(st.body.data.result, undefined);
  } catch (e) {
    e.message += `\n${svc.logs()}`;
    throw e;
  }
});
