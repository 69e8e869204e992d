"""A background writer: the engine's save points run on one thread while the loop computes.

:class:`BackgroundWriter` runs the jobs it is given (frame and checkpoint
writes of :class:`bonesim.io.result.RunFolder`) one after the other, in the
order they were submitted, on a single thread. h5py releases the GIL while it
compresses and writes, so the writes overlap the NumPy (or GPU) steps.

- **Bounded queue, back-pressure.** At most ``depth`` jobs wait; :meth:`submit`
  blocks while the queue is full, so a loop that saves faster than the disk
  can write slows down instead of piling snapshots up in memory.
- **Order.** One thread, first in first out: a checkpoint submitted after a
  frame is written after that frame is renamed into place, so a checkpoint
  never counts a frame that is not on disk.
- **Errors are never lost.** The first exception of a job is kept; every later
  job is dropped (a checkpoint is never written after its frame failed) and the
  exception is raised in the caller's thread by the next :meth:`submit`,
  :meth:`check` or :meth:`drain`.
- **Owned data.** A job must own what it writes (host copies the loop no longer
  mutates): the writer does not copy.

>>> w = BackgroundWriter(depth=1)
>>> out = []
>>> w.submit(out.append, 1); w.submit(out.append, 2); w.drain(); out
[1, 2]
>>> w.submit(lambda: 1 / 0); w.drain()
Traceback (most recent call last):
...
ZeroDivisionError: division by zero
>>> w.close()
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

_STOP = object()


class BackgroundWriter:
    """One writer thread with a queue of at most ``depth`` waiting jobs (see the module docstring)."""

    def __init__(self, depth: int = 1) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        #: Seconds the caller spent blocked in :meth:`submit` and :meth:`drain` (back-pressure).
        self.wait_s = 0.0
        #: Seconds the writer thread spent running jobs.
        self.busy_s = 0.0

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="bonesim-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._q.get()
            try:
                if job is _STOP:
                    return
                if self._error is None:  # after a failure, later jobs are dropped
                    fn, args, kwargs = job
                    t0 = time.perf_counter()
                    try:
                        fn(*args, **kwargs)
                    finally:
                        self.busy_s += time.perf_counter() - t0
            except BaseException as exc:  # kept for the caller's thread
                self._error = exc
            finally:
                self._q.task_done()

    def check(self) -> None:
        """Raise, in the caller's thread, the first error a job raised (once)."""
        exc, self._error = self._error, None
        if exc is not None:
            self._error = _Failed(exc)  # later jobs stay dropped
            raise exc

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue ``fn(*args, **kwargs)``; blocks while ``depth`` jobs wait. Raises a pending error first."""
        self._raise_pending()
        self._start()
        t0 = time.perf_counter()
        self._q.put((fn, args, kwargs))
        self.wait_s += time.perf_counter() - t0

    def drain(self) -> None:
        """Wait until every queued job has run, then raise the first error, if any."""
        if self._thread is not None:
            t0 = time.perf_counter()
            self._q.join()
            self.wait_s += time.perf_counter() - t0
        self._raise_pending()

    def close(self) -> None:
        """Wait for the queued jobs and stop the thread (errors stay pending: call :meth:`drain` first)."""
        if self._thread is not None:
            self._q.put(_STOP)
            self._thread.join()
            self._thread = None

    def _raise_pending(self) -> None:
        if self._error is not None and not isinstance(self._error, _Failed):
            self.check()


class _Failed(Exception):
    """Marks a writer whose error was already raised: later jobs are still dropped."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.exc = exc
