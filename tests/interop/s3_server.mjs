// An S3-protocol server for the tests: s3rver (locked in package.json) on
// 127.0.0.1:<port>, its objects under <dir>, with bucket <bucket> created.
//
//   node s3_server.mjs PORT DIR BUCKET
//
// s3rver 3.7.1 keeps multipart uploads in progress under the bucket's
// "uploads" resource directory but implements neither ListMultipartUploads
// (GET /bucket?uploads) nor AbortMultipartUpload (DELETE /bucket/key?uploadId=),
// which conveyor's storage sweeper and its writer's abort use. The two are
// added here, in front of s3rver's router, on its own store: an upload is its
// directory there (the object key in its "key" file), aborted by removing it.
// Prints "ready" once listening; with S3_REQUEST_LOG=1 in the environment,
// then one line per request: "s3 <METHOD> <bucket|object>[?<query names>]"
// (bench/capacity.sh counts them).
import fs from 'node:fs/promises';
import path from 'node:path';
import S3rver from 's3rver';

const [port, dir, bucket] = process.argv.slice(2);
if (!port || !dir || !bucket) {
  console.error('usage: node s3_server.mjs PORT DIR BUCKET');
  process.exit(2);
}

const server = new S3rver({
  port: Number(port),
  address: '127.0.0.1',
  directory: dir,
  silent: true,
  configureBuckets: [{ name: bucket }],
});

const xmlEscape = s =>
  String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

async function uploadsOf(bucketName) {
  const root = server.store.getResourcePath(bucketName, undefined, 'uploads');
  let ids = [];
  try {
    ids = await fs.readdir(root);
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  const out = [];
  for (const id of ids) {
    const updir = path.join(root, id);
    try {
      const key = (await fs.readFile(path.join(updir, 'key'))).toString();
      const st = await fs.stat(updir);
      out.push({ id, key, initiated: st.birthtime.getTime() ? st.birthtime : st.ctime, dir: updir });
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
  }
  return out;
}

server.middleware.unshift(async (ctx, next) => {
  const url = new URL(ctx.url, 'http://localhost');
  const parts = url.pathname.split('/').filter(p => p !== '');
  const bucketName = parts.length ? decodeURIComponent(parts[0]) : '';
  const key = parts.slice(1).map(decodeURIComponent).join('/');
  if (process.env.S3_REQUEST_LOG === '1') {
    const names = [...new Set(url.searchParams.keys())].sort().join('&');
    console.log(`s3 ${ctx.method} ${parts.length > 1 ? 'object' : 'bucket'}${names ? '?' + names : ''}`);
  }
  if (ctx.method === 'GET' && parts.length === 1 && url.searchParams.has('uploads')) {
    const prefix = url.searchParams.get('prefix') || '';
    const uploads = (await uploadsOf(bucketName)).filter(u => u.key.startsWith(prefix));
    ctx.type = 'application/xml';
    ctx.body =
      '<?xml version="1.0" encoding="UTF-8"?>\n' +
      '<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
      `<Bucket>${xmlEscape(bucketName)}</Bucket><Prefix>${xmlEscape(prefix)}</Prefix>` +
      '<IsTruncated>false</IsTruncated>' +
      uploads
        .map(
          u =>
            `<Upload><Key>${xmlEscape(u.key)}</Key><UploadId>${u.id}</UploadId>` +
            `<Initiated>${u.initiated.toISOString()}</Initiated></Upload>`,
        )
        .join('') +
      '</ListMultipartUploadsResult>';
    return;
  }
  if (ctx.method === 'DELETE' && parts.length > 1 && url.searchParams.has('uploadId')) {
    const id = url.searchParams.get('uploadId');
    const upload = (await uploadsOf(bucketName)).find(u => u.id === id && u.key === key);
    if (!upload) {
      ctx.status = 404;
      ctx.type = 'application/xml';
      ctx.body =
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchUpload</Code>' +
        '<Message>The specified upload does not exist.</Message></Error>';
      return;
    }
    await fs.rm(upload.dir, { recursive: true, force: true });
    ctx.status = 204;
    return;
  }
  return next();
});

await server.run();
console.log('ready');
