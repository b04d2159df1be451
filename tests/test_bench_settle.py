"""polyfuse.bench.settle: the pause before a timed run lasts until the process's other threads
have stopped running (a runtime's spinning workers), within its bounds."""
import ctypes
import sys
import threading
import time

import pytest

from polyfuse.bench import _other_threads_running, settle

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/task")


def _spin_for(seconds: float, started: threading.Event):
    """Busy for `seconds`, mostly outside the GIL (ctypes releases it around the call), so the
    thread stays running while the test's thread polls."""
    buf = ctypes.create_string_buffer(1 << 22)
    started.set()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        ctypes.memset(buf, 1, len(buf))


def test_waits_for_a_spinning_thread():
    started = threading.Event()
    t = threading.Thread(target=_spin_for, args=(0.3, started))
    t.start()
    started.wait()
    t0 = time.perf_counter()
    assert _other_threads_running()
    waited = settle(0.01, 2.0)
    still_spinning = t.is_alive()
    t.join()
    assert not still_spinning, "settle returned while another thread was still spinning"
    assert 0.2 <= waited < 2.0, waited
    assert time.perf_counter() - t0 < 2.0


def test_gives_up_after_most():
    started = threading.Event()
    t = threading.Thread(target=_spin_for, args=(1.0, started))
    t.start()
    started.wait()
    waited = settle(0.01, 0.05)
    t.join()
    assert 0.05 <= waited < 0.5, waited


def test_idle_process_waits_only_the_least():
    waited = settle(0.02, 2.0)
    assert 0.02 <= waited < 0.5, waited
