// Upload with tus-js-client (stock, from npm) and print one JSON line about it.
//
//   node tus_upload.mjs '{"endpoint": "...", "file": "...", "headers": {...}, "chunkSize": 0,
//                         "parallelUploads": 1, "metadata": {...}, "retryDelays": [0, 200]}'
//
// With "files": [...] instead of "file", each file is uploaded on its own connection, all at
// once (for a server without concatenation). Prints {"ok": true, "url", "jobId", "seconds",
// "retries"} or {"ok": false, "status", "error", "body"}. Used by chute's end-to-end tests and
// by `python -m bench tus` (the same client for chute and for @tus/server).
import fs from 'node:fs';
import * as tus from 'tus-js-client';

const options = JSON.parse(process.argv[2]);
let jobId = null;
let retries = 0;

function send(file) {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(fs.createReadStream(file), {
      endpoint: options.endpoint,
      headers: options.headers || {},
      metadata: options.metadata || {},
      chunkSize: options.chunkSize || Infinity,
      parallelUploads: options.parallelUploads || 1,
      retryDelays: options.retryDelays === undefined ? [0, 200, 500, 1000] : options.retryDelays,
      storeFingerprintForResuming: false,
      onAfterResponse(req, res) {
        const id = res.getHeader('Chute-Job-Id');
        if (id) jobId = id;
      },
      onShouldRetry(err) {
        retries += 1;
        const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
        return status === 0 || status === 409 || status === 423 || status >= 500;
      },
      onSuccess() { resolve(upload.url); },
      onError(err) { reject(err); },
    });
    upload.start();
  });
}

const started = process.hrtime.bigint();
try {
  const urls = await Promise.all((options.files || [options.file]).map(send));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(JSON.stringify({ ok: true, url: urls[0], urls, jobId, seconds, retries }));
} catch (err) {
  const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
  const body = err.originalResponse ? err.originalResponse.getBody() : '';
  console.log(JSON.stringify({ ok: false, status, error: String(err.message).slice(0, 500), body, retries }));
  process.exitCode = 1;
}
