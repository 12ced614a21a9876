"""Signal handling shared by the launchers: turn SIGTERM/SIGHUP (and the loss of our
parent, e.g. `make` killed) into one exception so that `finally` blocks stop every
child and the embedded database."""

import ctypes
import os
import signal
import sys
from types import FrameType


class Shutdown(Exception):  # a request to stop, not an error
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_shutdown(signum: int, frame: FrameType | None) -> None:
    raise Shutdown(signum)


def install_shutdown_handlers(*, sigint: bool = True) -> None:
    signals = [signal.SIGTERM, signal.SIGHUP] + ([signal.SIGINT] if sigint else [])
    for signum in signals:
        signal.signal(signum, raise_shutdown)


def parent_is_gone(original_ppid: int) -> bool:
    """True once the process that started us has exited (we were re-parented)."""
    return os.getppid() != original_ppid


def die_with_parent() -> None:
    """`preexec_fn` for children: on Linux the kernel sends them SIGTERM if the
    launcher dies, even by SIGKILL, so no orphan keeps a port or the database."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
