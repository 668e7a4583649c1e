"""``depthssd_train.signals.signal_handlers``: installed for the block, restored after it,
left alone off the main thread."""

import signal
import threading

import pytest

from depthssd_train.signals import STOP_SIGNALS, signal_handlers


def test_handlers_hold_inside_the_block_and_are_restored_after_it():
    before = [signal.getsignal(s) for s in STOP_SIGNALS]
    seen = []

    def note(signum, frame):
        seen.append(signum)

    with signal_handlers(STOP_SIGNALS, note) as installed:
        assert installed
        assert [signal.getsignal(s) for s in STOP_SIGNALS] == [note, note]
        signal.raise_signal(signal.SIGTERM)
    assert seen == [signal.SIGTERM]
    assert [signal.getsignal(s) for s in STOP_SIGNALS] == before


def test_restored_also_when_the_block_raises():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RuntimeError), signal_handlers((signal.SIGTERM,), signal.SIG_IGN):
        raise RuntimeError("boom")
    assert signal.getsignal(signal.SIGTERM) == before


def test_off_the_main_thread_nothing_is_installed():
    before = signal.getsignal(signal.SIGINT)
    result = {}

    def worker():
        with signal_handlers((signal.SIGINT,), signal.SIG_IGN) as installed:
            result["installed"] = installed
            result["inside"] = signal.getsignal(signal.SIGINT)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert result == {"installed": False, "inside": before}
