// The web page (GET /, web/ compiled into the binary) in a real headless
// Chromium driven by playwright-core: it takes the token from the address's
// fragment as `conveyor dev` prints it, opens the WebSocket push channel,
// uploads a file, shows the upload's progress bar move and the job's live
// state pushed over that channel, then the summary and
// keywords; a search finds the file's text; an oversized file and a refused
// token get their error states. The screenshot is saved to
// test-artifacts/web-page.png at the repo root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Service, REPO_ROOT, launchChromium, skipUnlessChromium, withTimeout } from './helpers.mjs';

const ARTIFACT = path.join(REPO_ROOT, 'test-artifacts', 'web-page.png');

test('the web page uploads a file and shows its analysis', {
  timeout: 120000,
  skip: skipUnlessChromium,
}, async (t) => {
  const svc = await Service.start({ MAX_UPLOAD_BYTES: String(4 * 1024 * 1024) });
  t.after(() => svc.stop());
  let chrome;
  t.after(async () => { if (chrome) await chrome.close(); });
  await svc.startApi();
  svc.startWorker();
  const token = svc.token('web-user');

  // The page and its parts come with their policy headers.
  const index = await fetch(`${svc.baseUrl}/`);
  assert.equal(index.status, 200);
  assert.match(index.headers.get('content-type'), /text\/html/);
  assert.match(index.headers.get('content-security-policy'), /default-src 'self'/);
  assert.equal((await fetch(`${svc.baseUrl}/app.js`)).headers.get('content-type'), 'text/javascript; charset=utf-8');

  chrome = await launchChromium({ width: 1100, height: 1100 });
  const page = await chrome.browser.newPage();
  page.setDefaultTimeout(30000);
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  let polls = 0;  // status-route requests: none while the push channel is up
  page.on('request', (r) => { if (r.url().includes('/api/chat/upload/status/')) polls += 1; });

  await page.goto(`${svc.baseUrl}/#token=${encodeURIComponent(token)}&session=web-session`);
  // The token left the address bar and sits in the form.
  assert.equal(new URL(page.url()).hash, '');
  assert.equal(await page.inputValue('#token'), token);
  assert.equal(await page.inputValue('#session'), 'web-session');
  // The push channel (WebSocket, token in the query string) is up.
  await page.locator('#connection', { hasText: 'Connected' }).waitFor();

  // One file of ~1.5 MiB so the upload's progress has steps to show.
  const line = 'The lighthouse keeper logged the storm and the harbour tides every night.\n';
  const text = line.repeat(Math.ceil((1536 * 1024) / line.length));
  const progressSeen = page.evaluate(() => new Promise((resolve) => {
    // Resolves once a progress bar shows a value strictly between 0 and 100
    // or a job reaches a live state (small uploads may finish in one step).
    const check = () => {
      const job = document.querySelector('.job');
      if (!job) return false;
      const v = job.querySelector('.bar').value;
      return (v > 0 && v < 100) || job.classList.contains('pending') || job.classList.contains('processing');
    };
    if (check()) { resolve(true); return; }
    new MutationObserver((_, obs) => { if (check()) { obs.disconnect(); resolve(true); } })
      .observe(document.body, { subtree: true, childList: true, attributes: true });
  }));
  await page.setInputFiles('#files', { name: 'lighthouse.txt', mimeType: 'text/plain', buffer: Buffer.from(text) });
  assert.equal(await withTimeout(progressSeen, 30000, 'the upload to show progress'), true);

  const job = page.locator('.job').first();
  await job.locator('.analysis .summary').waitFor({ state: 'visible', timeout: 60000 });
  assert.equal(await job.locator('.state').textContent(), 'completed');
  assert.match(await job.locator('.summary').textContent(), /lighthouse/i);
  assert.ok(await job.locator('.keywords span').count() > 0, 'keywords shown');
  assert.ok(await job.getAttribute('data-job-id'), 'the job id is on the element');
  assert.equal(polls, 0, 'the job was followed over the push channel, not by polling');

  // Search over the session's memory.
  await page.fill('#q', 'harbour');
  await page.click('#search-form button');
  await page.locator('#results li mark').first().waitFor();
  assert.match(await page.locator('#results li').first().textContent(), /harbour/i);

  // Error states: a file over MAX_UPLOAD_BYTES, then a refused token.
  await page.setInputFiles('#files', { name: 'big.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(5 * 1024 * 1024, 1) });
  await page.locator('.job.refused').first().waitFor();
  assert.match(await page.locator('.job.refused .detail').first().textContent(), /^Too large: /);

  fs.mkdirSync(path.dirname(ARTIFACT), { recursive: true });
  await page.screenshot({ path: ARTIFACT, fullPage: true });

  await page.fill('#token', 'not-a-token');
  await page.click('#token-form button');
  await page.setInputFiles('#files', { name: 'x.txt', mimeType: 'text/plain', buffer: Buffer.from('x') });
  await page.locator('.job.refused .detail', { hasText: 'Token refused' }).waitFor();
  assert.deepEqual(pageErrors, []);
});
