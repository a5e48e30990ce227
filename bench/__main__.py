"""``python -m bench <name> [--quick] [--json-only] [options]``: run one benchmark, or ``all``.

Each benchmark starts what it needs on loopback, runs, stops everything it started, and
prints one JSON line (``{"bench": "<name>", ...}``) and then a table. Options after the name
go to the benchmark (``python -m bench pipeline --help``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

#: Benchmark name → module with ``main(argv) -> int`` (``bench.extract`` has its own owner).
BENCHMARKS = {
    "pipeline": "bench.pipeline",
    "ingest": "bench.ingest",
    "store": "bench.store",
    "api": "bench.api",
    "extract": "bench.extract",
    "peers": "bench.peers.compare",
    "tus": "bench.tus",
    "sse": "bench.sse",
    "fairness": "bench.fairness",
}


def run(name: str, argv: list[str]) -> int:
    module = importlib.import_module(BENCHMARKS[name])
    return int(module.main(argv) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="chute's benchmarks: chute beside its ceiling, measured in the same run.",
    )
    parser.add_argument("name", choices=[*BENCHMARKS, "all"])
    args, rest = parser.parse_known_args(argv)
    if args.name != "all":
        return run(args.name, rest)
    failed = []
    for name in BENCHMARKS:
        if importlib.util.find_spec(BENCHMARKS[name]) is None:
            print(f"bench {name}: {BENCHMARKS[name]} is not there yet, skipped", file=sys.stderr)
            continue
        try:
            code = run(name, rest)
        except Exception as e:  # one broken benchmark must not hide the others' figures
            print(f"bench {name} failed: {type(e).__name__}: {e}", file=sys.stderr)
            code = 1
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
