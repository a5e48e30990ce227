"""Smoke test of the benchmark harness: every benchmark runs in ``--quick`` mode and reports.

Each runs as ``python -m bench <name> --quick --json-only`` in a subprocess (it starts and
stops its own services on loopback) and must print one JSON line whose figures are all
present and positive. No timing thresholds: figures are for people, not for assertions.
The whole file takes about a minute on the 2-core dev machine, plus up to a minute for ``peers``.

Needs RabbitMQ and PostgreSQL on 127.0.0.1 (``peers`` also Redis and the ``bench`` extra,
Celery): skipped on a laptop without them, failed under CI (``CI=true``), where they must be
running and installed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import port_open, rabbitmq_available

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[1]
#: The benchmarks; ``extract`` is only there once bench/extract.py is.
BENCHMARKS = ("pipeline", "ingest", "store", "api", "extract", "peers", "tus", "sse", "fairness")
#: Generous: a quick run takes 10-25 s here, but CI machines can be slower.
TIMEOUT_SECONDS = 240
#: The smallest process layout each benchmark takes (one web and one worker process, fewer
#: threads): the smoke test checks that the harness runs and reports, which one process shows as
#: well as two, and every process saved is an interpreter that imports chute (seconds of CPU on
#: a loaded 2-core machine). The figures of such a run mean nothing, as with any --quick run.
SMALL = {
    "pipeline": ("--processes", "1", "--threads", "4", "--web-workers", "1", "--web-threads", "4"),
    "peers": ("--processes", "1", "--threads", "4", "--web-workers", "1", "--web-threads", "4"),
    "fairness": ("--processes", "1", "--threads", "4"),
    "store": ("--processes", "1", "--threads", "4"),
    "api": ("--web-workers", "1", "--web-threads", "4", "--connections", "4"),
    "ingest": ("--web-workers", "1", "--web-threads", "4"),
}


def _require_services(name: str) -> None:
    message = ""
    if not (rabbitmq_available() and port_open("127.0.0.1", 5432)):
        message = "RabbitMQ (127.0.0.1:5672) and PostgreSQL (127.0.0.1:5432) are needed"
    elif name == "peers" and not port_open("127.0.0.1", 6379):
        message = "Redis (127.0.0.1:6379) is needed by the Celery peer"
    elif name == "peers" and importlib.util.find_spec("celery") is None:
        message = "the Celery peer needs the bench extra (pip install -e '.[bench]')"
    if not message:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + " (CI=true: they must be running)")
    pytest.skip(message)


def _numbers(value: object) -> list[float]:
    """Every number in a JSON value, however nested."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


#: Runs of a benchmark with options of its own: ``api`` beside another checkout (here: this one).
VARIANTS = {"api-compare": ("api", "--compare-with", str(REPO))}


@pytest.mark.parametrize("variant", [*BENCHMARKS, *VARIANTS])
def test_quick_run_reports_positive_figures(variant: str) -> None:
    name, *options = VARIANTS.get(variant, (variant,))
    if name == "extract" and importlib.util.find_spec("bench.extract") is None:
        pytest.skip("bench/extract.py is not there yet")
    _require_services(name)
    if name == "tus":
        from bench.tus import node_missing

        missing = node_missing()
        if missing and os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"bench tus needs node: {missing} (CI=true)")
        if missing:
            pytest.skip(f"bench tus needs node: {missing}")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("BENCH_PROFILE", None)
    done = subprocess.run(
        [sys.executable, "-m", "bench", name, "--quick", "--json-only", *SMALL.get(variant, ()), *options],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
    )
    assert done.returncode == 0, f"bench {name} exited {done.returncode}:\n{done.stderr[-4000:]}"
    lines = [line for line in done.stdout.splitlines() if line.startswith(f'{{"bench": "{name}"')]
    assert len(lines) == 1, f"expected one JSON line from bench {name}, got:\n{done.stdout[-2000:]}"
    report = json.loads(lines[0])
    assert report["bench"] == name
    # bench/harness.py's reports keep their figures under "figures"; extract (its own format)
    # has them at the top level.
    # A server that answered errors (a measured path broken by a change) is no figure.
    failed = [note for note in report.get("notes", []) if "non-2xx or socket" in note]
    assert not failed, f"bench {name}: {failed}"
    figures = report["figures"] if name != "extract" else {k: v for k, v in report.items() if k != "bench"}
    assert isinstance(figures, dict) and figures, f"bench {name} reported no figures: {report}"
    for key, value in figures.items():
        numbers = _numbers(value)
        assert numbers, f"{name}: figure {key} holds no number: {value!r}"
        for number in numbers:
            assert math.isfinite(number) and number > 0, f"{name}: figure {key} = {value!r}"
