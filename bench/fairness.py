"""fairness: one tenant's job latency alone, and beside a tenant that abuses the service.

One ``chute web`` (behind its front) and one ``chute worker`` (the stage group and the webhook
group, as it runs by default) on PostgreSQL, RabbitMQ, Redis (the shared rate limiter) and a
directory object store, all on loopback.

- the quiet tenant sends small text files (``POST /v1/jobs``) at a fixed moderate rate (open
  loop); a job's latency runs from the start of that request to its webhook's arrival at a
  receiver that answers at once.
- alone: only the quiet tenant.
- beside abuse: the same, while the abusive tenant floods requests with its key (``--flood``
  requests/s, open loop, the rate of the attack in the issue: 1,000 in 4 s), sends jobs whose
  webhooks point at a consumer that never answers (held up to its bounded hang), and replays
  those deliveries over and over.

The target: the quiet tenant's p50 and p99 beside the abuse within 1.2× of alone. The abuser's
429s, the breaker state of its endpoint and the attempts that reached its consumer are reported.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.harness import (
    Api,
    Report,
    Row,
    chute_stack,
    log,
    percentile,
    services_available,
    start_web,
    start_worker,
    workdir,
)
from bench.pipeline import open_loop

#: Target: the quiet tenant's latency beside the abuse at most this multiple of alone.
TARGET = 1.2
#: The quiet tenant's files.
FILE = b"a quiet tenant's small text file\n" * 300
#: The limits of this run (a small deployment's: two cores).
SETTINGS = {
    "rate_limit_tenant": "100/second",
    "rate_limit_read": "20/second",
    "rate_limit_write": "5/second",  # the quiet tenant's 1/s with room for network jitter
    "rate_limit_upload": "50/second",
    "rate_limit_replay": "1/second",
    "quota_jobs_in_flight": "20",
    "webhook_timeout_seconds": "10",
    "webhook_schedule": "0,1,2,5,10,30",
    "webhook_breaker_threshold": "3",
    "webhook_breaker_cooldown_seconds": "5",
    "sweep_interval_seconds": "0",
}


class Abuser:
    """Floods requests, sends jobs whose webhooks hang, and replays their deliveries."""

    def __init__(self, api: Api, hang_url: str, flood: float):
        self.api, self.hang_url, self.flood = api, hang_url, flood
        self.stop = threading.Event()
        self.codes: dict[int, int] = {}
        self.jobs: list[str] = []
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        import urllib3

        try:
            response = self.api.http.request(method, self.api.base_url + path, headers=self.api.headers, **kwargs)
        except urllib3.exceptions.HTTPError:
            status, data = 0, b""
        else:
            status, data = response.status, response.data
        with self.lock:
            self.codes[status] = self.codes.get(status, 0) + 1
        return status, data

    def _flood(self) -> None:
        begin, n = time.monotonic(), 0
        pool = ThreadPoolExecutor(16)
        try:
            while not self.stop.is_set():
                delay = begin + n / self.flood - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self._request, "GET", "/v1/jobs?limit=5")
                n += 1
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _jobs_and_replays(self) -> None:
        n = 0
        while not self.stop.is_set():
            fields = {"file": (f"abuse-{n}.txt", b"abuse" * 100, "text/plain"), "webhook_url": self.hang_url}
            status, data = self._request("POST", "/v1/jobs", fields=fields)
            if status == 202:
                self.jobs.append(json.loads(data)["jobs"][0]["job_id"])
            for job_id in self.jobs[-5:]:
                self._request("POST", f"/v1/jobs/{job_id}/deliveries")
            n += 1
            self.stop.wait(0.1)

    def start(self) -> None:
        for target in (self._flood, self._jobs_and_replays):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


def quiet_run(api: Api, receiver: Any, pool: ThreadPoolExecutor, count: int, rate: float, tag: str) -> list[float]:
    """``count`` jobs at ``rate``/s; their latencies (ms), request start → webhook arrival."""

    def send(n: int) -> tuple[str, float]:
        started = time.monotonic()
        fields = {"file": (f"{tag}-{n}.txt", FILE, "text/plain"), "webhook_url": receiver.url("/hook")}
        response = api.http.request("POST", api.base_url + "/v1/jobs", headers=api.headers, fields=fields)
        if response.status != 202:
            raise RuntimeError(f"quiet tenant: POST /v1/jobs answered {response.status} {response.data[:200]!r}")
        return json.loads(response.data)["jobs"][0]["job_id"], started

    starts = open_loop(send, list(range(count)), rate, pool)
    deadline = time.monotonic() + 120 + count
    while True:
        arrivals = {json.loads(r.body)["data"]["job_id"]: r.received_at for r in receiver.requests}
        if set(starts) <= arrivals.keys():
            return [(arrivals[j] - s) * 1000 for j, s in starts.items()]
        if time.monotonic() > deadline:
            raise TimeoutError(f"quiet tenant: {len(set(starts) - arrivals.keys())} webhooks missing")
        time.sleep(0.05)


def run(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    from tests.support.services import issue_api_key
    from tests.support.webhook_receiver import Reply, WebhookReceiver

    with workdir("fairness") as root, contextlib.ExitStack() as stack:
        prefix = f"chute_bench_{int(time.time())}"
        chute = chute_stack(stack, root, s3=False, **SETTINGS, **{k: v for k, v in {
            "redis_url": args.redis_url, "rate_limit_prefix": prefix}.items()})  # fmt: skip
        receiver = stack.enter_context(WebhookReceiver())
        hanging = stack.enter_context(WebhookReceiver(default=Reply.hang(args.hang)))
        _, base_url = start_web(stack, chute, workers=2, threads=8)
        start_worker(stack, chute, processes=args.processes, threads=args.threads)
        quiet = Api(base_url, issue_api_key(chute.env, "quiet")["api_key"], maxsize=8)
        abuse_key = issue_api_key(chute.env, "abuser")["api_key"]
        abuser = Abuser(Api(base_url, abuse_key, maxsize=32), hanging.url("/hook"), args.flood)
        pool = stack.enter_context(ThreadPoolExecutor(8))
        log("fairness: warming up")
        quiet_run(quiet, receiver, pool, 4, args.rate, "warm")
        # The measured phase starts with the limiter's sliding window clear of the warm-up.
        time.sleep(2.0)
        log(f"fairness: the quiet tenant alone, {args.jobs} jobs at {args.rate}/s")
        alone = quiet_run(quiet, receiver, pool, args.jobs, args.rate, "alone")
        log(f"fairness: beside the abuser ({args.flood:g} requests/s, hanging webhooks, replays)")
        abuser.start()
        time.sleep(args.settle)
        try:
            beside = quiet_run(quiet, receiver, pool, args.jobs, args.rate, "beside")
        finally:
            abuser.finish()
        time.sleep(2)  # past the abuser's own Retry-After
        status = Api(base_url, abuse_key).call("GET", "/v1/webhook-endpoints", expect=(200, 429))
        endpoints = (status or {}).get("endpoints", [])
        return {
            "alone": alone,
            "beside": beside,
            "codes": abuser.codes,
            "abuser_jobs": len(abuser.jobs),
            "hanging_attempts": len(hanging.requests),
            "breaker": endpoints[0]["state"] if endpoints else "none",
        }


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench fairness", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: smoke mode for CI")
    parser.add_argument("--json-only", action="store_true", help="print the JSON line only")
    parser.add_argument("--jobs", type=int, help="the quiet tenant's jobs per phase (default 120; quick 12)")
    parser.add_argument("--rate", type=float, default=1.0, help="the quiet tenant's jobs/s (default 1)")
    parser.add_argument("--flood", type=float, default=250.0, help="the abuser's requests/s (default 250)")
    parser.add_argument("--hang", type=float, default=25.0, help="seconds the abuser's consumer hangs (default 25)")
    parser.add_argument("--settle", type=float, help="seconds of abuse before measuring (default 10; quick 3)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    args.jobs = args.jobs or (6 if args.quick else 90)
    if args.quick:
        args.hang = min(args.hang, 5.0)
    args.settle = args.settle if args.settle is not None else (2.0 if args.quick else 10.0)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(list(argv or []))
    if not services_available():
        print("fairness: RabbitMQ (127.0.0.1:5672) and PostgreSQL (127.0.0.1:5432) are needed", file=sys.stderr)
        return 2
    report = Report("fairness", args.quick)
    report.settings = {"jobs": args.jobs, "rate_per_s": args.rate, "flood_per_s": args.flood,
                       "worker": f"{args.processes}x{args.threads} + webhooks", **SETTINGS}  # fmt: skip
    out = run(args, report)
    for p in (50, 99):
        alone, beside = percentile(out["alone"], p), percentile(out["beside"], p)
        report.add(Row(f"quiet latency p{p}", beside, alone, "ms", limit=TARGET * alone),
                   f"latency_p{p}_beside_ms", f"latency_p{p}_alone_ms")  # fmt: skip
    codes = out["codes"]
    report.figures["abuser_requests"] = sum(codes.values())
    report.figures["abuser_429_fraction"] = round(codes.get(429, 0) / max(1, sum(codes.values())), 3) or None
    report.notes.append(f"ratio = beside / alone; target: within {TARGET}x (the 'target' column is {TARGET}x alone)")
    report.notes.append(
        f"abuser: answers {dict(sorted(codes.items()))}, {out['abuser_jobs']} jobs accepted, "
        f"{out['hanging_attempts']} attempts reached its hanging consumer, its endpoint's breaker: {out['breaker']}"
    )
    report.emit(args.json_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
