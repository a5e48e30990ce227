// The ops page: polls GET /v1/ops/overview with the admin token and renders it; retry and
// cancel call the ops API. Plain DOM, no framework, nothing loaded from elsewhere.
"use strict";

const POLL_MS = 5000;
const KEY = "chute-admin-token";
const $ = (id) => document.getElementById(id);
let timer = null;

function token() { return sessionStorage.getItem(KEY); }

async function api(method, path) {
  const response = await fetch(path, { method, headers: { Authorization: `Bearer ${token()}` } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error((body.error && body.error.message) || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (className) td.className = className;
  return td;
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  if (value < 120) return `${value.toFixed(1)} s`;
  if (value < 7200) return `${(value / 60).toFixed(1)} min`;
  return `${(value / 3600).toFixed(1)} h`;
}

function ago(iso) { return iso ? seconds((Date.now() - Date.parse(iso)) / 1000) : "–"; }

function fill(tableId, rows, render, emptyText) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren();
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = cell(emptyText, "empty");
    td.colSpan = $(tableId).querySelectorAll("th").length;
    tr.append(td);
    body.append(tr);
    return;
  }
  for (const row of rows) {
    const tr = document.createElement("tr");
    tr.dataset.key = row.job_id || row.stage || row.endpoint || row.code || "";
    tr.append(...render(row));
    body.append(tr);
  }
}

function action(label, onClick) {
  const td = document.createElement("td");
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.addEventListener("click", async () => {
    button.disabled = true;
    let outcome;
    try { await onClick(); outcome = `${label}: done`; }
    catch (e) { outcome = `${label} failed: ${e.message}`; }
    await refresh();  // then say how it went: set before, the refresh overwrote it at once
    $("status").textContent = outcome;
  });
  td.append(button);
  return td;
}

function render(data) {
  $("broker-error").textContent = data.broker_error ? `(broker: ${data.broker_error})` : "";
  $("window").textContent = seconds(data.latency_window_seconds);
  $("uploads-open").textContent = data.uploads_open;
  fill("stages", data.stages, (s) => [
    cell(s.stage), cell(s.queue), cell(s.waiting, "num"),
    cell(seconds(s.oldest_waiting_seconds), "num" + (s.oldest_waiting_seconds > 300 ? " warn" : "")),
    cell(s.ready, "num"), cell(s.unacked, "num"),
    cell(s.consumers, "num" + (s.consumers === 0 ? " bad" : "")), cell(s.delayed, "num"),
    cell(s.dead_letters, "num" + (s.dead_letters ? " bad" : "")),
    cell(s.per_minute.toFixed(2), "num"), cell(seconds(s.p50_seconds), "num"), cell(seconds(s.p99_seconds), "num"),
  ], "no stages");
  const codes = Object.entries(data.failures_by_code).sort((a, b) => b[1] - a[1]).map(([code, n]) => ({ code, n }));
  fill("failures", codes, (f) => [cell(f.code), cell(f.n, "num bad")], "no failures");
  fill("failed", data.failed_jobs, (j) => [
    cell(j.job_id), cell(j.filename), cell(j.stage), cell(j.error && j.error.code, "bad"),
    cell(j.error && j.error.message), cell(ago(j.updated_at)),
    j.retryable ? action("retry", () => api("POST", `/v1/ops/jobs/${j.job_id}/retry`)) : cell("bytes gone", "empty"),
  ], "no failed jobs");
  fill("in-flight", data.in_flight_jobs, (j) => [
    cell(j.job_id), cell(j.filename), cell(j.status), cell(j.stage), cell(j.attempts, "num"), cell(ago(j.updated_at)),
    action("cancel", () => api("DELETE", `/v1/ops/jobs/${j.job_id}`)),
  ], "nothing in flight");
  fill("webhooks", data.webhook_endpoints, (e) => [
    cell(e.endpoint), cell(e.attempts, "num"), cell(e.delivered, e.delivered === e.attempts ? "num ok" : "num"),
    cell(e.failing_streak, "num" + (e.failing_streak ? " bad" : "")), cell(e.pending, "num"),
    cell(e.p50_ms === null ? null : `${Math.round(e.p50_ms)} ms`, "num"), cell(e.last_result), cell(ago(e.last_attempt_at)),
  ], "no webhook attempts");
}

async function refresh() {
  clearTimeout(timer);
  if (!token()) return;
  try {
    const data = await api("GET", "/v1/ops/overview");
    $("login").classList.add("hidden");
    $("board").classList.remove("hidden");
    $("signout").classList.remove("hidden");
    render(data);
    $("status").textContent = `updated ${new Date(Date.parse(data.generated_at)).toLocaleTimeString()}`;
  } catch (e) {
    if (e.status === 401 || e.status === 404) {
      sessionStorage.removeItem(KEY);
      $("board").classList.add("hidden");
      $("login").classList.remove("hidden");
      $("error").textContent = e.message;
      return;
    }
    $("status").textContent = `refresh failed: ${e.message}`;
  }
  timer = setTimeout(refresh, POLL_MS);
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("token").value.trim());
  $("error").textContent = "";
  refresh();
});
$("signout").addEventListener("click", () => { sessionStorage.removeItem(KEY); location.reload(); });
refresh();
