// chute's page for people: plain JavaScript against chute's own API (no build step, nothing from
// a CDN). Files go up through the chunked upload API, several chunks at a time, each with its
// Content-Digest; what is still to send is found again after a reload (the upload ids, and the
// files themselves up to KEEP_FILES_UP_TO, live in IndexedDB). One Server-Sent Events stream
// (/v1/events) drives every progress bar, the job list and the job page.

const KEY = "chute.credential";
//: "token" when the credential is an upload token: it may upload and read its own jobs, not list.
const MODE = "chute.mode";
//: Files up to this size are kept in IndexedDB, so a reload resumes them with no action; larger
//: ones resume when the same file is dropped again.
const KEEP_FILES_UP_TO = 256 * 1024 * 1024;
//: Files uploading at once, and chunks in flight per file.
const FILES_AT_ONCE = 2;
const CHUNKS_AT_ONCE = Number(localStorage.getItem("chute.parallel")) || 3;
//: Chunk size to ask for (0: the server's default); a setting for tests and slow links.
const CHUNK_SIZE = Number(localStorage.getItem("chute.chunkSize")) || 0;
//: Attempts of one request before an upload stops with an error (it stays resumable).
const ATTEMPTS = 6;
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const STAGES = ["assemble", "upload", "extract", "notify"];

// ---------------------------------------------------------------- small helpers

const $ = (id) => document.getElementById(id);

/** An element with attributes and children; text always goes in as text, never as HTML. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const percent = (x) => `${Math.floor(x * 100)} %`;

function toast(message) {
  const node = $("toast");
  node.textContent = message;
  node.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { node.hidden = true; }, 4000);
}

function bar(fraction, kind = "") {
  const node = el("div", { class: `progress ${kind}` }, el("span"));
  setBar(node, fraction); // through the CSSOM: the page's CSP allows no inline style attributes
  return node;
}

function setBar(node, fraction) {
  node.firstElementChild.style.width = `${Math.round(Math.min(Math.max(fraction, 0), 1) * 100)}%`;
}

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http_error";
    this.details = error.details || {};
    this.retryAfter = retryAfter;
  }
  get transient() { return this.status === 0 || this.status === 429 || this.status >= 500; }
}

const credential = () => localStorage.getItem(KEY);

/** One API call as the signed-in credential; throws ApiError (status 0: the network failed). */
async function api(method, path, { json, headers = {} } = {}) {
  const all = { Authorization: `Bearer ${credential()}`, ...headers };
  let body;
  if (json !== undefined) {
    all["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, headers: all, body, cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, { error: { message: `network error: ${e.message}` } });
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.status === 401) signOut("The server refused this credential: sign in again.");
  if (!response.ok) throw new ApiError(response.status, data, Number(response.headers.get("Retry-After")) || 0);
  return data;
}

/** ``call()`` again after transient failures (network, 429, 5xx), with backoff and Retry-After. */
async function retrying(call, attempts = ATTEMPTS) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (e) {
      if (!(e instanceof ApiError) || !e.transient || attempt >= attempts) throw e;
      await sleep(Math.max(e.retryAfter * 1000, Math.min(500 * 2 ** attempt, 10000)));
    }
  }
}

/** A chunk PUT through XMLHttpRequest, which (unlike fetch) reports upload progress. */
function putChunk(path, blob, headers, onProgress, aborter) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", path);
    xhr.setRequestHeader("Authorization", `Bearer ${credential()}`);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body, Number(xhr.getResponseHeader("Retry-After")) || 0));
    };
    xhr.onerror = () => reject(new ApiError(0, { error: { message: "network error" } }));
    xhr.onabort = () => reject(new DOMException("aborted", "AbortError"));
    aborter.signal.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(blob);
  });
}

async function contentDigest(blob) {
  if (!crypto.subtle) return null; // only on https or localhost; the server then checks the whole file
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
  let text = "";
  for (const b of digest) text += String.fromCharCode(b);
  return `sha-256=:${btoa(text)}:`;
}

