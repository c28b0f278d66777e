// conveyor's web page: upload files, follow their jobs live over the
// WebSocket push channel (/api/chat/upload/ws), and search the session's
// memory. No framework and no build step; served from the binary.
//
// The token comes from the address's fragment (#token=...&session=..., as
// `conveyor dev` prints it; the fragment never reaches a server or its logs)
// or is pasted, and is kept in sessionStorage only. Everything the server or
// a file provides is inserted as text, never as HTML.
'use strict';

const $ = (sel) => document.querySelector(sel);
const jobs = new Map();  // jobId -> { el, final }
let token = '';
let session = 'default';
let socket = null;
let socketOpen = false;
let reconnectDelay = 500;
let pollTimer = null;

const STAGES = { detect: 'detecting the format', extract: 'extracting text', analyse: 'analysing',
  store: 'storing memory' };

function readFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get('token')) sessionStorage.setItem('conveyor.token', params.get('token'));
  if (params.get('session')) sessionStorage.setItem('conveyor.session', params.get('session'));
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  token = sessionStorage.getItem('conveyor.token') || '';
  session = sessionStorage.getItem('conveyor.session') || 'default';
  $('#token').value = token;
  $('#session').value = session;
}

function setConnection(text, bad) {
  const p = $('#connection');
  p.textContent = text;
  p.classList.toggle('error', Boolean(bad));
}

function authHeaders() { return { Authorization: `Bearer ${token}` }; }

// Error text of a JSON error answer, or a fallback.
async function errorText(response, fallback) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) { /* not JSON */ }
  return fallback;
}

// ---- push channel ----

