// Bull Board (the BullMQ dashboard) on conveyor's queue: jobs made by
// conveyor's API and worker show up with their counts and the failed job's
// reason, in a real headless Chromium driven by playwright-core. The
// screenshot is saved to test-artifacts/bull-board.png at the repo root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import express from 'express';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { Queue } from 'bullmq';
import {
  Service, PREFIX, QUEUE, REPO_ROOT, launchChromium, randomBinary, skipUnlessChromium, waitFor,
} from './helpers.mjs';

const ARTIFACT = path.join(REPO_ROOT, 'test-artifacts', 'bull-board.png');

test('Bull Board shows conveyor jobs', {
  timeout: 90000,
  skip: skipUnlessChromium,
}, async (t) => {
  const svc = await Service.start();
  t.after(() => svc.stop());
  let chrome;
  t.after(async () => { if (chrome) await chrome.close(); });
  try {
    await svc.startApi();
    svc.startWorker();
    const token = svc.token('u1');
    const ids = {
      a: await svc.uploadOk(token, { name: 'a.txt', content: 'First document for the board.\n' }),
      b: await svc.uploadOk(token, { name: 'b.md', type: 'text/markdown', content: '# Second\n\nMarkdown body.\n' }),
      bad: await svc.uploadOk(token, { name: 'noise.bin', type: 'application/octet-stream', content: randomBinary() }),
    };
    for (const id of Object.values(ids)) await svc.waitFinal(token, id);
    const queue = svc.track(new Queue(QUEUE, { prefix: PREFIX, connection: svc.connection() }));
    const counts = await queue.getJobCounts();
    assert.equal(counts.completed, 2);
    assert.equal(counts.failed, 1);

    // The board, as a Node.js service would mount it.
    const dlq = svc.track(new Queue(`${QUEUE}-dlq`, { prefix: PREFIX, connection: svc.connection() }));
    const serverAdapter = new ExpressAdapter();
    serverAdapter.setBasePath('/ui');
    createBullBoard({
      queues: [new BullMQAdapter(queue), new BullMQAdapter(dlq, { readOnlyMode: true })],
      serverAdapter,
    });
    const app = express();
    app.use('/ui', serverAdapter.getRouter());
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    svc.track({ close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) });
    const board = `http://127.0.0.1:${server.address().port}/ui`;

    // Its JSON API first (what the page renders).
    const api = await (await fetch(`${board}/api/queues?activeQueue=${QUEUE}&status=failed&page=1`)).json();
    const q = api.queues.find((x) => x.name === QUEUE);
    assert.ok(q, JSON.stringify(api).slice(0, 500));
    assert.equal(q.counts.completed, 2);
    assert.equal(q.counts.failed, 1);
    assert.equal(q.jobs.length, 1);
    assert.equal(q.jobs[0].id, ids.bad);
    assert.equal(q.jobs[0].failedReason, 'Invalid file format');

    chrome = await launchChromium({ width: 1400, height: 1000 });
    const page = await chrome.browser.newPage();
    page.setDefaultTimeout(20000);

    // The overview lists both queues; the queue's card counts its 3 jobs.
    await page.goto(board, { waitUntil: 'load' });
    await page.getByText(QUEUE, { exact: true }).first().waitFor();
    await page.getByText(/3 Jobs/i).first().waitFor();
    const overview = await page.locator('body').innerText();
    assert.ok(overview.includes(`${QUEUE}-dlq`), overview);

    // The queue's completed tab lists the two completed jobs by id.
    await page.goto(`${board}/queue/${QUEUE}?status=completed`, { waitUntil: 'load' });
    await page.getByText(ids.a).first().waitFor();
    await page.getByText(ids.b).first().waitFor();

    // The failed tab shows the failed job and its reason; the status tabs
    // show the counts (rendered as "COMPLETED 2", "FAILED 1").
    await page.goto(`${board}/queue/${QUEUE}?status=failed`, { waitUntil: 'load' });
    await page.getByText('Invalid file format').first().waitFor();
    await page.getByText(ids.bad).first().waitFor();
    const failedPage = await page.locator('body').innerText();
    assert.match(failedPage, /completed\s+2\b/i, failedPage);
    assert.match(failedPage, /failed\s+1\b/i, failedPage);
    assert.ok(!failedPage.includes(ids.a), 'completed jobs are not listed as failed');
    fs.mkdirSync(path.dirname(ARTIFACT), { recursive: true });
    await page.screenshot({ path: ARTIFACT, fullPage: true });
    assert.ok(fs.statSync(ARTIFACT).size > 10000, 'a screenshot was written');
  } catch (e) {
    e.message += `\n${svc.logs()}`;
    throw e;
  }
});

// BullMQ's Worker names its blocking connection `<prefix>:<base64(queue)>`
// (CLIENT SETNAME); Queue.getWorkers() and Bull Board's "Workers" panel find
// workers by that name, and conveyor's worker names its connections the same.
test('Queue.getWorkers() lists a running conveyor worker', {
  timeout: 30000,
}, async (t) => {
  const svc = await Service.start();
  t.after(() => svc.stop());
  const conn = svc.connection();
  const queue = svc.track(new Queue(QUEUE, { prefix: PREFIX, connection: conn }));
  const worker = svc.startWorker();
  await waitFor(() => worker.log().includes('worker running'), { timeout: 15000, what: 'the worker' });
  const expected = `${PREFIX}:${Buffer.from(QUEUE).toString('base64')}`;
  await waitFor(async () => (await queue.getWorkersCount()) >= 1, {
    timeout: 5000,
    what: `a client named ${expected} (CLIENT LIST names: ${
      (await conn.client('LIST')).split('\n').map((l) => /name=(\S*)/.exec(l)?.[1]).filter((x) => x !== undefined).join(',')})`,
  });
});