/** A URL an <img> or a link can load: signed URLs as they are, others fetched with the credential. */
const objectUrls = new Map();
async function loadable(url) {
  const parsed = new URL(url, location.href);
  if ([...parsed.searchParams.keys()].some((k) => /sig|signature|token|expires/i.test(k))) return url;
  if (objectUrls.has(url)) return objectUrls.get(url);
  const response = await fetch(url, { headers: { Authorization: `Bearer ${credential()}` } });
  if (!response.ok) throw new ApiError(response.status, null);
  const local = URL.createObjectURL(await response.blob());
  objectUrls.set(url, local);
  return local;
}

// ---------------------------------------------------------------- uploads kept across reloads

const store = {
  db: null,
  open() {
    if (!this.db) {
      this.db = new Promise((resolve, reject) => {
        const request = indexedDB.open("chute", 1);
        request.onupgradeneeded = () => request.result.createObjectStore("uploads", { keyPath: "fingerprint" });
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
    }
    return this.db;
  },
  async run(mode, action) {
    const db = await this.open();
    return new Promise((resolve, reject) => {
      const request = action(db.transaction("uploads", mode).objectStore("uploads"));
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  },
  all() { return this.run("readonly", (s) => s.getAll()); },
  get(fingerprint) { return this.run("readonly", (s) => s.get(fingerprint)); },
  put(record) { return this.run("readwrite", (s) => s.put(record)); },
  delete(fingerprint) { return this.run("readwrite", (s) => s.delete(fingerprint)); },
};

const fingerprint = (file) => `${credential().slice(0, 12)}:${file.name}:${file.size}:${file.lastModified}`;

// ---------------------------------------------------------------- live events

/** A Server-Sent Events stream read with fetch (EventSource cannot send an Authorization header):
 *  reconnects by itself with Last-Event-ID, and stops on 204. */
class EventStream {
  constructor(path, onEvent, onState) {
    this.path = path;
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastId = null;
    this.retry = 2000;
    this.closed = false;
    this.aborter = new AbortController();
  }

  async run() {
    while (!this.closed) {
      try {
        await this.once();
      } catch (e) {
        if (this.closed) return;
      }
      if (this.closed) return;
      this.onState("reconnecting");
      await sleep(this.retry);
    }
  }

  async once() {
    const headers = { Authorization: `Bearer ${credential()}`, Accept: "text/event-stream" };
    if (this.lastId) headers["Last-Event-ID"] = this.lastId;
    const response = await fetch(this.path, { headers, cache: "no-store", signal: this.aborter.signal });
    if (response.status === 204) { this.close(); return; }
    if (response.status === 401) { signOut("The server refused this credential: sign in again."); return; }
    if (!response.ok) {
      this.retry = Math.max(2000, (Number(response.headers.get("Retry-After")) || 2) * 1000);
      return;
    }
    this.onState("open");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        this.dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  }

  dispatch(block) {
    let type = "message";
    const data = [];
    for (const line of block.split("\n")) {
      const colon = line.indexOf(":");
      if (colon === 0) continue; // a comment: the heartbeat
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
      else if (field === "id") this.lastId = value;
      else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
    }
    if (data.length) this.onEvent(type, JSON.parse(data.join("\n")));
  }

  close() {
    this.closed = true;
    this.aborter.abort();
    this.onState("off");
  }
}

const live = {
  stream: null,
  listeners: new Set(),
  start() {
    if (this.stream) return;
    this.stream = new EventStream("/v1/events", (type, data) => {
      if (type === "ready") return;
      for (const listener of this.listeners) listener(type, data);
    }, (state) => {
      const node = $("live");
      node.dataset.state = state;
      node.textContent = { open: "live", reconnecting: "reconnecting…", off: "offline" }[state];
    });
    this.stream.run();
  },
  stop() {
    if (this.stream) this.stream.close();
    this.stream = null;
  },
  on(listener) { this.listeners.add(listener); return () => this.listeners.delete(listener); },
};

// ---------------------------------------------------------------- the upload dashboard

const uploads = new Map(); // fingerprint → Upload
const waiting = [];
let running = 0;

class Upload {
  constructor(file) {
    this.file = file;
    this.fingerprint = fingerprint(file);
    this.size = file.size;
    this.confirmed = 0;
    this.inflight = new Map();
    this.state = "waiting";
    this.note = "waiting";
    this.job = null;
    this.aborter = new AbortController();
    this.card = this.render();
    $("files").append(this.card);
  }

  render() {
    const kind = (this.file.name.split(".").pop() || "").slice(0, 4).toUpperCase();
    this.preview = el("div", { class: "preview" }, kind);
    this.meta = el("div", { class: "meta" });
    this.uploadBar = bar(0);
    this.pipelineBar = bar(0, "pipeline");
    this.pipelineBar.hidden = true;
    if (this.file.type.startsWith("image/") && this.size < 20e6) {
      this.preview.replaceChildren(el("img", { src: URL.createObjectURL(this.file), alt: "" }));
    }
    return el("li", { class: "file", dataset: { state: "waiting", name: this.file.name } },
      el("button", { class: "icon remove", title: "Remove", "aria-label": `Remove ${this.file.name}`,
                     onclick: () => this.remove() }, "×"),
      this.preview,
      el("div", { class: "name", title: this.file.name }, this.file.name),
      this.meta, this.uploadBar, this.pipelineBar);
  }

  sent() {
    let inflight = 0;
    for (const loaded of this.inflight.values()) inflight += loaded;
    return Math.min(this.confirmed + inflight, this.size);
  }

  update() {
    const card = this.card;
    card.dataset.state = this.state;
    const fraction = this.size ? this.sent() / this.size : 1;
    card.dataset.uploaded = String(Math.floor(fraction * 100));
    setBar(this.uploadBar, fraction);
    if (this.state === "uploading") {
      this.meta.textContent = `${percent(fraction)} of ${bytes(this.size)}${this.resumed ? " (resumed)" : ""}`;
    } else if (this.job) {
      const job = this.job;
      card.dataset.jobId = job.job_id;
      card.dataset.stage = job.stage || "";
      card.dataset.status = job.status;
      this.pipelineBar.hidden = false;
      setBar(this.pipelineBar, job.progress);
      const error = job.error ? `: ${job.error.code}` : "";
      this.meta.replaceChildren(
        el("a", { href: `#/jobs/${job.job_id}` }, job.stage ? `${job.stage} ${percent(job.progress)}` : job.status + error));
    } else {
      this.meta.textContent = this.note;
    }
    summarize();
  }

  setState(state, note) {
    this.state = state;
    if (note !== undefined) this.note = note;
    this.update();
  }

  async run() {
    try {
      this.setState("uploading");
      await this.open();
      await this.sendMissing();
      this.setState("completing", "starting the job…");
      const done = await retrying(() => api("POST", `/v1/uploads/${this.uploadId}/complete`));
      await store.delete(this.fingerprint).catch(() => {});
      this.follow(done.job_id);
    } catch (e) {
      if (e.name === "AbortError") return;
      this.setState("error", `${e.message}${e.code && e.code !== "http_error" ? ` (${e.code})` : ""}`);
    }
  }

  /** Find the upload this file already has on the server (resume), or open a new one. */
  async open() {
    const saved = await store.get(this.fingerprint).catch(() => null);
    if (saved && saved.uploadId) {
      try {
        const upload = await retrying(() => api("GET", `/v1/uploads/${saved.uploadId}`));
        if (upload.size === this.size && (upload.status === "receiving" || upload.job_id)) {
          this.uploadId = upload.upload_id;
          this.chunkSize = upload.chunk_size;
          this.missing = upload.missing;
          this.confirmed = this.size - this.missing.reduce((sum, i) => sum + this.chunkLength(i), 0);
          this.resumed = this.confirmed > 0;
          return;
        }
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 404) throw e;
      }
    }
    const spec = { filename: this.file.name, size: this.size };
    if (this.file.type) spec.content_type = this.file.type;
    if (CHUNK_SIZE) spec.chunk_size = CHUNK_SIZE;
    const created = await retrying(() => api("POST", "/v1/uploads", { json: spec }));
    this.uploadId = created.upload_id;
    this.chunkSize = created.chunk_size;
    this.missing = Array.from({ length: created.chunk_count }, (_, i) => i);
    await store.put({
      fingerprint: this.fingerprint, uploadId: this.uploadId, name: this.file.name, size: this.size,
      file: this.size <= KEEP_FILES_UP_TO ? this.file : undefined, added: Date.now(),
    }).catch(() => {}); // private windows may refuse IndexedDB: the upload goes on, unresumable
  }

  chunkLength(index) {
    return Math.min(this.chunkSize, this.size - index * this.chunkSize);
  }

  async sendMissing() {
    const queue = [...this.missing];
    const worker = async () => {
      while (queue.length) await this.sendChunk(queue.shift());
    };
    await Promise.all(Array.from({ length: Math.min(CHUNKS_AT_ONCE, queue.length) }, worker));
  }

  async sendChunk(index) {
    const start = index * this.chunkSize;
    const blob = this.file.slice(start, start + this.chunkLength(index));
    const headers = { "Content-Type": "application/octet-stream" };
    const digest = await contentDigest(blob);
    if (digest) headers["Content-Digest"] = digest;
    await retrying(async () => {
      this.inflight.set(index, 0);
      try {
        await putChunk(`/v1/uploads/${this.uploadId}/chunks/${index}`, blob, headers, (loaded) => {
          this.inflight.set(index, loaded);
          this.update();
        }, this.aborter);
      } finally {
        this.inflight.delete(index);
      }
    });
    this.confirmed += blob.size;
    this.update();
  }

  /** The job runs: its state comes from the live stream (and once from the API, to start). */
  async follow(jobId) {
    this.state = "processing";
    this.job = { job_id: jobId, status: "queued", stage: null, progress: 0, error: null };
    this.update();
    jobsByUpload.set(jobId, this);
    if (recent.has(jobId)) this.apply(recent.get(jobId));
    const job = await retrying(() => api("GET", `/v1/jobs/${jobId}`)).catch(() => null);
    if (job) this.apply(job);
  }

  apply(job) {
    if (!this.job || (this.job.progress > job.progress && !TERMINAL.has(job.status))) return;
    if (TERMINAL.has(this.job.status)) return;
    this.job = { ...this.job, ...job };
    this.state = TERMINAL.has(job.status) ? job.status : "processing";
    this.update();
    if (job.status === "completed") this.showResult();
  }

  async showResult() {
    try {
      const result = await api("GET", `/v1/jobs/${this.job.job_id}/result`);
      const names = ["thumb_256", "preview", "thumb_1024", "web"];
      const thumb = names.map((n) => (result.derivatives || []).find((d) => d.name === n)).find(Boolean);
      if (thumb) {
        const img = el("img", { alt: `thumbnail of ${this.file.name}`, class: "thumbnail" });
        img.src = await loadable(thumb.url);
        this.preview.replaceChildren(img);
      }
    } catch (e) {
      /* the card still shows the job's state and links to its page */
    }
  }

  async remove() {
    this.aborter.abort();
    uploads.delete(this.fingerprint);
    this.card.remove();
    summarize();
    if (!this.job && this.uploadId) {
      await store.delete(this.fingerprint).catch(() => {});
      await api("DELETE", `/v1/uploads/${this.uploadId}`).catch(() => {});
    }
  }
}

const jobsByUpload = new Map(); // job id → Upload
//: The latest event of recent jobs: one may arrive before the upload that made it learns its id.
const recent = new Map();

function addFiles(files) {
  for (const file of files) {
    const fp = fingerprint(file);
    const existing = uploads.get(fp);
    if (existing && existing.state !== "error") continue; // already on its way
    if (existing) existing.card.remove();
    const upload = new Upload(file);
    uploads.set(fp, upload);
    waiting.push(upload);
    document.querySelector(`#interrupted-list [data-fingerprint="${CSS.escape(fp)}"]`)?.remove();
  }
  $("interrupted").hidden = !$("interrupted-list").children.length;
  pump();
}

function pump() {
  while (running < FILES_AT_ONCE && waiting.length) {
    const upload = waiting.shift();
    running++;
    upload.run().finally(() => { running--; pump(); });
  }
}

function summarize() {
  const all = [...uploads.values()];
  $("summary").hidden = !all.length;
  const count = (s) => all.filter((u) => s.includes(u.state)).length;
  const parts = [
    [count(["waiting", "uploading", "completing"]), "uploading"],
    [count(["processing"]), "processing"],
    [count(["completed"]), "done"],
    [count(["failed", "error", "cancelled"]), "failed"],
  ].filter(([n]) => n).map(([n, what]) => `${n} ${what}`);
  $("summary-text").textContent = `${all.length} file${all.length === 1 ? "" : "s"}: ${parts.join(", ")}`;
}

/** After a reload: uploads whose file was kept resume by themselves; the others wait to be dropped again. */
async function resumeKept() {
  const records = await store.all().catch(() => []);
  const mine = records.filter((r) => r.fingerprint.startsWith(credential().slice(0, 12) + ":"));
  const kept = mine.filter((r) => r.file).map((r) => r.file);
  if (kept.length) addFiles(kept);
  const list = $("interrupted-list");
  list.replaceChildren(...mine.filter((r) => !r.file).map((r) =>
    el("li", { dataset: { fingerprint: r.fingerprint } }, `${r.name} (${bytes(r.size)})`)));
  $("interrupted").hidden = !list.children.length;
}

function setUpDropZone() {
  const drop = $("drop");
  const picker = $("picker");
  $("browse").addEventListener("click", () => picker.click());
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") picker.click(); });
  picker.addEventListener("change", () => { addFiles([...picker.files]); picker.value = ""; });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => addFiles([...e.dataTransfer.files]));
  // A file dropped next to the zone must not make the browser leave the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  $("clear-done").addEventListener("click", () => {
    for (const upload of [...uploads.values()]) {
      if (TERMINAL.has(upload.state)) { upload.card.remove(); uploads.delete(upload.fingerprint); }
    }
    summarize();
  });
}

