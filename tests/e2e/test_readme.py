"""The README's walk-through stays true: its webhook receiver works, its numbers add up."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import Stack
from tests.support import services
from tests.support.services import REPO

README = (REPO / "README.md").read_text()


def test_the_last_chunk_size_shown_is_right() -> None:
    size = int(re.search(r'"size\\": (\d+), \\"sha256', README).group(1))  # type: ignore[union-attr]
    chunk = int(re.search(r'"chunk_size\\": (\d+)', README).group(1))  # type: ignore[union-attr]
    shown = int(re.search(r'→ \{"index": 2, "size": (\d+)', README).group(1))  # type: ignore[union-attr]
    assert shown == size - 2 * chunk


def test_the_walk_throughs_webhook_receiver_prints_verified_events(stack: Stack, tmp_path: Path) -> None:
    script = re.search(r"cat > hook.py <<'PY'\n(.*?)\nPY\n", README, re.S).group(1)  # type: ignore[union-attr]
    port = services.free_port()
    (tmp_path / "hook.py").write_text(script.replace("9000", str(port)))
    env = {"WHSEC": stack.keys["webhook_secret"], "PATH": "/usr/bin:/bin"}
    hook = subprocess.Popen([sys.executable, "hook.py"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        services.wait_until(lambda: services.port_open("127.0.0.1", port), 30, what="hook.py")
        status, body = stack.call("POST", "/v1/jobs", files={"file": ("t.txt", b"hello\n")},
                                  data={"webhook_url": f"http://127.0.0.1:{port}/hook"})  # fmt: skip
        assert status == 202, body
        job_id = body["jobs"][0]["job_id"]
        assert hook.stdout is not None
        assert hook.stdout.readline().strip() == f"job.completed {job_id} completed"
    finally:
        hook.kill()
        hook.communicate(timeout=10)
