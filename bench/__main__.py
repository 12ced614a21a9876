"""python -m bench [NAME...] [--list]: runs the registered benchmarks (all, or those
whose name contains one of NAMEs), prints a table and writes the results as JSON to
bench/results/<timestamp>.json and bench/results/latest.json. Exits 1 if any
benchmark misses its target or fails."""

import argparse
import asyncio
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import bench.chaos  # registers the chaos benchmark
import bench.contention  # registers the checkout contention benchmark
import bench.ingest  # registers the webhook ingest benchmark
import bench.sandbox  # registers the sandbox benchmarks
import bench.storm  # noqa: F401 - registers the storm benchmarks
from bench import REGISTRY, Result
from devtools.processes import install_shutdown_handlers

RESULTS = Path(__file__).resolve().parent / "results"
PER_BENCHMARK_TIMEOUT = 900  # seconds; each benchmark also bounds its own phases


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help="run only benchmarks whose name contains one")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    return parser.parse_args(argv)


async def run_one(name: str) -> Result:
    benchmark = REGISTRY[name]
    try:
        return await asyncio.wait_for(benchmark(), PER_BENCHMARK_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
        traceback.print_exc()
        return Result(name, 0.0, "", 0.0, error=f"{type(exc).__name__}: {exc}")


def table(results: list[Result]) -> str:
    rows = [("benchmark", "value", "unit", "target", "result")]
    for r in results:
        target = (">= " if r.higher_is_better else "<= ") + f"{r.target:g}"
        verdict = "pass" if r.passed else ("FAIL: " + r.error if r.error else "FAIL")
        rows.append((r.name, f"{r.value:,.1f}", r.unit, target, verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1])]
        cells += [row[2].ljust(widths[2]), row[3].ljust(widths[3]), row[4]]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in [*widths, len("result")]))
    return "\n".join(lines)


def write_results(directory: Path, results: list[Result], started: float) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    document: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "results": [r.as_dict() for r in results],
    }
    text = json.dumps(document, indent=2) + "\n"
    path = directory / f"{stamp}.json"
    path.write_text(text)
    (directory / "latest.json").write_text(text)
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for name in REGISTRY:
            print(name)
        return 0
    names = [n for n in REGISTRY if not args.names or any(w in n for w in args.names)]
    if not names:
        print(f"no benchmark matches {args.names}; try --list", file=sys.stderr)
        return 2
    install_shutdown_handlers(sigint=False)  # SIGTERM/SIGHUP unwind, stopping children
    started = time.time()
    results = []
    for name in names:
        print(f"running {name} ...", flush=True)
        result = asyncio.run(run_one(name))
        print(f"  {result.value:,.1f} {result.unit}  {result.details}", flush=True)
        results.append(result)
    print()
    print(table(results))
    path = write_results(args.results_dir, results, started)
    print(f"\nresults: {path} (and {path.parent / 'latest.json'})")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