// ---------------------------------------------------------------- the job list

// `listing` counts the list's resets: a page of jobs that arrives after a newer reset (the
// filter changed while it was in flight) belongs to a list no longer shown and is dropped.
const list = { status: "", cursor: null, rows: new Map(), loaded: false, listing: 0 };

function jobRow(job) {
  const progress = bar(job.progress, "pipeline");
  const row = el("tr", { dataset: { jobId: job.job_id, status: job.status } },
    el("td", {}, el("a", { href: `#/jobs/${job.job_id}` }, job.filename || job.job_id)),
    el("td", {}, el("span", { class: `badge ${job.status}` }, job.status)),
    el("td", {}, progress, el("small", { class: "stage" }, job.stage || "")),
    el("td", {}, bytes(job.size)),
    el("td", {}, when(job.created_at)));
  row.job = job;
  return row;
}

async function loadJobs(reset) {
  if (reset) {
    list.listing += 1;
    list.cursor = null;
    list.rows.clear();
    $("job-rows").replaceChildren();
  }
  const listing = list.listing;
  const query = new URLSearchParams({ limit: "50" });
  if (list.status) query.set("status", list.status);
  if (list.cursor) query.set("cursor", list.cursor);
  try {
    const page = await api("GET", `/v1/jobs?${query}`);
    if (listing !== list.listing) return; // the list was reset meanwhile: its own request fills it
    for (const job of page.jobs) {
      if (list.rows.has(job.job_id)) continue; // shown live while the page was in flight, and kept current
      const row = jobRow(job);
      list.rows.set(job.job_id, row);
      $("job-rows").append(row);
    }
    list.cursor = page.next_cursor;
    list.loaded = true;
  } catch (e) {
    toast(`Could not list jobs: ${e.message}`);
  }
  $("more").hidden = !list.cursor;
  $("jobs-empty").hidden = list.rows.size > 0;
}

