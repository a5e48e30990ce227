"""``chute upload``: a resumable command-line client of the chunked upload API.

It hashes the file, opens an upload, sends the chunks the server does not have yet (several
at a time, each with its Content-Digest, retried with backoff), completes it and, with
``--wait``, polls the job. An interrupted upload is resumed with ``--resume UPLOAD_ID``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import urllib3

#: Attempts per request before the client gives up (the upload stays resumable).
ATTEMPTS = 5
#: Statuses worth retrying: the server or a dependency is briefly unavailable.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class ClientError(Exception):
    """The API refused a request, or stayed unreachable."""


@dataclass
class Api:
    base_url: str
    api_key: str
    http: urllib3.PoolManager

    def call(self, method: str, path: str, *, body: bytes | None = None, json_body: Any = None,
             headers: dict[str, str] | None = None) -> Any:  # fmt: skip
        """One API call, retried with backoff on network errors and 429/5xx; the decoded JSON."""
        all_headers = {"Authorization": f"Bearer {self.api_key}", **(headers or {})}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        for attempt in range(ATTEMPTS):
            try:
                response = self.http.request(method, self.base_url + path, body=body, headers=all_headers,
                                             retries=False, timeout=urllib3.Timeout(connect=10, read=120))  # fmt: skip
            except urllib3.exceptions.HTTPError as e:
                error: str = str(e)
            else:
                if response.status < 400:
                    return json.loads(response.data) if response.data else None
                payload = json.loads(response.data or b"{}").get("error", {})
                error = f"{response.status} {payload.get('code')}: {payload.get('message')}"
                if response.status not in RETRY_STATUSES:
                    raise ClientError(error)
            time.sleep(min(0.5 * 2**attempt, 8))
        raise ClientError(f"{method} {path} failed {ATTEMPTS} times: {error}")


class Progress:
    """A one-line progress bar on a terminal (plain lines otherwise)."""

    def __init__(self, name: str, total: int, out: TextIO):
        self.name, self.total, self.out = name, max(total, 1), out
        self.done = 0
        self.lock = threading.Lock()
        self.started = time.monotonic()

    def add(self, size: int) -> None:
        with self.lock:
            self.done += size
            fraction = self.done / self.total
            rate = self.done / max(time.monotonic() - self.started, 1e-6) / 1e6
            bar = "#" * int(fraction * 30)
            end = "\r" if self.out.isatty() else "\n"
            self.out.write(f"{self.name}: [{bar:<30}] {fraction:6.1%} {rate:7.1f} MB/s{end}")
            self.out.flush()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def upload_file(
    api: Api,
    path: Path,
    *,
    chunk_size: int | None = None,
    resume: str | None = None,
    webhook_url: str | None = None,
    parallel: int = 4,
    out: TextIO = sys.stderr,
) -> dict[str, Any]:
    """Upload ``path`` (or finish the upload ``resume``) and complete it; returns the complete answer."""
    if resume:
        upload = api.call("GET", f"/v1/uploads/{resume}")
        upload_id, size, chunk_size, missing = resume, upload["size"], upload["chunk_size"], upload["missing"]
    else:
        size = path.stat().st_size
        spec: dict[str, Any] = {"filename": path.name, "size": size, "sha256": sha256_of(path)}
        if chunk_size:
            spec["chunk_size"] = chunk_size
        if webhook_url:
            spec["webhook_url"] = webhook_url
        created = api.call("POST", "/v1/uploads", json_body=spec)
        upload_id, chunk_size, missing = (
            created["upload_id"],
            created["chunk_size"],
            list(range(created["chunk_count"])),
        )
        out.write(
            f"{path.name}: upload {upload_id} ({created['chunk_count']} chunks; resume with --resume {upload_id})\n"
        )
    progress = Progress(path.name, size, out)
    progress.add(size - sum(min(chunk_size, size - i * chunk_size) for i in missing))

    def send(index: int) -> None:
        with open(path, "rb") as f:
            f.seek(index * chunk_size)
            data = f.read(chunk_size)
        digest = "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"
        api.call("PUT", f"/v1/uploads/{upload_id}/chunks/{index}", body=data,
                 headers={"Content-Digest": digest, "Content-Type": "application/octet-stream"})  # fmt: skip
        progress.add(len(data))

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(send, missing))
    if out.isatty():
        out.write("\n")
    return dict(api.call("POST", f"/v1/uploads/{upload_id}/complete"))


def wait_for_job(api: Api, job_id: str, out: TextIO = sys.stderr, poll: float = 0.5) -> dict[str, Any]:
    """Poll the job until it ends; prints each stage change."""
    seen = None
    while True:
        job = dict(api.call("GET", f"/v1/jobs/{job_id}"))
        state = (job["status"], job["stage"])
        if state != seen:
            out.write(f"{job_id}: {job['status']}{' / ' + job['stage'] if job['stage'] else ''} "
                      f"({job['progress']:.0%})\n")  # fmt: skip
            seen = state
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(poll)
