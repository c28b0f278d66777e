// Resumable uploads (tus 1.0, /api/chat/upload/tus) with the real
// tus-js-client from npm against the real `conveyor api` and worker:
//  - a 5 MiB upload whose connection is cut midway (a TCP proxy destroys
//    the sockets) resumes from the server's offset, and its job completes;
//  - an upload aborted by the client is found again through the client's
//    URL storage (findPreviousUploads / resumeFromPreviousUpload) and
//    resumes where the server stopped;
//  - a chunk with a wrong Upload-Checksum is refused (460), the offset stays;
//  - an expired upload is gone (404, files swept), and the client starts a
//    new one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createHash } from 'node:crypto';
import * as tus from 'tus-js-client';
import { Service, freePort, waitFor, withTimeout } from './helpers.mjs';

const MiB = 1024 * 1024;

// Text the worker can read: words and sentences, `n` bytes.
function text(n, seed = 1) {
  const words = ['invoice', 'river', 'conveyor', 'upload', 'resumable', 'harbor', 'ledger', 'meadow'];
  const parts = [];
  let size = 0;
  let x = seed;
  while (size < n) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const w = words[x % words.length] + (x % 11 === 0 ? '.\n' : ' ');
    parts.push(w);
    size += w.length;
  }
  return Buffer.from(parts.join('')).subarray(0, n);
}

