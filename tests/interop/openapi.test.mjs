// The API description served by a running conveyor API (GET /api/openapi.json)
// is a valid OpenAPI 3.1 document according to @apidevtools/swagger-parser,
// and what the server answers matches what it documents for the upload and
// status routes. (That every route is documented and every documented route
// is served is checked against the route table by src/http/openapi_test.cc.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import SwaggerParser from '@apidevtools/swagger-parser';
import { Service } from './helpers.mjs';

test('GET /api/openapi.json is a valid OpenAPI 3.1 document', { timeout: 60000 }, async (t) => {
  const svc = await Service.start();
  t.after(() => svc.stop());
  await svc.startApi();
  svc.startWorker();
  const token = svc.token('openapi-user');

  const refused = await fetch(`${svc.baseUrl}/api/openapi.json`);
  assert.equal(refused.status, 401);

  const r = await fetch(`${svc.baseUrl}/api/openapi.json`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /application\/json/);
  const doc = await r.json();
  assert.equal(doc.openapi, '3.1.0');
  const api = await SwaggerParser.validate(structuredClone(doc));
  assert.ok(api.paths['/api/chat/upload/async'].post);

  // The documented answers: 202 with jobId/status pending, then the status shape.
  const up = await svc.upload(token, { content: 'OpenAPI says hello.' });
  assert.equal(up.status, 202);
  const accepted = up.body;
  const upload = api.paths['/api/chat/upload/async'].post.responses['202'].content['application/json'].schema;
  for (const key of upload.required) assert.ok(key in accepted, `upload answer lacks ${key}`);
  for (const key of upload.properties.data.required) assert.ok(key in accepted.data, `upload data lacks ${key}`);
  const final = await svc.waitFinal(token, accepted.data.jobId);  // the status answer's data
  const state = api.components.schemas.JobState;
  for (const key of state.required) assert.ok(key in final, `status data lacks ${key}`);
  assert.equal(final.status, 'completed');
  assert.ok(state.properties.status.enum.includes(final.status));
  for (const key of Object.keys(final)) {
    assert.ok(key in state.properties, `status data has undocumented field ${key}`);
  }
  for (const key of Object.keys(final.result ?? {})) {
    assert.ok(key in state.properties.result.properties, `result has undocumented field ${key}`);
  }
});
