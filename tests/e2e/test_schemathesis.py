"""schemathesis against a running ``chute web`` on the real parts: every operation, every check,
and the stateful phase that follows the document's links (create upload → send a chunk →
complete → read the job, its result and deliveries; batch upload → read the jobs).

The stack is its own (not the session's): its limits keep every schema-valid upload within
chute's 100,000-chunk layout limit (64 MiB / 1 KiB chunks), which no JSON Schema can state.
Bounded by ``--max-examples`` per operation and schemathesis' own ``--max-time``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import BUCKET, _require_services
from tests.support import services
from tests.support.webhook_receiver import WebhookReceiver

HERE = Path(__file__).parent
#: Cases per operation and phase; the whole run stays within a few minutes on a loaded machine.
MAX_EXAMPLES = int(os.environ.get("CHUTE_SCHEMATHESIS_EXAMPLES", "25"))
#: schemathesis stops generating after this many seconds (the run then finishes what is in flight).
MAX_TIME = int(os.environ.get("CHUTE_SCHEMATHESIS_SECONDS", "100"))

#: Keys of the fuzzer's tenant besides its own, for revokeApiKey to revoke (schemathesis_hooks.py).
THROWAWAY_KEYS = 3

#: The ops API's token in this stack; tests/e2e/schemathesis.toml sends it to the "ops" operations.
ADMIN_TOKEN = "contract-admin-token"

pytestmark = [pytest.mark.e2e, pytest.mark.rabbitmq, pytest.mark.postgres]


@pytest.fixture(scope="module")
def chute(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str, Path]]:
    """(base URL, API key, webhook receiver URL, log dir) of a running chute web and worker."""
    _require_services()
    log_dir = tmp_path_factory.mktemp("schemathesis")
    with services.postgres_database() as database_url, services.rabbitmq_prefix() as prefix:
        moto = services.MotoServer(log_dir).start()
        env = services.chute_env(
            os.environ,
            database_url=database_url,
            broker_url=services.RABBITMQ_URL,
            storage_url=services.s3_url("127.0.0.1", moto.port, BUCKET),
            staging_dir=str(log_dir / "staging"),
            queue_prefix=prefix,
            webhook_allowed_hosts="loopback",
            webhook_timeout_seconds="3",
            webhook_schedule="0,1",
            max_upload_size=str(64 * 1024 * 1024),
            min_chunk_size="1024",
            max_chunk_size=str(8 * 1024 * 1024),
            max_request_size=str(16 * 1024 * 1024),
            sweep_interval_seconds="0",
            admin_token=ADMIN_TOKEN,  # the ops API is on (schemathesis.toml sends it to the ops operations)
            secret_key="contract-test-secret-key-0123456789abcdef",  # upload tokens can be minted
            # A fuzzer is one very busy client: the limits are tested elsewhere, the contract here.
            **{f"rate_limit_{name}": "100000/second" for name in
               ("tenant", "read", "write", "upload", "replay", "anonymous", "public")},
        )
        web = worker = None
        try:
            services.run_migrations(env)
            keys = services.issue_api_key(env, "fuzz")
            for _ in range(THROWAWAY_KEYS):
                services.issue_api_key(env, "fuzz")
            with WebhookReceiver(secret=keys["webhook_secret"]) as receiver:
                web, base_url = services.start_web(env, log_dir, workers=1, threads=8)
                worker = services.start_worker(env, log_dir, processes=1, threads=4)
                yield base_url, keys["api_key"], receiver.url("/hook"), log_dir
        finally:
            for process in (web, worker):
                if process is not None:
                    process.stop()
            moto.stop()


def _key_ids(base_url: str, api_key: str) -> tuple[str, list[str]]:
    """The id of the fuzzer's own key (its prefix starts the key) and those of the throwaway keys."""
    import requests

    listed = requests.get(f"{base_url}/v1/keys", headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
    listed.raise_for_status()
    keys = listed.json()["keys"]
    own = [key["key_id"] for key in keys if api_key.startswith(key["prefix"])]
    assert len(own) == 1, keys
    return own[0], [key["key_id"] for key in keys if key["key_id"] != own[0]]


def test_every_operation_holds_to_the_document(chute: tuple[str, str, str, Path]) -> None:
    base_url, api_key, webhook_url, log_dir = chute
    report = log_dir / "junit.xml"
    argv = [
        str(Path(sys.executable).parent / "schemathesis"), "--no-color",
        "--config-file", str(HERE / "schemathesis.toml"),
        "run", f"{base_url}/openapi.json",
        "--header", f"Authorization: Bearer {api_key}",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(MAX_EXAMPLES),
        "--max-time", str(MAX_TIME),
        "--workers", "1",  # CPython 3.11's ast.parse is not thread-safe and hypothesis calls it
        "--seed", "8",
        "--request-timeout", "30",
        "--max-redirects", "0",
        "--suppress-health-check", "all",
        "--report", "junit", "--report-junit-path", str(report),
        *os.environ.get("CHUTE_SCHEMATHESIS_ARGS", "").split(),
    ]  # fmt: skip
    own, throwaway = _key_ids(base_url, api_key)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks",
           "CHUTE_CONTRACT_WEBHOOK_URL": webhook_url, "PYTHONPATH": str(services.REPO),
           "CHUTE_CONTRACT_OWN_KEY_ID": own, "CHUTE_CONTRACT_THROWAWAY_KEY_IDS": ",".join(throwaway)}  # fmt: skip
    run = subprocess.run(argv, env=env, cwd=services.REPO, capture_output=True, text=True, timeout=MAX_TIME + 240)
    output = run.stdout + run.stderr
    (log_dir / "schemathesis.txt").write_text(output)
    assert run.returncode == 0, output[-20000:]
    assert "No issues found" in output or " passed" in output, output[-5000:]


def test_bad_input_is_4xx_on_postgresql_and_gunicorn(chute: tuple[str, str, str, Path]) -> None:
    """The classes of bad input that were 500s on PostgreSQL (NUL in text, a forged cursor) and a
    huge JSON body, which gunicorn must not read before chute refuses it."""
    import socket
    from urllib.parse import urlsplit

    import requests

    base_url, api_key, _, _ = chute
    auth = {"Authorization": f"Bearer {api_key}"}
    cases = [
        ("POST", "/v1/uploads", {"filename": "a\u0000b.txt", "size": 1}, 422),
        ("POST", "/v1/uploads", {"filename": "a.txt", "size": 1, "metadata": {"k": "v\u0000"}}, 422),
        ("POST", "/v1/uploads", {"filename": "a.txt", "size": 1, "content_type": "text/\u0000"}, 422),
        ("GET", "/v1/jobs/job_%00", None, 404),
        ("GET", "/v1/jobs?cursor=1-%00", None, 400),
        ("GET", "/v1/jobs?status=%00", None, 400),
    ]
    for method, path, body, status in cases:
        response = requests.request(method, base_url + path, json=body, headers=auth, timeout=30)
        assert response.status_code == status, (path, body, response.text)
        assert set(response.json()["error"]) == {"code", "message", "details"}

    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        head = (
            f"POST /v1/uploads HTTP/1.1\r\nHost: {address.netloc}\r\nAuthorization: Bearer {api_key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 524288000\r\n\r\n"
        )
        sock.sendall(head.encode())  # and not one byte of the 500 MB it announces
        received = b""
        while chunk := sock.recv(65536):  # chute answers and closes: the body is never read
            received += chunk
        answer = received.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:300]
    assert '"error"' in answer and "too_large" in answer  # chute's front or its JSON limit, never read