// A TCP proxy to `port` that destroys both sockets once `cutAfter` bytes went
// from clients to the server (once), then forwards normally.
async function cuttingProxy(port, cutAfter) {
  const state = { forwarded: 0, cut: false, sockets: new Set() };
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    state.sockets.add(client);
    state.sockets.add(upstream);
    client.on('data', (chunk) => {
      state.forwarded += chunk.length;
      if (!state.cut && state.forwarded > cutAfter) {
        state.cut = true;
        client.destroy();
        upstream.destroy();
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => client.write(chunk));
    for (const s of [client, upstream]) {
      s.on('error', () => { client.destroy(); upstream.destroy(); });
      s.on('close', () => { client.destroy(); upstream.destroy(); state.sockets.delete(s); });
    }
  });
  const proxyPort = await freePort();
  await new Promise((resolve) => server.listen(proxyPort, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${proxyPort}`;
  state.close = () => new Promise((resolve) => {
    for (const s of state.sockets) s.destroy();
    server.close(() => resolve());
  });
  return state;
}

// Runs a tus upload to completion; resolves with {lastResponse, requests},
// where requests lists [method, Upload-Offset sent, Upload-Offset answered].
function runUpload(data, options) {
  const requests = [];
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(data, {
      retryDelays: [100, 300, 1000],
      ...options,
      onBeforeRequest(req) {
        requests.push({ method: req.getMethod(), sent: req.getHeader('Upload-Offset') });
        options.onBeforeRequest?.(req);
      },
      onAfterResponse(req, res) {
        const r = requests.findLast((x) => x.method === req.getMethod());
        if (r) { r.status = res.getStatus(); r.answered = res.getHeader('Upload-Offset'); }
      },
      onSuccess(payload) { resolve({ ...payload, requests, upload }); },
      onError(err) { err.requests = requests; reject(err); },
    });
    if (options.prepare) options.prepare(upload).then(() => upload.start(), reject);
    else upload.start();
  });
}

async function head(svc, token, url) {
  const r = await fetch(url, { method: 'HEAD', headers: { Authorization: `Bearer ${token}`, 'Tus-Resumable': '1.0.0' } });
  return { status: r.status, offset: r.headers.get('upload-offset'), jobId: r.headers.get('upload-job-id'),
    expires: r.headers.get('upload-expires') };
}

const metadata = (name) => ({ session_id: 'tus-session', filename: name, filetype: 'text/plain' });

test('a 5 MiB upload cut midway resumes from the server offset and its job completes', { timeout: 120000 }, async (t) => {
  const svc = await Service.start();
  t.after(() => svc.stop());
  await svc.startApi();
  svc.startWorker();
  const token = svc.token('tus-user');
  const proxy = await cuttingProxy(svc.apiPort, 2 * MiB);
  t.after(() => proxy.close());
  const data = text(5 * MiB, 3);

  const done = await withTimeout(runUpload(data, {
    endpoint: `${proxy.url}/api/chat/upload/tus`,
    headers: { Authorization: `Bearer ${token}` },
    metadata: metadata('five.txt'),
  }), 90000, 'tus upload');

  assert.ok(proxy.cut, 'the proxy cut the connection');
  const patches = done.requests.filter((r) => r.method === 'PATCH');
  assert.ok(patches.length >= 2, `PATCHes: ${JSON.stringify(done.requests)}`);
  assert.equal(patches[0].sent, '0');
  // After the cut the client asked the server (HEAD) and went on from there:
  // neither from 0 nor past what the server held.
  const heads = done.requests.filter((r) => r.method === 'HEAD');
  assert.ok(heads.length >= 1, JSON.stringify(done.requests));
  const resumedAt = Number(patches.at(-1).sent);
  assert.ok(resumedAt > 0 && resumedAt < data.length, `resumed at ${resumedAt}`);
  assert.equal(String(resumedAt), heads.at(-1).answered);
  assert.equal(patches.at(-1).answered, String(data.length));

  const jobId = done.lastResponse.getHeader('Upload-Job-Id');
  assert.match(jobId, /^[0-9a-f-]{36}$/);
  assert.equal(done.upload.url.endsWith(`/api/chat/upload/tus/${jobId}`), true);
  const final = await svc.waitFinal(token, jobId, 60000);
  assert.equal(final.status, 'completed', JSON.stringify(final));
  // A later HEAD still names the job.
  const h = await head(svc, token, `${svc.baseUrl}/api/chat/upload/tus/${jobId}`);
  assert.equal(h.status, 200);
  assert.equal(h.jobId, jobId);
});

test('an aborted upload is found again and resumed with findPreviousUploads', { timeout: 120000 }, async (t) => {
  const svc = await Service.start();
  t.after(() => svc.stop());
  await svc.startApi();
  svc.startWorker();
  const token = svc.token('tus-user');
  const data = text(3 * MiB, 5);
  const urlStorage = new tus.FileUrlStorage(path.join(svc.dataDir, 'tus-client-urls.json'));
  const options = {
    endpoint: `${svc.baseUrl}/api/chat/upload/tus`,
    headers: { Authorization: `Bearer ${token}` },
    metadata: metadata('three.txt'),
    chunkSize: 512 * 1024,
    urlStorage,
  };

  // First run: stop after two chunks.
  let aborted;
  await withTimeout(new Promise((resolve, reject) => {
    const upload = new tus.Upload(data, {
      ...options,
      onChunkComplete(_size, accepted) {
        if (accepted >= 1024 * 1024 && !aborted) {
          aborted = accepted;
          upload.abort().then(resolve, reject);
        }
      },
      onError: reject,
      onSuccess: () => reject(new Error('finished before the abort')),
    });
    upload.start();
  }), 30000, 'first run');
  assert.equal(aborted, 1024 * 1024);

  // Second run: the client's URL storage knows the upload; HEAD says where.
  const done = await withTimeout(runUpload(data, {
    ...options,
    async prepare(upload) {
      const previous = await upload.findPreviousUploads();
      assert.equal(previous.length, 1);
      upload.resumeFromPreviousUpload(previous[0]);
    },
  }), 60000, 'second run');
  const first = done.requests[0];
  assert.equal(first.method, 'HEAD');
  assert.equal(first.answered, String(1024 * 1024));
  assert.ok(!done.requests.some((r) => r.method === 'POST'), 'no new upload was created');
  const jobId = done.lastResponse.getHeader('Upload-Job-Id');
  const final = await svc.waitFinal(token, jobId, 60000);
  assert.equal(final.status, 'completed');
});

test('a chunk with a wrong checksum is refused with 460 and the offset stays', { timeout: 60000 }, async (t) => {
  const svc = await Service.start();
  t.after(() => svc.stop());
  await svc.startApi();
  const token = svc.token('tus-user');
  const data = text(256 * 1024, 7);
  const wrong = createHash('sha256').update('not these bytes').digest('base64');
  let url;
  const err = await withTimeout(runUpload(data, {
    endpoint: `${svc.baseUrl}/api/chat/upload/tus`,
    headers: { Authorization: `Bearer ${token}` },
    metadata: metadata('sum.txt'),
    retryDelays: null,
    onUploadUrlAvailable() { /* url read below */ },
    onBeforeRequest(req) {
      if (req.getMethod() === 'PATCH') {
        url = req.getURL();
        req.setHeader('Upload-Checksum', `sha256 ${wrong}`);
      }
    },
  }).then(() => null, (e) => e), 30000, 'checksum upload');
  assert.ok(err, 'the upload must fail');
  assert.equal(err.originalResponse?.getStatus(), 460, String(err));
  const h = await head(svc, token, url);
  assert.equal(h.status, 200);
  assert.equal(h.offset, '0');

  // The right checksum is accepted.
  const right = createHash('sha256').update(data).digest('base64');
  const r = await fetch(url, {
    method: 'PATCH',
    headers: { Authorization: `Bearer ${token}`, 'Tus-Resumable': '1.0.0', 'Upload-Offset': '0',
      'Content-Type': 'application/offset+octet-stream', 'Upload-Checksum': `sha256 ${right}` },
    body: data,
  });
  assert.equal(r.status, 204);
  assert.equal(r.headers.get('upload-offset'), String(data.length));
  assert.match(r.headers.get('upload-job-id'), /^[0-9a-f-]{36}$/);
});

test('an expired upload is gone and the client starts a new one', { timeout: 90000 }, async (t) => {
  const svc = await Service.start({ TUS_EXPIRATION_MS: '1500', TUS_SWEEP_INTERVAL_MS: '100' });
  t.after(() => svc.stop());
  await svc.startApi();
  svc.startWorker();
  const token = svc.token('tus-user');
  const data = text(1 * MiB, 9);
  const urlStorage = new tus.FileUrlStorage(path.join(svc.dataDir, 'tus-client-urls.json'));
  const options = {
    endpoint: `${svc.baseUrl}/api/chat/upload/tus`,
    headers: { Authorization: `Bearer ${token}` },
    metadata: metadata('late.txt'),
    chunkSize: 256 * 1024,
    urlStorage,
  };
  let oldUrl;
  await withTimeout(new Promise((resolve, reject) => {
    const upload = new tus.Upload(data, {
      ...options,
      onChunkComplete() {
        if (!oldUrl) {
          oldUrl = upload.url;
          upload.abort().then(resolve, reject);
        }
      },
      onError: reject,
    });
    upload.start();
  }), 30000, 'first run');
  const before = await head(svc, token, oldUrl);
  assert.equal(before.status, 200);
  assert.ok(Date.parse(before.expires) > Date.now() - 5000, `Upload-Expires ${before.expires}`);
  const id = oldUrl.split('/').at(-1);
  const tusDir = path.join(svc.dataDir, 'tus');

  // The sweep removes it once it expired; HEAD is 404.
  await waitFor(() => !fs.existsSync(path.join(tusDir, `${id}.bin`)) &&
    !fs.existsSync(path.join(tusDir, `${id}.info`)), { timeout: 20000, what: 'the sweep' });
  assert.equal((await head(svc, token, oldUrl)).status, 404);

  // The client, resuming from its storage, meets the 404 and creates anew.
  const done = await withTimeout(runUpload(data, {
    ...options,
    async prepare(upload) {
      const previous = await upload.findPreviousUploads();
      assert.equal(previous.length, 1);
      upload.resumeFromPreviousUpload(previous[0]);
    },
  }), 60000, 'second run');
  assert.equal(done.requests[0].method, 'HEAD');
  assert.equal(done.requests[0].status, 404);
  assert.ok(done.requests.some((r) => r.method === 'POST'));
  assert.notEqual(done.upload.url, oldUrl);
  const final = await svc.waitFinal(token, done.lastResponse.getHeader('Upload-Job-Id'), 60000);
  assert.equal(final.status, 'completed');
});
