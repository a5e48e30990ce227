"""Starting the Celery peer on loopback beside chute: its Redis keyspace, bucket, web and workers.

The peer shares with chute what the comparison needs shared (the S3 server, the machine) and
nothing else: its own Redis database and key prefix (removed afterwards, never a FLUSHDB), its
own bucket and staging directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.harness import ChuteStack, gunicorn_argv, http_ready, start_service

#: Where the shared Redis runs (a service of the machine, like PostgreSQL and RabbitMQ).
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
#: The Redis database the peer uses; other users of the server keep to database 0.
REDIS_DB = 13
#: Prefix of the peer's Redis keys; a run's own keys are ``<prefix><pid>_<hex>:…``.
KEY_PREFIX = "chute_bench_peer_"
#: The peer's bucket on the shared S3 server.
BUCKET = "peer"


def redis_available() -> bool:
    from tests.support.services import port_open

    return port_open(REDIS_HOST, REDIS_PORT)


def _drop_keys(client: Any, pattern: str) -> int:
    dropped = 0
    for keys in _batches(client.scan_iter(match=pattern, count=1000), 500):
        dropped += client.delete(*keys)
    return dropped


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@contextlib.contextmanager
def redis_keyspace() -> Iterator[str]:
    """A key prefix of this run's own in the peer's database; its keys are deleted afterwards.

    Keys left by runs whose process is gone (a crash, a kill) are deleted first.
    """
    import redis

    from tests.support.services import _alive

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    try:
        stale = {key.decode().split(":", 1)[0] for key in client.scan_iter(match=KEY_PREFIX + "*", count=1000)}
        for prefix in stale:
            pid = prefix[len(KEY_PREFIX) :].split("_", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                _drop_keys(client, prefix + ":*")
        prefix = f"{KEY_PREFIX}{os.getpid()}_{secrets.token_hex(3)}:"
        yield prefix
        _drop_keys(client, prefix + "*")
    finally:
        client.close()


@dataclass
class Peer:
    """The running peer: its web's URL and process, and what its workers need."""

    env: dict[str, str]
    base_url: str
    web: Any
    root: Path
    processes: int
    threads: int

    def start_worker(self, stack: contextlib.ExitStack, tag: str) -> Any:
        """``processes`` Celery workers of ``threads`` threads each (chute's worker shape), as one
        process group, returned once every one says it is ready."""
        name = f"peer-worker-{tag}"
        log_path = self.root / f"{name}.log"
        commands = [
            shlex.join(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "bench.peers.celery_app",
                    "worker",
                    "--pool",
                    "threads",
                    "--concurrency",
                    str(self.threads),
                    "--loglevel",
                    "info",
                    "--hostname",
                    f"peer{n}-{tag}-{secrets.token_hex(2)}@%h",
                ]
            )
            for n in range(self.processes)
        ]
        argv = ["sh", "-c", " & ".join(commands) + " & wait"]

        def ready(_: Any) -> bool:
            try:
                return log_path.read_bytes().count(b" ready.") >= self.processes
            except OSError:
                return False

        return start_service(stack, name, argv, self.env, self.root, ready)


def start_peer(
    stack: contextlib.ExitStack, chute: ChuteStack, *, web_workers: int, web_threads: int, processes: int, threads: int
) -> Peer:
    """The peer's keyspace, bucket (on chute's S3 server) and web app, stopped with ``stack``."""
    from minio import Minio

    from tests.support.services import free_port

    prefix = stack.enter_context(redis_keyspace())
    s3 = urlsplit(chute.storage_url)
    endpoint = f"{s3.hostname}:{s3.port}"
    access_key, secret_key = s3.username or "", s3.password or ""
    client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=False, region="us-east-1")
    if not client.bucket_exists(BUCKET):
        client.make_bucket(BUCKET)
    staging = chute.root / "peer-staging"
    staging.mkdir(parents=True, exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CHUTE_", "PEER_"))},
        "PEER_REDIS_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}",
        "PEER_KEY_PREFIX": prefix,
        "PEER_S3_ENDPOINT": endpoint,
        "PEER_S3_ACCESS_KEY": access_key,
        "PEER_S3_SECRET_KEY": secret_key,
        "PEER_BUCKET": BUCKET,
        "PEER_STAGING_DIR": str(staging),
        "PEER_WEBHOOK_SECRET": secrets.token_hex(24),
        "PYTHONWARNINGS": "ignore",
        "PYTHONUNBUFFERED": "1",
    }
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    web = start_service(
        stack,
        "peer-web",
        gunicorn_argv("bench.peers.flask_app:app", f"127.0.0.1:{port}", workers=web_workers, threads=web_threads),
        env,
        chute.root,
        http_ready(base_url + "/healthz"),
    )
    return Peer(env, base_url, web, chute.root, processes, threads)