function connect() {
  if (socket) socket.close();
  if (!token) { setConnection('Paste a token to start.', true); return; }
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}/api/chat/upload/ws?access_token=${encodeURIComponent(token)}`);
  socket = ws;
  ws.onopen = () => {
    socketOpen = true;
    reconnectDelay = 500;
    setConnection('Connected: job updates arrive as they happen.');
    const open = [...jobs.entries()].filter(([, j]) => !j.final).map(([id]) => id);
    if (open.length) send({ type: 'subscribe', jobIds: open });
  };
  ws.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch (_) { return; }
    onPush(msg);
  };
  ws.onclose = () => {
    if (socket !== ws) return;
    socketOpen = false;
    setConnection('Push channel closed; following jobs by polling until it is back.', true);
    schedulePoll();
    setTimeout(() => { if (socket === ws) connect(); }, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, 15000);
  };
}

function send(msg) {
  if (socket && socketOpen) socket.send(JSON.stringify(msg));
}

function onPush(msg) {
  const job = jobs.get(msg.jobId);
  if (!job) return;
  if (msg.type === 'error') {
    showState(job, 'failed', msg.error || 'unknown job');
    return;
  }
  if (msg.data) render(job, msg.data, msg.type);
}

// While the push channel is down, unfinished jobs are read from the status route.
function schedulePoll() {
  if (pollTimer) return;
  pollTimer = setTimeout(async () => {
    pollTimer = null;
    if (socketOpen) return;
    for (const [id, job] of jobs) {
      if (job.final) continue;
      try {
        const r = await fetch(`/api/chat/upload/status/${encodeURIComponent(id)}`, { headers: authHeaders() });
        if (r.ok) render(job, (await r.json()).data, 'status');
      } catch (_) { setConnection('Server unreachable; retrying.', true); }
    }
    if ([...jobs.values()].some((j) => !j.final)) schedulePoll();
  }, 2000);
}

// ---- jobs ----

function addJobElement(file) {
  const el = $('#job-template').content.firstElementChild.cloneNode(true);
  el.querySelector('.name').textContent = file.name;
  el.querySelector('.size').textContent = formatBytes(file.size);
  $('#jobs').prepend(el);
  return { el, final: false };
}

function showState(job, state, detail) {
  job.el.classList.remove('uploading', 'pending', 'processing', 'completed', 'failed', 'refused');
  job.el.classList.add(state);
  job.el.querySelector('.state').textContent = state;
  job.el.querySelector('.detail').textContent = detail || '';
  if (state === 'completed' || state === 'failed' || state === 'refused') job.final = true;
  job.el.querySelector('.bar').hidden = state === 'failed' || state === 'refused';
}

function render(job, data, type) {
  const bar = job.el.querySelector('.bar');
  switch (data.status) {
    case 'pending':
      showState(job, 'pending', 'Waiting for a worker.');
      bar.removeAttribute('value');
      break;
    case 'processing': {
      const stage = data.stage && STAGES[data.stage] ? STAGES[data.stage] : 'processing';
      showState(job, 'processing', `${stage}${typeof data.progress === 'number' ? ` (${data.progress}%)` : ''}`);
      if (typeof data.progress === 'number') bar.value = data.progress;
      break;
    }
    case 'completed':
      bar.value = 100;
      showState(job, 'completed', type === 'completed' ? 'Done.' : '');
      showAnalysis(job, data.result || {});
      break;
    case 'failed':
      showState(job, 'failed', `Failed: ${data.error || 'unknown reason'}`);
      break;
    default:
      break;
  }
}

function showAnalysis(job, result) {
  const box = job.el.querySelector('.analysis');
  box.hidden = false;
  const summary = result.aiResponse && result.aiResponse.text;
  box.querySelector('.summary').textContent = summary || '(no summary)';
  const kw = box.querySelector('.keywords');
  kw.replaceChildren();
  for (const k of result.keywords || []) {
    const span = document.createElement('span');
    span.textContent = k;
    kw.append(span);
  }
  const refs = box.querySelector('.references');
  refs.replaceChildren();
  for (const ref of result.references || []) {
    const li = document.createElement('li');
    li.append(`Related to an earlier file (${(ref.terms || []).join(', ')}): `);
    appendSnippet(li, ref.snippet || '');
    refs.append(li);
  }
}

function upload(file) {
  const job = addJobElement(file);
  showState(job, 'uploading', 'Uploading…');
  const bar = job.el.querySelector('.bar');
  const form = new FormData();
  form.append('session_id', session);
  const message = $('#message').value;
  if (message) form.append('message', message);
  form.append('file', file, file.name);

  const xhr = new XMLHttpRequest();
  xhr.open('POST', '/api/chat/upload/async');
  xhr.setRequestHeader('Authorization', `Bearer ${token}`);
  xhr.upload.onprogress = (ev) => {
    if (ev.lengthComputable) bar.value = Math.round((ev.loaded / ev.total) * 100);
  };
  xhr.onerror = () => showState(job, 'refused', 'Server unreachable: the upload did not arrive.');
  xhr.onload = () => {
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
    if (xhr.status === 202 && body && body.data) {
      const id = body.data.jobId;
      jobs.set(id, job);
      job.el.dataset.jobId = id;
      bar.value = 0;
      showState(job, 'pending', 'Uploaded; waiting for a worker.');
      send({ type: 'subscribe', jobIds: [id] });
      if (!socketOpen) schedulePoll();
      return;
    }
    const reason = body && body.error ? body.error.message : `HTTP ${xhr.status}`;
    const prefix = { 401: 'Token refused', 413: 'Too large', 429: 'Too many uploads' }[xhr.status] || 'Refused';
    let text = `${prefix}: ${reason}`;
    const retry = xhr.getResponseHeader('Retry-After');
    if (xhr.status === 429 && retry) text += ` (retry in ${retry} s)`;
    showState(job, 'refused', text);
  };
  xhr.send(form);
}

// ---- search ----

// A search snippet marks matches as **word**: shown with <mark>, as text.
function appendSnippet(parent, snippet) {
  snippet.split('**').forEach((part, i) => {
    if (i % 2 === 1) {
      const m = document.createElement('mark');
      m.textContent = part;
      parent.append(m);
    } else {
      parent.append(part);
    }
  });
}

async function search(q) {
  const status = $('#search-status');
  const list = $('#results');
  list.replaceChildren();
  status.classList.remove('error');
  status.textContent = 'Searching…';
  try {
    const url = `/api/chat/memory/search?session_id=${encodeURIComponent(session)}&q=${encodeURIComponent(q)}`;
    const r = await fetch(url, { headers: authHeaders() });
    if (!r.ok) {
      status.classList.add('error');
      status.textContent = await errorText(r, `Search failed (HTTP ${r.status}).`);
      return;
    }
    const results = (await r.json()).data.results;
    status.textContent = results.length ? `${results.length} result(s).` : 'Nothing found in this session.';
    for (const hit of results) {
      const li = document.createElement('li');
      appendSnippet(li, hit.snippet);
      list.append(li);
    }
  } catch (_) {
    status.classList.add('error');
    status.textContent = 'Server unreachable.';
  }
}

// ---- wiring ----

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function startUploads(files) {
  if (!token) { setConnection('Paste a token first.', true); return; }
  for (const f of files) upload(f);
}

document.addEventListener('DOMContentLoaded', () => {
  readFragment();
  $('#token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = $('#token').value.trim();
    session = $('#session').value.trim() || 'default';
    sessionStorage.setItem('conveyor.token', token);
    sessionStorage.setItem('conveyor.session', session);
    connect();
  });
  const drop = $('#drop');
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    startUploads(ev.dataTransfer.files);
  });
  drop.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') $('#files').click(); });
  $('#files').addEventListener('change', (ev) => { startUploads(ev.target.files); ev.target.value = ''; });
  $('#search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = $('#q').value.trim();
    if (q) search(q);
  });
  connect();
});
