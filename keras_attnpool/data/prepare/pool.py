"""The processes `prepare` converts samples in: a pool it can stop at once, or none.

Workers are started with the "spawn" method (TensorFlow and fork do not mix). A spawned
worker imports only the modules of the calls it runs (`prepare.worker`: PyAV, NumPy,
Pillow, protobuf): the package and its subpackages import nothing heavy on their own, so
no worker loads TensorFlow or Keras. Every worker first runs `_start_worker`, which makes
it ignore Ctrl-C (the parent stops the pool) and exit when the parent dies (a SIGKILLed
prepare leaves no orphans decoding on), and reports its pid, so that `WorkerPool.stop` can
terminate exactly its own processes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, Union

_PARENT_POLL_S = 0.5


def _exit_with_parent(parent_pid: int) -> None:
    """Ends this process once its parent is gone (the process is re-parented)."""
    while os.getppid() == parent_pid:
        time.sleep(_PARENT_POLL_S)
    os._exit(1)


def _start_worker(parent_pid: int, started: Any) -> None:
    """The initializer of every worker process (module doc)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    started.put(os.getpid())


class WorkerPool:
    """A process pool of `workers` spawned processes (`concurrent.futures` semantics: a
    worker that dies breaks the pool, and its futures raise `BrokenProcessPool`)."""

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._started = context.SimpleQueue()  # pids, put by each worker as it starts
        self._pids: set[int] = set()
        self._executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_start_worker,
            initargs=(os.getpid(), self._started))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        return self._executor.submit(fn, *args)

    def shutdown(self) -> None:
        """Waits for the submitted calls, then ends the workers."""
        self._executor.shutdown(wait=True)

    def stop(self) -> None:
        """Ends the workers now: running calls are abandoned, queued ones cancelled."""
        while not self._started.empty():
            self._pids.add(self._started.get())
        for process in multiprocessing.active_children():
            if process.pid in self._pids:
                process.terminate()
        self._executor.shutdown(wait=True, cancel_futures=True)


class InlineExecutor:
    """Runs `submit`ted calls at once in this process (workers=0)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as e:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(e)
        return future


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[Union[WorkerPool, InlineExecutor]]:
    """A `WorkerPool` (stopped at once on any error or Ctrl-C, else shut down when the
    block ends), or this process for workers=0."""
    if workers == 0:
        yield InlineExecutor()
        return
    pool = WorkerPool(workers)
    try:
        yield pool
    except BaseException:
        pool.stop()
        raise
    pool.shutdown()
