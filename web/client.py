"""``chute upload``: a resumable command-line client of the chunked upload API.

It hashes the file, opens an upload, sends the chunks the server does not have yet (several
at a time, each with its Content-Digest, retried with backoff), completes it and, with
``--wait``, polls the job. An interrupted upload (Ctrl-C) is resumed with ``--resume UPLOAD_ID``,
which first checks that the file is the one the upload was opened for.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
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


class UploadInterrupted(Exception):
    """Ctrl-C during an upload: what the server has is kept, and ``--resume upload_id`` sends the rest."""

    def __init__(self, upload_id: str | None):
        super().__init__(upload_id)
        self.upload_id = upload_id


#: Least time between two redraws of the bar on a terminal, and between two lines elsewhere.
REDRAW_SECONDS, LINE_SECONDS = 0.1, 5.0
#: The bar's width in characters.
BAR_WIDTH = 30


class Progress:
    """A one-line progress bar with rate and ETA on a terminal (a line now and then otherwise).

    ``already`` bytes were on the server before this run: they fill the bar but not the rate.
    Each redraw returns to the line's start and clears to its end, and is cut to the terminal's
    width, so a shorter line or a narrow window leaves no stray characters.
    """

    def __init__(self, name: str, total: int, out: TextIO, already: int = 0):
        self.name, self.total, self.out = name, max(total, 1), out
        self.done = self.already = already
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.drawn = 0.0
        self.tty = out.isatty()

    def add(self, size: int) -> None:
        with self.lock:
            self.done += size
            now = time.monotonic()
            final = self.done >= self.total
            if not final and now - self.drawn < (REDRAW_SECONDS if self.tty else LINE_SECONDS):
                return
            self.drawn = now
            line = self.line(now)
            if self.tty:
                width = shutil.get_terminal_size((80, 24)).columns
                self.out.write("\r" + line[: width - 1] + "\x1b[K")
            else:
                self.out.write(line + "\n")
            self.out.flush()

    def line(self, now: float) -> str:
        fraction = min(self.done / self.total, 1.0)
        elapsed = max(now - self.started, 1e-6)
        rate = (self.done - self.already) / elapsed
        if self.done >= self.total:
            eta = f"in {_clock(elapsed)}"
        elif rate > 0:
            eta = f"ETA {_clock((self.total - self.done) / rate)}"
        else:
            eta = "ETA --:--"
        bar = "#" * int(fraction * BAR_WIDTH)
        return f"{self.name}: [{bar:<{BAR_WIDTH}}] {fraction:6.1%} {rate / 1e6:7.1f} MB/s {eta}"

    def finish(self) -> None:
        """End the bar's line (on a terminal the cursor is still on it)."""
        if self.tty:
            self.out.write("\n")
            self.out.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


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
    """Upload ``path`` (or finish the upload ``resume``) and complete it; returns the complete answer.

    Raises:
        ClientError: the API refused a request, or ``path`` is not the file of ``resume``.
        UploadInterrupted: Ctrl-C; the chunks that arrived are kept for a ``--resume``.
    """
    upload_id = resume
    try:
        if resume:
            upload = api.call("GET", f"/v1/uploads/{resume}")
            check_same_file(path, upload)
            size, chunk_size, missing = upload["size"], upload["chunk_size"], upload["missing"]
        else:
            size = path.stat().st_size
            spec: dict[str, Any] = {"filename": path.name, "size": size, "sha256": sha256_of(path)}
            if chunk_size:
                spec["chunk_size"] = chunk_size
            if webhook_url:
                spec["webhook_url"] = webhook_url
            created = api.call("POST", "/v1/uploads", json_body=spec)
            upload_id, chunk_size = created["upload_id"], created["chunk_size"]
            missing = list(range(created["chunk_count"]))
            out.write(f"{path.name}: upload {upload_id} ({created['chunk_count']} chunks; "
                      f"resume with --resume {upload_id})\n")  # fmt: skip
        assert chunk_size is not None
        already = size - sum(min(chunk_size, size - i * chunk_size) for i in missing)
        progress = Progress(path.name, size, out, already=already)
        _send_chunks(api, path, str(upload_id), chunk_size, missing, progress, parallel)
        progress.finish()
        return dict(api.call("POST", f"/v1/uploads/{upload_id}/complete"))
    except KeyboardInterrupt:
        raise UploadInterrupted(upload_id) from None


def check_same_file(path: Path, upload: dict[str, Any]) -> None:
    """Refuse to resume ``upload`` with a different file (its job would fail ``checksum_mismatch``).

    Raises:
        ClientError: the sizes differ, or the digest the upload was opened with is not the file's.
    """
    size = path.stat().st_size
    if size != upload["size"]:
        raise ClientError(f"{path} has {size} bytes but upload {upload['upload_id']} is for "
                          f"{upload['size']} bytes ({upload['filename']}): not the same file")  # fmt: skip
    if upload.get("sha256") and sha256_of(path) != upload["sha256"]:
        raise ClientError(f"{path} is not the file upload {upload['upload_id']} was opened for "
                          f"({upload['filename']}): its SHA-256 differs")  # fmt: skip


def _send_chunks(api: Api, path: Path, upload_id: str, chunk_size: int, missing: list[int], progress: Progress,
                 parallel: int) -> None:  # fmt: skip
    """PUT the ``missing`` chunks, ``parallel`` at a time; on Ctrl-C, stop at once (queued ones are dropped)."""

    def send(index: int) -> None:
        with open(path, "rb") as f:
            f.seek(index * chunk_size)
            data = f.read(chunk_size)
        digest = "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"
        api.call("PUT", f"/v1/uploads/{upload_id}/chunks/{index}", body=data,
                 headers={"Content-Digest": digest, "Content-Type": "application/octet-stream"})  # fmt: skip
        progress.add(len(data))

    pool = ThreadPoolExecutor(parallel)
    try:
        for future in [pool.submit(send, index) for index in missing]:
            future.result()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


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
