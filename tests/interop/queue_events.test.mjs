// bullmq's QueueEvents on conveyor's queue: the events conveyor writes to
// Q:events arrive in BullMQ's form (active, progress, completed, failed,
// retries-exhausted, stalled), with progress data and returnvalues that
// QueueEvents can JSON.parse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents } from 'bullmq';
import {
  Service, EventLog, PREFIX, QUEUE, JOB_NAME, CONVEYOR_JOB_OPTS, randomBinary,
} from './helpers.mjs';

const KINDS = ['added', 'waiting', 'active', 'progress', 'completed', 'failed',
  'retries-exhausted', 'stalled', 'delayed'];

async function setup(t, extraEnv) {
  const svc = await Service.start(extraEnv);
  t.after(() => svc.stop());
  const conn = svc.connection();
  const queue = svc.track(new Queue(QUEUE, { prefix: PREFIX, connection: conn }));
  // From the start of the stream, so that no event can be missed.
  const qe = svc.track(new QueueEvents(QUEUE, {
    prefix: PREFIX, connection: svc.connection(), lastEventId: '0-0', blockingTimeout: 1000,
  }));
  const log = new EventLog(qe, KINDS);
  await qe.waitUntilReady();
  return { svc, queue, log, conn };
}

// The raw entries of Q:events for one job, as [event, fields] pairs.
async function rawEvents(conn, jobId) {
  const entries = await conn.xrange(`${PREFIX}:${QUEUE}:events`, '-', '+');
  return entries.map(([, kv]) => {
    const o = {};
    for (let i = 0; i < kv.length; i += 2) o[kv[i]] = kv[i + 1];
    return o;
  }).filter((o) => o.jobId === jobId);
}

test('active, progress and completed of a conveyor job, values as JSON', { timeout: 60000 }, async (t) => {
  const { svc, queue, log, conn } = await setup(t);
  try {
    await svc.startApi();
    svc.startWorker();
    const token = svc.token('u1');
    const id = await svc.uploadOk(token, { content: 'Alpha beta gamma.\nDelta epsilon.\n' });

    const completed = await log.waitJob('completed', id, 20000);
    const active = log.of(id).find((e) => e.event === 'active');
    assert.ok(active, 'active event');
    assert.equal(active.prev, 'waiting');
    const progress = log.of(id).filter((e) => e.event === 'progress');
    assert.ok(progress.length > 0, 'progress events');
    for (const p of progress) {
      // Parsed by QueueEvents from JSON: conveyor reports {stage, percent}.
      assert.equal(typeof p.data, 'object', JSON.stringify(p));
      assert.equal(typeof p.data.stage, 'string');
      assert.ok(p.data.percent >= 0 && p.data.percent <= 100);
    }
    assert.equal(typeof completed.returnvalue, 'object');
    assert.equal(completed.returnvalue.fileId, `file_${id}`);
    assert.equal(typeof completed.returnvalue.aiResponse.text, 'string');
    assert.equal(completed.prev, 'active');
    // BullMQ's order for one job: added, waiting, active, progress…, completed.
    const order = log.of(id).map((e) => e.event);
    assert.deepEqual(order.slice(0, 3), ['added', 'waiting', 'active']);
    assert.equal(order.at(-1), 'completed');
    assert.ok(order.slice(3, -1).every((e) => e === 'progress'), order.join(','));
    // Raw stream values parse as JSON too.
    for (const e of await rawEvents(conn, id)) {
      if (e.event === 'progress') JSON.parse(e.data);
      if (e.event === 'completed') JSON.parse(e.returnvalue);
    }
    assert.deepEqual(log.errors, [], 'QueueEvents emitted no error');
    const job = await queue.getJob(id);
    assert.deepEqual(job.returnvalue, completed.returnvalue);
  } catch (e) {
    e.message += `\n${svc.logs()}`;
    throw e;
  }
});

