"""Parser helper processes live as long as their parent process, not the thread that started them."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor

from rlm_mcp.index.parse.worker import _die_with_parent, _mp_context


def _slow_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_a_helper_outlives_the_thread_that_started_it() -> None:
    # A load runs on a thread; when it is interrupted the thread ends while its helpers
    # may still be writing a result. A helper killed then (PR_SET_PDEATHSIG fires on the
    # forking thread's exit) left half a message in the pool's pipe and hung the process.
    pool = ProcessPoolExecutor(
        max_workers=1,
        mp_context=_mp_context(),
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    )
    got: list[Future[int]] = []

    def start() -> None:
        pool.submit(_slow_pid, 0.0).result(timeout=60)  # the helper is up and initialised
        got.append(pool.submit(_slow_pid, 1.0))  # this thread ends while the helper works

    starter = threading.Thread(target=start)
    starter.start()
    starter.join()
    try:
        pid = got[0].result(timeout=60)
        assert pid != os.getpid()
    finally:
        pool.shutdown(wait=True)
