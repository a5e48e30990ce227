"""Stock tus clients — tuspy (PyPI) and tus-js-client (npm, run with node) — against a running
chute web and worker, through a proxy that cuts or corrupts one request on purpose; and the
browser's view of it: upload tokens and a CORS preflight from another origin.

tus-js-client lives in tests/js (``npm ci`` there; .ci/run does it). Without node or those
packages these tests skip on a laptop and fail under CI.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from tusclient.client import TusClient
from tusclient.exceptions import TusUploadFailed

from tests.e2e.conftest import Stack
from tests.e2e.test_pipeline import wait_for_job
from tests.support.faulty_proxy import FaultyProxy
from tests.support.files import sample_jpeg, sample_pdf
from tests.support.services import REPO

JS_DIR = REPO / "tests" / "js"
MiB = 1024 * 1024


def _node() -> str:
    node = shutil.which("node")
    if node and (JS_DIR / "node_modules" / "tus-js-client").is_dir():
        return node
    message = "node and tests/js/node_modules (npm ci in tests/js) are needed for tus-js-client"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def tus_js(endpoint: str, file: Path, headers: dict[str, str], **options: Any) -> dict[str, Any]:
    """Upload ``file`` with tus-js-client; its one JSON line."""
    spec = {"endpoint": endpoint, "file": str(file), "headers": headers, **options}
    done = subprocess.run([_node(), str(JS_DIR / "tus_upload.mjs"), json.dumps(spec)], cwd=JS_DIR,
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"tus-js-client printed nothing:\n{done.stdout}\n{done.stderr}"
    return dict(json.loads(lines[-1]))


@pytest.fixture
def proxy(request: pytest.FixtureRequest, stack: Stack) -> Iterator[FaultyProxy]:
    """A proxy in front of chute web: ``@pytest.mark.parametrize`` gives it cut_after/corrupt_at."""
    port = int(stack.base_url.rsplit(":", 1)[1])
    faulty = FaultyProxy(port, **getattr(request, "param", {}))
    yield faulty
    faulty.close()


def random_file(tmp_path: Path, size: int, name: str = "data.bin") -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, data


def auth(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.keys['api_key']}"}


def head(url: str, headers: dict[str, str]) -> requests.Response:
    return requests.head(url, headers={**headers, "Tus-Resumable": "1.0.0"}, timeout=30)


def assert_job_has(stack: Stack, job_id: str, data: bytes) -> None:
    job = wait_for_job(stack, job_id)
    assert job["status"] == "completed", job
    assert job["size"] == len(data) and job["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("proxy", [{"cut_after": int(2.5 * MiB)}], indirect=True)
def test_tuspy_resumes_after_a_cut_connection(stack: Stack, proxy: FaultyProxy, tmp_path: Path) -> None:
    path, data = random_file(tmp_path, 6 * MiB)
    client = TusClient(proxy.url + "/v1/tus", headers=auth(stack))
    with open(path, "rb") as stream:  # tuspy leaves a file it opened itself open
        uploader = client.uploader(file_stream=stream, metadata={"filename": "cut.bin"}, retries=3, retry_delay=0.2)
        uploader.upload()
    assert proxy.faults == 1
    # The cut PATCH's bytes were kept: the retry sent the rest, not the whole file again.
    assert proxy.upstream_bytes < len(data) + 1 * MiB, proxy.upstream_bytes
    job_id = head(uploader.url, auth(stack)).headers["Chute-Job-Id"]
    assert uploader.request.response_headers.get("chute-job-id") == job_id
    assert_job_has(stack, job_id, data)


@pytest.mark.parametrize("proxy", [{"corrupt_at": 1 * MiB}], indirect=True)
def test_tuspy_checksum_mismatch_keeps_nothing(stack: Stack, proxy: FaultyProxy, tmp_path: Path) -> None:
    path, data = random_file(tmp_path, 3 * MiB)
    client = TusClient(proxy.url + "/v1/tus", headers=auth(stack))
    with open(path, "rb") as stream:
        uploader = client.uploader(file_stream=stream, metadata={"filename": "flipped.bin"}, upload_checksum=True,
                                   retries=0)  # fmt: skip
        with pytest.raises(TusUploadFailed) as failed:
            uploader.upload()
    assert failed.value.status_code == 460 and proxy.faults == 1
    assert head(uploader.url, auth(stack)).headers["Upload-Offset"] == "0"
    # Resumed from the URL, with the same checksum, it goes through.
    with open(path, "rb") as stream:
        client.uploader(file_stream=stream, url=uploader.url, upload_checksum=True).upload()
    assert_job_has(stack, head(uploader.url, auth(stack)).headers["Chute-Job-Id"], data)


def test_tus_js_client_parallel_upload_is_concatenated(stack: Stack, tmp_path: Path) -> None:
    path, data = random_file(tmp_path, 5 * MiB + 123)
    out = tus_js(stack.base_url + "/v1/tus", path, auth(stack), parallelUploads=4,
                 metadata={"filename": "parallel.bin", "metadata": json.dumps({"from": "tus-js-client"})})  # fmt: skip
    assert out["ok"], out
    final = head(out["url"], auth(stack))
    assert final.headers["Upload-Concat"].count("/v1/tus/upl_") == 4
    assert out["jobId"] == final.headers["Chute-Job-Id"]
    assert_job_has(stack, out["jobId"], data)
    assert stack.call("GET", f"/v1/jobs/{out['jobId']}")[1]["metadata"] == {"from": "tus-js-client"}


@pytest.mark.parametrize("proxy", [{"cut_after": 3 * MiB}], indirect=True)
def test_tus_js_client_resumes_after_a_cut_connection(stack: Stack, proxy: FaultyProxy, tmp_path: Path) -> None:
    path, data = random_file(tmp_path, 8 * MiB)
    out = tus_js(proxy.url + "/v1/tus", path, auth(stack), metadata={"filename": "cut-js.bin"})
    assert out["ok"] and out["retries"] >= 1 and proxy.faults == 1, out
    assert proxy.upstream_bytes < len(data) + 1 * MiB, proxy.upstream_bytes
    assert_job_has(stack, out["jobId"], data)


def mint(stack: Stack, **scope: Any) -> str:
    status, body = stack.call("POST", "/v1/upload-tokens", json=scope)
    assert status == 201, body
    return str(body["token"])


def test_upload_token_scope_through_tus_js_client(stack: Stack, tmp_path: Path) -> None:
    token = mint(stack, max_file_size=2 * MiB, allowed_types=["image/*", "application/pdf"])
    browser = {"Authorization": f"Bearer {token}"}
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(sample_pdf())
    out = tus_js(stack.base_url + "/v1/tus", pdf, browser,
                 metadata={"filename": "doc.pdf", "filetype": "application/pdf"})  # fmt: skip
    assert out["ok"], out
    job = wait_for_job(stack, out["jobId"])
    assert job["status"] == "completed"
    # Its own job it reads; another token's job is 404, as is anything else of the tenant.
    assert requests.get(f"{stack.base_url}/v1/jobs/{out['jobId']}", headers=browser, timeout=30).status_code == 200
    other = {"Authorization": f"Bearer {mint(stack)}"}
    assert requests.get(f"{stack.base_url}/v1/jobs/{out['jobId']}", headers=other, timeout=30).status_code == 404
    assert requests.get(f"{stack.base_url}/v1/jobs", headers=browser, timeout=30).status_code == 403

    # A file over the limit is refused at creation: no upload exists, no byte is stored.
    staged_before = set(os.listdir(Path(stack.env["CHUTE_STAGING_DIR"]) / "uploads"))
    big, _ = random_file(tmp_path, 2 * MiB + 1, "big.jpg")
    refused = tus_js(stack.base_url + "/v1/tus", big, browser, metadata={"filename": "big.jpg"}, retryDelays=None)
    assert not refused["ok"] and refused["status"] == 413 and "file_too_large" in refused["body"]
    assert set(os.listdir(Path(stack.env["CHUTE_STAGING_DIR"]) / "uploads")) == staged_before

    # A forbidden type: refused by its declared type, with a clear code.
    text = tmp_path / "notes.txt"
    text.write_text("plain text")
    typed = tus_js(stack.base_url + "/v1/tus", text, browser,
                   metadata={"filename": "notes.txt", "filetype": "text/plain"}, retryDelays=None)  # fmt: skip
    assert not typed["ok"] and typed["status"] == 415 and "type_not_allowed" in typed["body"]


def test_expired_token_is_401(stack: Stack) -> None:
    token = mint(stack, expires_in=1)
    browser = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0", "Upload-Length": "10"}
    deadline_ok = requests.post(f"{stack.base_url}/v1/tus", headers=browser, timeout=30)
    assert deadline_ok.status_code in (201, 401)  # a loaded machine may take the second already
    time.sleep(1.5)
    expired = requests.post(f"{stack.base_url}/v1/tus", headers=browser, timeout=30)
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "token_expired"


def test_cors_preflight_from_another_origin_then_a_browser_upload(stack: Stack) -> None:
    origin = "https://shop.example.com"
    status, body = stack.call("PUT", "/v1/cors-origins", json={"origins": [origin]})
    assert status == 200, body
    preflight = requests.options(f"{stack.base_url}/v1/tus", timeout=30, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,tus-resumable,upload-length,upload-metadata",
    })  # fmt: skip
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert all(h in allowed for h in ("authorization", "tus-resumable", "upload-length", "upload-metadata"))
    token = mint(stack)
    created = requests.post(f"{stack.base_url}/v1/tus", timeout=30, headers={
        "Origin": origin, "Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0", "Upload-Length": "0",
    })  # fmt: skip
    assert created.status_code == 201
    assert created.headers["Access-Control-Allow-Origin"] == origin
    exposed = created.headers["Access-Control-Expose-Headers"]
    assert "Location" in exposed and "Chute-Job-Id" in exposed and created.headers["Chute-Job-Id"]
    elsewhere = requests.options(f"{stack.base_url}/v1/tus", timeout=30, headers={
        "Origin": "https://evil.example.net", "Access-Control-Request-Method": "POST"})  # fmt: skip
    assert "Access-Control-Allow-Origin" not in elsewhere.headers


def test_signed_thumbnail_url_loads_without_a_header(stack: Stack, tmp_path: Path) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(sample_jpeg())
    token = mint(stack)
    out = tus_js(stack.base_url + "/v1/tus", image, {"Authorization": f"Bearer {token}"},
                 metadata={"filename": "photo.jpg", "filetype": "image/jpeg"})  # fmt: skip
    assert out["ok"], out
    assert wait_for_job(stack, out["jobId"])["status"] == "completed"
    result = requests.get(f"{stack.base_url}/v1/jobs/{out['jobId']}/result",
                          headers={"Authorization": f"Bearer {token}"}, timeout=30).json()  # fmt: skip
    thumb = next(d for d in result["derivatives"] if d["name"] == "thumb_256")
    loaded = requests.get(thumb["url"], timeout=30)  # no header, as an <img src> (follows S3's redirect)
    assert loaded.status_code == 200 and loaded.content[:2] == b"\xff\xd8"
