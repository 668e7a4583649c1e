"""Signal handlers installed for one block of code and restored after it.

The commands that change something outside the process (a CARLA server's settings and actors,
a training run's checkpoints) decide what Ctrl-C and SIGTERM do while they run: end the process
at once, unwind like Ctrl-C so the cleanup runs, or be noted and acted on once the work is
safe to leave. Python lets only the main thread install handlers; elsewhere the block runs under
whatever handlers are in place.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

#: The signals that ask a command to stop: Ctrl-C, and what ``kill`` and supervisors send.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signal_handlers(signals: Sequence[signal.Signals],
                    handler: Callable[[int, Any], Any] | signal.Handlers) -> Iterator[bool]:
    """Install ``handler`` (a function, ``SIG_DFL`` or ``SIG_IGN``) for ``signals`` inside the
    block, then restore the handlers that were there.

    Yields:
        Whether the handlers were installed (False off the main thread, which cannot).
    """
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield True
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
