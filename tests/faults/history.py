"""A Jepsen-style history of what clients were promised, and the checker that holds chute to it.

A scenario records every job that got a 202 (with the sha256 of the bytes the client sent,
and the endings it may accept), injects its faults, heals them, and then hands the history
to :func:`check`, which waits for the system to settle and reports every broken promise:

- each 202'd job ends (``completed``, ``failed`` or ``cancelled``) as the scenario expects;
- each completed job has exactly one stored original, whose bytes hash to the job's sha256
  (the one the client sent); a cancelled job has no object left, a failed one no derivative
  and at most its verified original;
- no multipart upload is left in the bucket;
- each job got at least one verified webhook, every delivery of one event under one id,
  and the event that names its ending;
- no staged bytes are left (the upload's chunks, the job's extract scratch space).

It reads the system only from outside, the way an auditor would: the API, the bucket, the
webhook receiver and the staging directory.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.webhook_receiver import WebhookReceiver

#: The endings of a job.
TERMINAL = ("completed", "failed", "cancelled")

ApiCall = Callable[..., tuple[int, Any]]


@dataclass
class Promise:
    """One job a client was told about with a 202."""

    job_id: str
    upload_id: str
    sha256: str
    size: int
    #: Endings the scenario accepts for it.
    expect: tuple[str, ...] = ("completed",)
    #: The error code a failed ending must carry (None: any).
    error_code: str | None = None


@dataclass
class History:
    """Every promise made during a scenario (thread-safe: clients record from many threads)."""

    promises: dict[str, Promise] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, job_id: str, upload_id: str, data: bytes, *, expect: Iterable[str] = ("completed",),
               error_code: str | None = None) -> Promise:  # fmt: skip
        promise = Promise(job_id, upload_id, hashlib.sha256(data).hexdigest(), len(data), tuple(expect), error_code)
        with self.lock:
            self.promises[job_id] = promise
        return promise

    def expect(self, job_id: str, *endings: str, error_code: str | None = None) -> None:
        """Change what one job may end as (a scenario cancelled it, or fed it a poison file)."""
        with self.lock:
            self.promises[job_id].expect = endings
            self.promises[job_id].error_code = error_code

    def __len__(self) -> int:
        return len(self.promises)


class Bucket:
    """The bucket as seen directly on the S3 server (not through the proxy a scenario cuts)."""

    def __init__(self, endpoint: str, bucket: str):
        import boto3

        self.bucket = bucket
        self.client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                                   aws_secret_access_key="testing-secret", region_name="us-east-1")  # fmt: skip

    def keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def sha256(self, key: str) -> str:
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return hashlib.sha256(body).hexdigest()

    def multipart_uploads(self) -> list[str]:
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return [f"{u['Key']} ({u['UploadId']})" for u in uploads]


@dataclass
class Checker:
    """What :func:`check` reads the system through."""

    api: ApiCall
    bucket: Bucket
    receiver: WebhookReceiver
    staging_dir: Path
    tenant_id: str


def wait_terminal(api: ApiCall, job_ids: Iterable[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Poll the jobs until every one has ended or ``timeout`` passes; returns the last views."""
    views: dict[str, dict[str, Any]] = {}
    pending = list(job_ids)
    deadline = time.monotonic() + timeout
    while pending:
        for job_id in list(pending):
            try:
                status, view = api("GET", f"/v1/jobs/{job_id}")
            except OSError:
                continue
            if status == 200:
                views[job_id] = view
                if view["status"] in TERMINAL:
                    pending.remove(job_id)
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    return views


def check(history: History, system: Checker, *, timeout: float = 120, settle: float = 60) -> list[str]:
    """Every promise of ``history`` that the system broke (empty: it kept them all).

    Waits up to ``timeout`` seconds for the jobs to end, then up to ``settle`` seconds for the
    leftovers (cleanup tasks, retried webhooks, the sweeper) before reporting.
    """
    views = wait_terminal(system.api, history.promises, timeout)
    deadline = time.monotonic() + settle
    while True:
        problems = _problems(history, system, views)
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.5)


def _problems(history: History, system: Checker, views: dict[str, dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    events = _webhooks(system.receiver)
    for job_id, promise in history.promises.items():
        view = views.get(job_id)
        if view is None or view["status"] not in TERMINAL:
            problems.append(f"{job_id}: never ended ({view and view['status']}, stage {view and view['stage']})")
            continue
        status = view["status"]
        if status not in promise.expect:
            problems.append(f"{job_id}: {status} ({view['error']}), expected {' or '.join(promise.expect)}")
        if status == "failed" and promise.error_code and (view["error"] or {}).get("code") != promise.error_code:
            problems.append(f"{job_id}: failed with {view['error']}, expected {promise.error_code}")
        problems += _objects(system.bucket, f"{system.tenant_id}/{job_id}/", status, promise, view)
        problems += _events(job_id, status, events.get(job_id, []))
        for leftover in (system.staging_dir / "uploads" / promise.upload_id, system.staging_dir / "work" / job_id):
            if leftover.exists():
                problems.append(f"{job_id}: staged bytes left in {leftover}")
    problems += [f"multipart upload left: {u}" for u in system.bucket.multipart_uploads()]
    return problems


def _objects(bucket: Bucket, prefix: str, status: str, promise: Promise, view: dict[str, Any]) -> list[str]:
    keys = bucket.keys(prefix)
    originals = [k for k in keys if not k.startswith(prefix + "derivatives/")]
    derivatives = [k for k in keys if k not in originals]
    job_id = promise.job_id
    if status == "cancelled" and keys:
        return [f"{job_id}: cancelled, but objects are left: {keys}"]
    if status == "failed" and derivatives:
        return [f"{job_id}: failed, but derivatives are left: {derivatives}"]
    if status == "completed" and len(originals) != 1:
        return [f"{job_id}: completed with {len(originals)} stored originals: {originals}"]
    problems = []
    for key in originals:
        actual = bucket.sha256(key)
        if actual != promise.sha256:
            problems.append(f"{job_id}: stored bytes hash to {actual}, the client sent {promise.sha256}")
    if status == "completed" and view["sha256"] != promise.sha256:
        problems.append(f"{job_id}: the job says sha256 {view['sha256']}, the client sent {promise.sha256}")
    return problems


def _webhooks(receiver: WebhookReceiver) -> dict[str, list[tuple[str, str, bool]]]:
    """(event type, webhook-id, verified) of every delivery the receiver got, per job."""
    out: dict[str, list[tuple[str, str, bool]]] = defaultdict(list)
    for request in receiver.requests:
        try:
            event = json.loads(request.body)
            out[event["data"]["job_id"]].append((event["type"], request.headers["webhook-id"], bool(request.verified)))
        except (ValueError, KeyError):
            continue
    return out


def _events(job_id: str, status: str, deliveries: list[tuple[str, str, bool]]) -> list[str]:
    if not deliveries:
        return [f"{job_id}: no webhook received"]
    problems = []
    if not all(verified for _, _, verified in deliveries):
        problems.append(f"{job_id}: a webhook did not verify")
    ids: dict[str, set[str]] = defaultdict(set)
    for kind, message_id, _ in deliveries:
        ids[kind].add(message_id)
    problems += [f"{job_id}: {kind} delivered under {len(found)} ids" for kind, found in ids.items() if len(found) > 1]
    if f"job.{status}" not in ids:
        problems.append(f"{job_id}: {status}, but no job.{status} webhook (got {sorted(ids)})")
    return problems
