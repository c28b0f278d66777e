// A bullmq Worker (in a child process) and conveyor's worker on the same
// queue under load, both SIGKILLed and restarted at random: every job ends,
// each is finished (completed or failed) by exactly one engine, once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents } from 'bullmq';
import {
  Service, EventLog, Proc, HERE, PREFIX, QUEUE, JOB_NAME, CONVEYOR_JOB_OPTS,
  sleep, waitFor,
} from './helpers.mjs';

const JOBS = 200;
const LOCK_MS = 1000;
const STALLED_MS = 500;
const DELAY_MS = 150;
const SEEN_KEY = 'interop:node-processed';
// The only reason a job may fail here: it stalled twice (maxStalledCount 1).
const ALLOWED_FAILURES = new Set(['job stalled more than allowable limit']);

function startNodeWorker(svc, n) {
  const p = new Proc(`node worker ${n}`, process.execPath, [
    path.join(HERE, 'mixed_node_worker.mjs'), '--port', String(svc.redis.port),
    '--concurrency', '2', '--delay', String(DELAY_MS), '--lock', String(LOCK_MS),
    '--stalled', String(STALLED_MS), '--seen-key', SEEN_KEY,
  ], { logFile: path.join(svc.dataDir, `node-worker-${n}.log`), cwd: HERE });
  svc.procs.push(p);
  return p;
}

