"""wrk, the C load generator (Debian's `wrk` package), driven from the benchmarks: a
Python generator on a 2-core machine would measure itself. Installed with apt-get
when missing (as root, or through sudo without a password); otherwise the benchmark
says how to install it."""

import asyncio
import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent / "wrk"


class WrkMissing(RuntimeError):
    pass


def wrk_path() -> str:
    """The wrk binary, installed from Debian's package first if it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    command = ["apt-get", "install", "-y", "-q", "wrk"]
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise WrkMissing("wrk is not installed: run `sudo apt-get install wrk`")
        command = ["sudo", "-n", *command]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    found = shutil.which("wrk")
    if done.returncode != 0 or not found:
        raise WrkMissing(
            f"wrk is not installed and `{' '.join(command)}` failed: {done.stderr.strip()[-300:]}"
        )
    return found


@dataclass(frozen=True)
class WrkRun:
    requests: int
    seconds: float
    errors: int  # connect, read, write errors, timeouts and non-2xx answers
    non_2xx: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    wrapped: bool = False  # a thread ran out of events and sent some again

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "requests_per_s": round(self.rate, 1),
            "errors": self.errors,
            "non_2xx": self.non_2xx,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
        }


async def _all_sent(process: asyncio.subprocess.Process, scratch: Path, threads: int) -> None:
    """Waits until every thread has sent its share, then interrupts wrk (SIGINT: it stops
    sleeping, joins its threads and prints its summary)."""
    while process.returncode is None:
        if len(list(scratch.glob("wrk-done-*"))) >= threads:
            process.send_signal(signal.SIGINT)
            return
        await asyncio.sleep(0.02)


async def wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    args: list[str],
    threads: int = 2,
    once: Path | None = None,
) -> WrkRun:
    """Runs wrk against `url` with bench/wrk/requests.lua and its arguments (file or
    "-", path, threads, pause in ms); the script's done() prints the JSON line read
    here. `once`: a scratch directory; the file's lines are each sent once and wrk is
    stopped when all are (`seconds` is then an upper bound)."""
    threads = max(1, min(threads, connections))
    if once is not None:
        for marker in once.glob("wrk-done-*"):  # an earlier run's
            marker.unlink()
        args = [*args[:4], "once", str(once / "wrk-done-")]
    process = await asyncio.create_subprocess_exec(
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(SCRIPTS / "requests.lua"),
        url,
        "--",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(seconds + 60):
        if once is not None:
            await _all_sent(process, once, threads)
        out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.decode()[-500:]}")
    line = next((ln for ln in out.decode().splitlines() if ln.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {out.decode()[-500:]}")
    data = json.loads(line)
    errors = sum(
        data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts", "non_2xx")
    )
    return WrkRun(
        requests=data["requests"],
        seconds=data["seconds"],
        errors=errors,
        non_2xx=data["non_2xx"],
        p50_ms=data["p50_ms"],
        p90_ms=data["p90_ms"],
        p99_ms=data["p99_ms"],
        max_ms=data["max_ms"],
        wrapped=bool(data.get("wrapped", 0)),
    )