const notListed = new Set(); // jobs older than the list's first page: they show on a reload
// Jobs being fetched to join the list → the newest event seen for each meanwhile. A job moves
// through its stages faster than one GET: the events that arrive during the fetch are applied
// once its row exists, so the row ends where the job did (they were dropped before).
const joining = new Map();

async function applyToList(type, event) {
  if (!list.loaded || notListed.has(event.job_id)) return;
  if (joining.has(event.job_id)) { joining.set(event.job_id, event); return; }
  const row = list.rows.get(event.job_id);
  if (!row) {
    if (list.status && list.status !== event.status) return;
    joining.set(event.job_id, event);
    const job = await api("GET", `/v1/jobs/${event.job_id}`).catch(() => null);
    const latest = joining.get(event.job_id);
    joining.delete(event.job_id);
    if (!job) return;
    if (!list.rows.has(job.job_id)) { // (else a page of the list brought it meanwhile)
      const newest = $("job-rows").firstElementChild;
      if (newest && newest.job.created_at > job.created_at) { notListed.add(job.job_id); return; }
      const fresh = jobRow(job);
      list.rows.set(job.job_id, fresh);
      $("job-rows").prepend(fresh);
      $("jobs-empty").hidden = true;
    }
    if (latest !== event) applyToList(type, latest); // what happened to the job during the fetch
    return;
  }
  if (list.status && list.status !== event.status) {
    row.remove();
    list.rows.delete(event.job_id);
    return;
  }
  const updated = jobRow({ ...row.job, ...event });
  row.replaceWith(updated);
  list.rows.set(event.job_id, updated);
}