test('bullmq and conveyor workers share a queue through crashes', { timeout: 120000 }, async (t) => {
  const svc = await Service.start({
    JOB_LOCK_MS: String(LOCK_MS), STALLED_INTERVAL_MS: String(STALLED_MS),
    PROCESSING_DELAY_MS: String(DELAY_MS), WORKER_CONCURRENCY: '2',
  });
  t.after(() => svc.stop());
  try {
    const conn = svc.connection();
    const queue = svc.track(new Queue(QUEUE, { prefix: PREFIX, connection: conn }));
    const qe = svc.track(new QueueEvents(QUEUE, {
      prefix: PREFIX, connection: svc.connection(), lastEventId: '0-0', blockingTimeout: 1000,
    }));
    const log = new EventLog(qe, ['completed', 'failed', 'stalled', 'active']);
    await qe.waitUntilReady();
    await svc.startApi();

    const ids = [];
    const jobs = [];
    for (let i = 0; i < JOBS; i++) {
      const id = randomUUID();
      ids.push(id);
      const payload = svc.writeUpload(`Document ${i} about load testing.\nLine two of ${i}.\n`, {
        id, originalName: `doc-${i}.txt`,
      });
      jobs.push({ name: JOB_NAME, data: payload, opts: { ...CONVEYOR_JOB_OPTS, jobId: id } });
    }
    await queue.addBulk(jobs);
    assert.equal((await queue.getJobCounts()).waiting, JOBS);

    // An engine is up once it logged its start line; the Node worker is
    // killed only after its processor has taken jobs.
    const ready = (p, line) => waitFor(() => {
      if (!p.running) throw new Error(`${p.name} exited: ${p.log()}`);
      return p.log().includes(line);
    }, { timeout: 20000, what: `${p.name} to start` });
    const startConveyor = async () => {
      const p = svc.startWorker();
      await ready(p, 'worker running');
      return p;
    };
    let nodeN = 0;
    const startNode = async () => {
      const p = startNodeWorker(svc, ++nodeN);
      await ready(p, 'ready');
      return p;
    };
    let [conveyor, node] = await Promise.all([startConveyor(), startNode()]);
    const finished = () => log.events.filter((e) => e.event === 'completed' || e.event === 'failed').length;

    // Crash each engine a few times while jobs run, at random moments.
    const kills = { conveyor: 0, node: 0 };
    const deadline = Date.now() + 60000;
    for (let round = 0; round < 6 && finished() < JOBS * 0.8 && Date.now() < deadline; round++) {
      await sleep(300 + Math.floor(Math.random() * 500));
      if (round % 2 === 0) {
        await conveyor.kill('SIGKILL');
        kills.conveyor++;
        await sleep(Math.floor(Math.random() * 300));
        conveyor = await startConveyor();
      } else {
        const before = await conn.scard(SEEN_KEY);
        await waitFor(async () => (await conn.scard(SEEN_KEY)) > before,
          { timeout: 10000, what: 'the Node worker to take a job' });
        await node.kill('SIGKILL');
        kills.node++;
        await sleep(Math.floor(Math.random() * 300));
        node = await startNode();
      }
    }
    assert.ok(kills.conveyor >= 1 && kills.node >= 1, `both engines crashed: ${JSON.stringify(kills)}`);

    await waitFor(async () => {
      const c = await queue.getJobCounts();
      return c.completed + c.failed === JOBS && c.active === 0 && c.waiting === 0 && c.delayed === 0;
    }, { timeout: 60000, interval: 200, what: `all ${JOBS} jobs to finish` });
    // Events are read asynchronously: wait until QueueEvents has seen them all.
    await waitFor(() => finished() >= JOBS, { timeout: 10000, what: 'the final events' });

    // Exactly one final event per job: none was finished twice.
    const finals = new Map();
    for (const e of log.events) {
      if (e.event !== 'completed' && e.event !== 'failed') continue;
      assert.ok(!finals.has(e.jobId), `job ${e.jobId} finished twice: ${JSON.stringify([finals.get(e.jobId), e])}`);
      finals.set(e.jobId, e);
    }
    assert.deepEqual([...finals.keys()].sort(), [...ids].sort());

    const token = svc.token('u1');
    const nodeSeen = new Set(await conn.smembers(SEEN_KEY));
    const by = { node: 0, conveyor: 0, failed: 0 };
    for (const id of ids) {
      const job = await queue.getJob(id);
      assert.ok(job, `job ${id} kept`);
      const state = await job.getState();
      const final = finals.get(id);
      if (state === 'failed') {
        assert.equal(final.event, 'failed');
        assert.ok(ALLOWED_FAILURES.has(job.failedReason), `job ${id} failed: ${job.failedReason}`);
        by.failed++;
        continue;
      }
      assert.equal(state, 'completed');
      assert.equal(final.event, 'completed');
      // The final record is the one the finishing engine wrote.
      assert.deepEqual(job.returnvalue, final.returnvalue);
      assert.ok(job.finishedOn >= job.processedOn);
      const rv = job.returnvalue;
      if (rv?.processedBy === 'node') {
        assert.equal(rv.jobId, id);
        assert.ok(nodeSeen.has(id), `node's processor ran for ${id}`);
        by.node++;
      } else {
        assert.equal(rv?.fileId, `file_${id}`, `conveyor's result for ${id}: ${JSON.stringify(rv)}`);
        assert.equal(typeof rv.aiResponse?.text, 'string');
        // conveyor's completion is in its database too.
        const st = await svc.status(token, id);
        assert.equal(st.body.data?.status, 'completed', `row of ${id}: ${JSON.stringify(st.body)}`);
        assert.equal(st.body.data.result.fileId, `file_${id}`);
        by.conveyor++;
      }
    }
    assert.equal(by.node + by.conveyor + by.failed, JOBS);
    assert.ok(by.node > 0 && by.conveyor > 0, `both engines finished jobs: ${JSON.stringify(by)}`);
    const stalled = log.events.filter((e) => e.event === 'stalled').length;
    assert.ok(stalled > 0, 'crashes left jobs that were recovered as stalled');
    t.diagnostic(`finished by ${JSON.stringify(by)}; kills ${JSON.stringify(kills)}; stalled ${stalled}`);
    assert.deepEqual(log.errors, []);
  } catch (e) {
    e.message += `\n${svc.logs()}`;
    throw e;
  }
});
