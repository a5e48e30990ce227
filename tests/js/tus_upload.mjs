// Upload one file with tus-js-client (stock, from npm) and print one JSON line about it.
//
//   node tus_upload.mjs '{"endpoint": "...", "file": "...", "headers": {...}, "chunkSize": 0,
//                         "parallelUploads": 1, "metadata": {...}, "retryDelays": [0, 200]}'
//
// Prints {"ok": true, "url", "jobId", "seconds", "retries"} or {"ok": false, "status", "error"}.
// Used by chute's end-to-end tests and by `python -m bench tus` (as the same client for
// chute and for @tus/server).
import fs from 'node:fs';
import * as tus from 'tus-js-client';

const options = JSON.parse(process.argv[2]);
const size = fs.statSync(options.file).size;
let jobId = null;
let retries = 0;
const started = process.hrtime.bigint();

const upload = new tus.Upload(fs.createReadStream(options.file), {
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
  onShouldRetry(err, attempt, opts) {
    retries += 1;
    const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
    return status === 0 || status === 409 || status === 423 || status >= 500;
  },
  onSuccess() {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(JSON.stringify({ ok: true, url: upload.url, jobId, seconds, retries, size }));
  },
  onError(err) {
    const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
    const body = err.originalResponse ? err.originalResponse.getBody() : '';
    console.log(JSON.stringify({ ok: false, status, error: String(err.message).slice(0, 500), body, retries }));
    process.exitCode = 1;
  },
});
upload.start();
