"""Running functions in threads that interleave as much as Python lets them, for the tests of calls
from several threads at once."""

import sys
import threading
from collections.abc import Callable


def run_interleaved(targets: list[Callable[[], object]]) -> None:
    """Start a thread per target and wait for all; meanwhile threads switch every few bytecodes (the
    default is every 5 ms), so that calls interleave wherever they can."""
    threads = [threading.Thread(target=target) for target in targets]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
