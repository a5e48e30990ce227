"""The load tool of the api benchmark: ``wrk`` when installed, else a small Python driver.

Both run in a second process, closed loop (each connection sends its next request when the
answer arrives), and give the same figures: requests/s, p50/p99 latency in ms, error count.
``wrk`` (Debian: ``apt-get install -y wrk``) is preferred: the Python driver needs a good part
of a core itself, which it takes from the servers on a 2-core machine.

As a program (the fallback driver): ``python -m bench.loadgen SPEC.json`` prints one JSON line.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Load:
    """What to send: ``method`` to each of ``paths`` in turn, with ``headers`` and ``body``."""

    base_url: str
    method: str
    paths: list[str]
    headers: dict[str, str]
    body: bytes = b""
    connections: int = 16
    threads: int = 2
    seconds: float = 10.0


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run(load: Load, workdir: Path) -> dict[str, Any]:
    """Drive ``load`` from a second process; {"requests_per_s", "p50_ms", "p99_ms", "errors", "tool"}."""
    return _run_wrk(load, workdir) if wrk_available() else _run_python(load, workdir)


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string of ASCII is a valid Lua string literal


def _run_wrk(load: Load, workdir: Path) -> dict[str, Any]:
    body_path = workdir / "wrk-body.bin"
    body_path.write_bytes(load.body)
    script = workdir / "wrk-script.lua"
    headers = "\n".join(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in load.headers.items())
    paths = ", ".join(_lua_string(p) for p in load.paths)
    script.write_text(f"""
wrk.method = {_lua_string(load.method)}
{headers}
local f = io.open({_lua_string(str(body_path))}, "rb")
local body = f:read("*a")
f:close()
if #body > 0 then wrk.body = body end
local paths = {{{paths}}}
local counter = 0
init = function(args)
  counter = math.random(#paths)
end
request = function()
  counter = counter + 1
  return wrk.format(nil, paths[(counter % #paths) + 1])
end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format('WRKJSON {{"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, "p99_us": %d}}\\n',
    summary.requests, summary.duration, errors, latency:percentile(50), latency:percentile(99)))
end
""")
    argv = [
        "wrk",
        "-t",
        str(load.threads),
        "-c",
        str(load.connections),
        "-d",
        f"{max(1, round(load.seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        load.base_url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=load.seconds + 60)
    line = next((line for line in done.stdout.splitlines() if line.startswith("WRKJSON ")), None)
    if done.returncode or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    raw = json.loads(line.removeprefix("WRKJSON "))
    return {
        "tool": "wrk",
        "requests": raw["requests"],
        "requests_per_s": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": raw["errors"],
    }


def _run_python(load: Load, workdir: Path) -> dict[str, Any]:
    spec = workdir / "load.json"
    body = workdir / "load-body.bin"
    body.write_bytes(load.body)
    spec.write_text(json.dumps({**load.__dict__, "body": str(body)}))
    out = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", str(spec)],
        capture_output=True,
        text=True,
        timeout=load.seconds + 60,
        check=True,
    ).stdout
    return {"tool": "python", **json.loads(out.splitlines()[-1])}


def _drive(spec: dict[str, Any]) -> dict[str, Any]:
    host_port = spec["base_url"].removeprefix("http://")
    host, _, port = host_port.partition(":")
    body = Path(spec["body"]).read_bytes() or None
    paths = spec["paths"]
    deadline = time.monotonic() + spec["seconds"]
    latencies: list[list[float]] = []
    errors = [0]

    def connection(offset: int) -> None:
        mine: list[float] = []
        latencies.append(mine)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        n = offset
        while time.monotonic() < deadline:
            n += 1
            started = time.perf_counter()
            try:
                conn.request(spec["method"], paths[n % len(paths)], body=body, headers=spec["headers"])
                response = conn.getresponse()
                response.read()
                if response.status >= 400:
                    errors[0] += 1
            except (OSError, http.client.HTTPException):
                errors[0] += 1
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                continue
            mine.append(time.perf_counter() - started)
        conn.close()

    begin = time.monotonic()
    threads = [threading.Thread(target=connection, args=(i * 7,)) for i in range(spec["connections"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - begin
    merged = sorted(x for mine in latencies for x in mine)
    pick = lambda p: merged[min(len(merged) - 1, int(len(merged) * p / 100))] * 1000 if merged else 0.0  # noqa: E731
    return {
        "requests": len(merged),
        "requests_per_s": len(merged) / elapsed,
        "p50_ms": pick(50),
        "p99_ms": pick(99),
        "errors": errors[0],
    }


if __name__ == "__main__":
    print(json.dumps(_drive(json.loads(Path(sys.argv[1]).read_text()))))