// ---------------------------------------------------------------- one job

const shown = { jobId: null };

function facts(pairs) {
  return el("dl", { class: "facts" },
    pairs.filter(([, v]) => v !== undefined && v !== null && v !== "").map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

async function showJob(jobId) {
  shown.jobId = jobId;
  const body = $("job-body");
  body.replaceChildren(el("p", {}, "Loading…"));
  let job;
  try {
    job = await api("GET", `/v1/jobs/${jobId}`);
  } catch (e) {
    body.replaceChildren(el("p", { class: "error" }, e.status === 404 ? "No such job." : e.message));
    return;
  }
  if (shown.jobId !== jobId) return;
  const head = el("div", { id: "job-head", dataset: { status: job.status, stage: job.stage || "" } },
    el("h1", {}, job.filename),
    el("p", {}, el("span", { class: `badge ${job.status}`, id: "job-status" }, job.status), " ",
      el("span", { id: "job-stage" }, job.stage ? `${job.stage} · ${percent(job.progress)}` : "")),
    bar(job.progress, "pipeline"));
  const error = job.error ? el("p", { class: "error" }, `${job.error.code}: ${job.error.message}`) : null;
  const about = facts([
    ["Job", el("code", {}, job.job_id)],
    ["Size", bytes(job.size)],
    ["Type", job.detected_type || job.content_type],
    ["Declared type", job.type_mismatch ? job.content_type : null],
    ["SHA-256", job.sha256 ? el("code", {}, job.sha256) : null],
    ["Created", when(job.created_at)],
    ["Started", when(job.started_at)],
    ["Ended", when(job.completed_at)],
    ["Attempts", job.attempts],
    ["Webhook", job.webhook ? `${job.webhook.status} (${job.webhook.attempts} attempts)` : null],
    ["Metadata", Object.keys(job.metadata || {}).length ? el("code", {}, JSON.stringify(job.metadata)) : null],
  ]);
  const result = el("div", { id: "job-result" });
  const deliveries = el("div", { id: "job-deliveries" });
  body.replaceChildren(head, error || "", about, result, deliveries);
  if (job.status === "completed") renderResult(jobId, result);
  if (job.webhook) renderDeliveries(jobId, deliveries);
}

function applyToJobPage(type, event) {
  if (location.hash !== `#/jobs/${event.job_id}` || !$("job-head")) return;
  if (TERMINAL.has(event.status)) { showJob(event.job_id); return; }
  const head = $("job-head");
  head.dataset.status = event.status;
  head.dataset.stage = event.stage || "";
  $("job-status").textContent = event.status;
  $("job-status").className = `badge ${event.status}`;
  $("job-stage").textContent = event.stage ? `${event.stage} · ${percent(event.progress)}` : "";
  setBar(head.querySelector(".progress"), event.progress);
}

async function renderResult(jobId, node) {
  let result;
  try {
    result = await api("GET", `/v1/jobs/${jobId}/result`);
  } catch (e) {
    node.replaceChildren(el("p", { class: "error" }, `Result: ${e.message}`));
    return;
  }
  const parts = [el("h2", {}, "Result")];
  if (result.document) {
    const d = result.document;
    parts.push(facts([
      ["Pages", d.page_count], ["PDF version", d.version], ...Object.entries(d.metadata || {}).map(([k, v]) => [k, v]),
    ]));
  }
  if (result.image) {
    const i = result.image;
    parts.push(facts([["Image", `${i.format} ${i.width}×${i.height}`], ["Mode", i.mode], ["Frames", i.frames]]));
  }
  const images = (result.derivatives || []).filter((d) => (d.content_type || "").startsWith("image/") || d.width);
  if (images.length) {
    const thumbs = el("div", { class: "thumbs" });
    parts.push(el("h2", {}, "Thumbnails"), thumbs);
    for (const d of images) {
      const img = el("img", { alt: d.name, dataset: { derivative: d.name } });
      thumbs.append(el("figure", {}, img, el("figcaption", {}, `${d.name} · ${d.width}×${d.height}`)));
      loadable(d.url).then((src) => { img.src = src; }).catch(() => { img.alt = `${d.name} (could not load)`; });
    }
  }
  const links = [["original", result.object.url, result.object.size], ...(result.derivatives || []).map((d) => [d.name, d.url, d.size])];
  parts.push(el("h2", {}, "Downloads"), el("ul", { class: "downloads" },
    links.map(([name, url, size]) => el("li", {}, downloadLink(name, url), size ? ` (${bytes(size)})` : ""))));
  if (result.document && result.document.pages) {
    parts.push(el("h2", {}, "Text"));
    for (const page of result.document.pages) {
      parts.push(el("details", { class: "page" }, el("summary", {}, `Page ${page.number}`), el("pre", {}, page.text || "")));
    }
  }
  node.replaceChildren(...parts);
}

function downloadLink(name, url) {
  const link = el("a", { href: url, download: "" }, name);
  link.addEventListener("click", async (e) => {
    if (link.dataset.ready) return;
    e.preventDefault();
    try {
      link.href = await loadable(url);
      link.dataset.ready = "1";
      link.click();
    } catch (err) {
      toast(`Download failed: ${err.message}`);
    }
  });
  return link;
}

async function renderDeliveries(jobId, node) {
  let data;
  try {
    data = await api("GET", `/v1/jobs/${jobId}/deliveries`);
  } catch (e) {
    return; // an upload token may not read deliveries
  }
  const replay = el("button", { class: "secondary", type: "button", id: "replay" }, "Send again");
  replay.addEventListener("click", async () => {
    replay.disabled = true;
    try {
      await api("POST", `/v1/jobs/${jobId}/deliveries`);
      toast("The webhook is on its way again.");
      setTimeout(() => renderDeliveries(jobId, node), 1500);
    } catch (e) {
      toast(`Replay refused: ${e.message}`);
      replay.disabled = false;
    }
  });
  const rows = data.deliveries.map((d) => el("tr", {},
    el("td", {}, when(d.attempted_at)), el("td", {}, d.type), el("td", {}, d.status_code ?? "—"),
    el("td", {}, d.error || ""), el("td", {}, d.duration_ms !== null ? `${d.duration_ms} ms` : "")));
  node.replaceChildren(
    el("h2", {}, "Webhook deliveries"),
    rows.length
      ? el("table", { class: "deliveries" },
        el("thead", {}, el("tr", {}, ["When", "Event", "Answer", "Error", "Took"].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows))
      : el("p", { class: "empty" }, "No attempt yet."),
    data.deliveries.length ? replay : "");
}

// ---------------------------------------------------------------- signing in, and the router

function signOut(message) {
  localStorage.removeItem(KEY);
  localStorage.removeItem(MODE);
  live.stop();
  route();
  if (message) $("sign-in-error").textContent = message;
}

async function signIn(event) {
  event.preventDefault();
  const value = $("credential").value.trim();
  if (!value) return;
  localStorage.setItem(KEY, value);
  localStorage.setItem(MODE, "key");
  try {
    await api("GET", "/v1/jobs?limit=1");
  } catch (e) {
    if (e.status !== 403) {
      localStorage.removeItem(KEY);
      $("sign-in-error").textContent = e.status === 401 ? "That credential was refused." : e.message;
      return;
    }
    localStorage.setItem(MODE, "token"); // an upload token: it may not list jobs, and that is fine
  }
  $("credential").value = "";
  $("sign-in-error").textContent = "";
  start();
}

function show(section) {
  for (const id of ["sign-in", "home", "jobs", "job"]) $(id).hidden = id !== section;
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.toggleAttribute("aria-current", link.dataset.nav === section || (section === "job" && link.dataset.nav === "jobs"));
    if (link.hasAttribute("aria-current")) link.setAttribute("aria-current", "page");
  }
}

function route() {
  const signedIn = Boolean(credential());
  $("sign-out").hidden = !signedIn;
  const token = localStorage.getItem(MODE) === "token";
  $("who").textContent = signedIn ? (token ? "upload token" : `${credential().slice(0, 10)}…`) : "";
  document.querySelector('[data-nav="jobs"]').hidden = token;
  if (!signedIn) { show("sign-in"); return; }
  const hash = token && location.hash === "#/jobs" ? "#/" : location.hash || "#/";
  if (hash.startsWith("#/jobs/")) {
    show("job");
    showJob(decodeURIComponent(hash.slice("#/jobs/".length)));
  } else if (hash === "#/jobs") {
    show("jobs");
    loadJobs(true);
  } else {
    show("home");
  }
}

let started = false;
function start() {
  live.start();
  route();
  if (!started) {
    started = true;
    resumeKept();
  }
}

live.on((type, event) => {
  recent.delete(event.job_id);
  recent.set(event.job_id, event);
  if (recent.size > 500) recent.delete(recent.keys().next().value);
  jobsByUpload.get(event.job_id)?.apply(event);
  applyToList(type, event);
  applyToJobPage(type, event);
});

window.addEventListener("hashchange", route);
$("sign-in-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", () => signOut());
$("status-filter").addEventListener("change", (e) => { list.status = e.target.value; loadJobs(true); });
$("more").addEventListener("click", () => loadJobs(false));
setUpDropZone();
if (credential()) start(); else route();