test('failed and retries-exhausted follow BullMQ semantics', { timeout: 60000 }, async (t) => {
  const { svc, queue, log, conn } = await setup(t);
  try {
    await svc.startApi();
    svc.startWorker();
    const token = svc.token('u1');

    // A random binary through conveyor's API: a permanent failure on the
    // first of 3 attempts. BullMQ (UnrecoverableError) emits `failed` and no
    // `retries-exhausted`, because attemptsMade (1) < attempts (3).
    const binId = await svc.uploadOk(token, {
      name: 'blob.bin', type: 'application/octet-stream', content: randomBinary(),
    });
    const failed = await log.waitJob('failed', binId, 20000);
    assert.equal(failed.failedReason, 'Invalid file format');
    assert.equal(failed.prev, 'active');
    const binJob = await queue.getJob(binId);
    assert.equal(await binJob.getState(), 'failed');
    assert.equal(binJob.attemptsMade, 1);
    assert.equal(binJob.failedReason, 'Invalid file format');
    // `failed` and `retries-exhausted` are written by the same script, so the
    // stream is complete for this job once `failed` is there.
    const raw = await rawEvents(conn, binId);
    assert.ok(raw.some((e) => e.event === 'failed'));
    assert.ok(!raw.some((e) => e.event === 'retries-exhausted'),
      `no retries-exhausted with attempts 3: ${JSON.stringify(raw)}`);

    // A Node-added job with attempts 1 that conveyor fails: its only attempt
    // is used up, so BullMQ emits retries-exhausted after failed.
    const id1 = randomUUID();
    const p1 = svc.writeUpload(randomBinary(), { id: id1, originalName: 'one.bin', mimeType: 'application/octet-stream' });
    await queue.add(JOB_NAME, p1, { ...CONVEYOR_JOB_OPTS, attempts: 1, jobId: id1 });
    const ex1 = await log.waitJob('retries-exhausted', id1, 20000);
    assert.equal(ex1.attemptsMade, '1');
    const ev1 = log.of(id1).map((e) => e.event);
    assert.equal(ev1.indexOf('retries-exhausted'), ev1.indexOf('failed') + 1, ev1.join(','));
    assert.equal(log.of(id1).find((e) => e.event === 'failed').failedReason, 'Invalid file format');

    // Without attempts (BullMQ's default, 0) every final failure exhausts.
    const id0 = randomUUID();
    const p0 = svc.writeUpload(randomBinary(), { id: id0, originalName: 'zero.bin', mimeType: 'application/octet-stream' });
    await queue.add(JOB_NAME, p0, { jobId: id0 });
    const ex0 = await log.waitJob('retries-exhausted', id0, 20000);
    assert.equal(ex0.attemptsMade, '1');

    assert.deepEqual(log.errors, []);
  } catch (e) {
    e.message += `\n${svc.logs()}`;
    throw e;
  }
});

test('stalled: a job whose worker was killed is recovered and completed', { timeout: 60000 }, async (t) => {
  const lock = { JOB_LOCK_MS: '2000', STALLED_INTERVAL_MS: '500' };
  const { svc, queue, log, conn } = await setup(t, lock);
  try {
    await svc.startApi();
    const slow = svc.startWorker({ PROCESSING_DELAY_MS: '60000', WORKER_CONCURRENCY: '1' });
    const token = svc.token('u1');
    const id = await svc.uploadOk(token, { content: 'Recovered after a crash.\n' });
    await log.waitJob('active', id, 20000);
    await slow.kill('SIGKILL');
    assert.equal(slow.signal, 'SIGKILL');
    const jobKey = `${PREFIX}:${QUEUE}:${id}`;
    assert.equal(await conn.llen(`${PREFIX}:${QUEUE}:active`), 1);

    svc.startWorker();
    const stalled = await log.waitJob('stalled', id, 20000);
    assert.equal(stalled.jobId, id);
    const completed = await log.waitJob('completed', id, 20000);
    assert.equal(completed.returnvalue.fileId, `file_${id}`);

    // BullMQ's recovery sequence: waiting(prev=active), stalled, active, …, completed.
    const seq = log.of(id).map((e) => e.event + (e.prev ? `(${e.prev})` : ''));
    const s = seq.indexOf('stalled');
    assert.equal(seq[s - 1], 'waiting(active)', seq.join(' '));
    assert.equal(seq.slice(s + 1).find((e) => e.startsWith('active')), 'active(waiting)', seq.join(' '));
    assert.equal(seq.filter((e) => e.startsWith('active')).length, 2, seq.join(' '));
    assert.equal(seq.at(-1), 'completed(active)', seq.join(' '));

    const h = await conn.hgetall(jobKey);
    assert.equal(h.stc, '1', 'stalled counter');
    assert.equal(h.ats, '2', 'attempts started');
    assert.equal(h.atm, '1', 'attempts made');
    const job = await queue.getJob(id);
    assert.equal(await job.getState(), 'completed');
    const st = await svc.waitFinal(token, id);
    assert.equal(st.status, 'completed');
    assert.deepEqual(log.errors, []);
  } catch (e) {
    e.message += `\n${svc.logs()}`;
    throw e;
  }
});
