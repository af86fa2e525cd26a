"""Ctrl-C and SIGTERM as one interruption that cannot be lost.

While a command runs, ``edge.cli.main`` routes SIGINT and SIGTERM here: the handler records the signal and
raises KeyboardInterrupt, so every command's cleanup runs (files closed or left atomic, workers joined) and
the CLI exits 130. Python swallows an exception raised inside some callbacks (``os.fork``'s at-fork hooks,
``__del__``, weakref callbacks) and prints "Exception ignored in ..." with a traceback. So while a process
forks (training forks DataLoader workers every epoch) the handler only records the signal, and long loops
call :func:`raise_if_interrupted` at safe points: an interrupt is never lost, and never shows a traceback.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from functools import partial
from typing import Iterator

_pending: str | None = None
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: non-empty while a signal must only be recorded: while this process forks (the at-fork hooks that fill
#: and empty it are C callables, so a signal handler cannot run inside them; logging's hooks, registered
#: before, run inside the window), and inside :func:`deferred`.
_forking: set[int] = set()
_fork_hooks_registered = False


def _register_fork_hooks() -> None:
    """Mark the fork window (ours are registered after logging's, so its hooks run inside the window), and
    give forked children plain signal dispositions. Registered once per process, on the first command."""
    global _fork_hooks_registered
    import logging  # noqa: F401  (its at-fork hooks are registered on import: ours must come after them)

    if _fork_hooks_registered or not hasattr(os, "register_at_fork"):
        return
    # A forked child (a DataLoader worker) leaves Ctrl-C to its parent and dies of SIGTERM, from its start on
    # (not our handler: it would raise in the child's start-up and print a traceback). Child hooks run in
    # registration order: these first, while the copied fork window still makes our handler record only.
    os.register_at_fork(after_in_child=partial(signal.signal, signal.SIGINT, signal.SIG_IGN))
    os.register_at_fork(after_in_child=partial(signal.signal, signal.SIGTERM, signal.SIG_DFL))
    os.register_at_fork(before=partial(_forking.add, 1), after_in_parent=partial(_forking.discard, 1),
                        after_in_child=_forking.clear)
    _fork_hooks_registered = True


def _handler(signum, _frame) -> None:
    global _pending
    _pending = signal.Signals(signum).name
    if _forking:
        return  # inside an at-fork hook the exception would be swallowed: raise_if_interrupted() raises it
    raise KeyboardInterrupt(_pending)


@contextmanager
def deferred() -> Iterator[None]:
    """Within: a signal is recorded, not raised; it is raised on leaving (or by raise_if_interrupted later).

    For short sections that third-party code does not survive being interrupted in, e.g. creating a
    DataLoader iterator (a half-built one fails in its ``__del__`` with a traceback).
    """
    token = object()
    _forking.add(id(token))
    try:
        yield
    finally:
        _forking.discard(id(token))
    raise_if_interrupted()


def pending() -> str | None:
    """The name of the signal received while handled ("SIGINT", "SIGTERM"), or None."""
    return _pending


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if a signal arrived (also one whose exception Python swallowed)."""
    if _pending is not None:
        raise KeyboardInterrupt(_pending)


@contextmanager
def handle_interrupts() -> Iterator[None]:
    """SIGINT and SIGTERM -> KeyboardInterrupt (recorded) for the duration; main thread only, else nothing."""
    global _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _pending = None
    _register_fork_hooks()
    previous = {sig: signal.signal(sig, _handler) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _pending = None
