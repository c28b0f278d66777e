// Node.js → conveyor: jobs added with the real bullmq Queue.add (conveyor's
// payload, the file already in STORAGE_DIR) are processed by conveyor's
// worker, which creates the database row when none exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents } from 'bullmq';
import { Service, PREFIX, QUEUE, JOB_NAME, CONVEYOR_JOB_OPTS, withTimeout } from './helpers.mjs';

async function setup(t) {
  const svc = await Service.start();
  t.after(() => svc.stop());
  const queue = svc.track(new Queue(QUEUE, { prefix: PREFIX, connection: svc.connection() }));
  const events = svc.track(new QueueEvents(QUEUE, { prefix: PREFIX, connection: svc.connection() }));
  await events.waitUntilReady();
  await svc.startApi();
  return { svc, queue, events };
}

async function search(svc, token, session, q) {
  const r = await fetch(`${svc.baseUrl}/api/chat/memory/search?session_id=${session}&q=${q}&limit=5`,
    { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(r.status, 200);
  return (await r.json()).data.results;
}

test('a job added by bullmq is processed by conveyor worker', { timeout: 60000 }, async (t) => {
  const { svc, queue, events } = await setup(t);
  try {
    const id = randomUUID();
    const text = 'Meeting minutes: the zephyrine project ships in March.\nBudget approved.\n';
    const payload = svc.writeUpload(text, {
      id, userId: 'node-user', sessionId: 'node-session', originalName: 'minutes.txt', message: 'from node',
    });
    const token = svc.token('node-user');
    // No row exists before the worker sees the job.
    assert.equal((await svc.status(token, id)).status, 404);

    const job = await queue.add(JOB_NAME, payload, { jobId: id, ...CONVEYOR_JOB_OPTS });
    assert.equal(job.id, id);
    svc.startWorker();
    const returnvalue = await withTimeout(job.waitUntilFinished(events, 20000), 25000,
      'conveyor worker to complete the bullmq job');

    // The returnvalue bullmq reads is conveyor's result.
    assert.equal(returnvalue.fileId, `file_${id}`);
    assert.equal(typeof returnvalue.aiResponse?.text, 'string');
    assert.ok(returnvalue.aiResponse.text.length > 0);

    const done = await queue.getJob(id);
    assert.equal(await done.getState(), 'completed');
    assert.equal(done.attemptsMade, 1);
    assert.deepEqual(done.returnvalue, returnvalue);

    // The worker made the row: the status endpoint (token of payload.userId).
    const st = await svc.status(token, id);
    assert.equal(st.status, 200);
    assert.equal(st.body.data.jobId, id);
    assert.equal(st.body.data.status, 'completed');
    assert.equal(st.body.data.result.fileId, `file_${id}`);
    assert.equal(typeof st.body.data.result.aiResponse.text, 'string');
    assert.equal(st.body.data.result.aiResponse.text, returnvalue.aiResponse.text);
    // Another user does not see it.
    assert.equal((await svc.status(svc.token('someone-else'), id)).status, 404);
    // The text became searchable memory of that user and session.
    const hits = await search(svc, token, 'node-session', 'zephyrine');
    assert.ok(hits.some((h) => h.jobId === id && h.fileId === `file_${id}`), JSON.stringify(hits));
  } catch (e) {
    e.message += `\n${svc.logs()}`;
    throw e;
  }
});

test('a bullmq job whose storagePath is outside STORAGE_DIR fails without reading the file', { timeout: 60000 }, async (t) => {
  const { svc, queue, events } = await setup(t);
  try {
    const token = svc.token('u-evil');
    const secret = 'Confidential: the quokkaword passphrase.\n';
    // Outside the store: next to it, and a path that only looks inside.
    const outside = path.join(svc.dataDir, 'outside.txt');
    fs.writeFileSync(outside, secret);
    const cases = [outside, path.join(svc.storageDir, '..', 'outside.txt')];
    const jobs = [];
    for (const storagePath of cases) {
      const id = randomUUID();
      const payload = {
        jobId: id, userId: 'u-evil', sessionId: 'evil', storagePath,
        originalName: 'x.txt', mimeType: 'text/plain', size: secret.length,
      };
      jobs.push(await queue.add(JOB_NAME, payload, { jobId: id, ...CONVEYOR_JOB_OPTS }));
    }
    svc.startWorker();
    for (const job of jobs) {
      await assert.rejects(withTimeout(job.waitUntilFinished(events, 20000), 25000, 'the job to fail'),
        (err) => err.message === 'Invalid storage path');
      const failed = await queue.getJob(job.id);
      assert.equal(await failed.getState(), 'failed');
      assert.equal(failed.failedReason, 'Invalid storage path');
      // A permanent failure: no retry although attempts is 3.
      assert.equal(failed.attemptsMade, 1);
      const st = await svc.status(token, job.id);
      assert.equal(st.status, 200);
      assert.equal(st.body.data.status, 'failed');
      assert.equal(st.body.data.error, 'Invalid storage path');
    }
    // Nothing was read or removed.
    assert.equal(fs.readFileSync(outside, 'utf8'), secret);
    assert.deepEqual(await search(svc, token, 'evil', 'quokkaword'), []);
    const counts = await queue.getJobCounts();
    assert.equal(counts.failed, 2);
    assert.equal(counts.completed, 0);
  } catch (e) {
    e.message += `\n${svc.logs()}`;
    throw e;
  }
});
