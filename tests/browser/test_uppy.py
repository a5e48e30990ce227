"""Uppy's Dashboard with @uppy/tus, in real headless Chromium, uploading to chute's tus endpoint
from a page on another origin (CORS) with an upload token minted by the tenant's backend.

Uppy comes from npm (tests/js: ``npm ci`` in .ci/run); its ``dist/uppy.min.js`` bundle is served
to a test page by a static server on loopback, as a site embedding Uppy would.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.support import services
from tests.support.browser import drop_files, wait_for
from tests.support.files import sample_jpeg

#: Uppy's browser bundle, installed by ``npm ci`` in tests/js.
UPPY_DIST = services.REPO / "tests" / "js" / "node_modules" / "uppy" / "dist"
#: A site's page with Uppy's Dashboard and the Tus plugin, pointed at chute.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Uppy → chute</title>
<link rel="stylesheet" href="uppy.min.css"><link rel="icon" href="data:,"></head>
<body><div id="uppy"></div>
<script src="uppy.min.js"></script>
<script>
  const config = %(config)s;
  const { Uppy, Dashboard, Tus } = window.Uppy;
  window.events = [];
  const uppy = new Uppy({ autoProceed: true })
    .use(Dashboard, { inline: true, target: "#uppy", proudlyDisplayPoweredByUppy: false })
    .use(Tus, { endpoint: config.endpoint, chunkSize: config.chunkSize,
                headers: { Authorization: `Bearer ${config.token}` } });
  uppy.on("upload-progress", (file, p) => window.events.push(["progress", p.bytesUploaded, p.bytesTotal]));
  uppy.on("upload-success", (file, response) => window.events.push(["success", response.uploadURL]));
  uppy.on("upload-error", (file, error) => window.events.push(["error", String(error)]));
</script></body></html>
"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """A static site on its own origin serving Uppy's bundle and the page (written per test)."""
    if not (UPPY_DIST / "uppy.min.js").exists():
        message = f"Uppy is not installed at {UPPY_DIST} (cd tests/js && npm ci)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    for name in ("uppy.min.js", "uppy.min.css"):
        (tmp_path / name).write_bytes((UPPY_DIST / name).read_bytes())
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_uppy_dashboard_uploads_through_tus_with_an_upload_token(page: Any, stack: Stack, site: str,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    status, body = stack.call("PUT", "/v1/cors-origins", json={"origins": [site]})
    assert status == 200, body
    status, minted = stack.call("POST", "/v1/upload-tokens", json={"max_files": 5, "allowed_types": ["image/*"]})
    assert status == 201, minted
    config = {"endpoint": f"{stack.base_url}/v1/tus", "token": minted["token"], "chunkSize": 32 * 1024}
    (tmp_path / "index.html").write_text(PAGE % {"config": json.dumps(config)})

    page.goto(site + "/index.html")
    page.locator(".uppy-Dashboard").wait_for()
    photo = sample_jpeg()
    drop_files(page, ".uppy-Dashboard-innerWrap", [("photo.jpg", "image/jpeg", photo)])
    wait_for(page, "window.events.some(e => e[0] === 'success' || e[0] === 'error')", 120, what="Uppy's upload")
    events = page.evaluate("window.events")
    assert not [e for e in events if e[0] == "error"], events
    progress = [e for e in events if e[0] == "progress"]
    assert progress[-1][1] == progress[-1][2] == len(photo) and len(progress) > 1  # several chunks, up to 100 %
    upload_url = next(e[1] for e in events if e[0] == "success")
    upload_id = upload_url.rstrip("/").rsplit("/", 1)[1]

    status, upload = stack.call("GET", f"/v1/uploads/{upload_id}")
    assert status == 200 and upload["status"] == "complete", upload
    job_id = upload["job_id"]
    services.wait_until(lambda: stack.call("GET", f"/v1/jobs/{job_id}")[1]["status"] == "completed", 120,
                        interval=0.2, what="the job of Uppy's upload")  # fmt: skip
    status, result = stack.call("GET", f"/v1/jobs/{job_id}/result")
    assert result["image"]["width"] == 640 and any(d["name"] == "thumb_256" for d in result["derivatives"])
