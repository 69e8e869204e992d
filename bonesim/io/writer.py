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
- **Block streams.** A job may read its data as a :class:`BlockStream` that
  the caller fills block by block *after* submitting the job (the engine
  streams the state in z-slabs instead of gathering a full copy). All streams
  of one writer share a byte budget (``buffer_bytes``): :meth:`BlockStream.put`
  blocks while the blocks not yet written would exceed it, so a save point
  holds at most that many bytes of copies however large the volume.

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

import collections
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

_STOP = object()
_END = object()


class StreamAborted(Exception):
    """The caller stopped filling a :class:`BlockStream` (an error or Ctrl-C in the loop)."""


class BlockStream:
    """Owned arrays handed from the caller's thread to one job of a :class:`BackgroundWriter`.

    The caller submits the job first, then :meth:`put` s the blocks and
    :meth:`end` s the stream; the job iterates over it. The bytes of blocks
    put but not yet written count against the writer's ``buffer_bytes``.

    >>> w = BackgroundWriter(depth=1, buffer_bytes=16)
    >>> s = w.stream(); got = []
    >>> w.submit(lambda st: got.extend(int(a.sum()) for a in st), s)
    >>> all(s.put(np.full(8, i, np.uint8)) for i in range(4)); s.end(); w.drain(); got
    True
    [0, 8, 16, 24]
    >>> w.close()
    """

    def __init__(self, writer: BackgroundWriter) -> None:
        self._w = writer
        self._items: collections.deque = collections.deque()
        self._closed = False  # discarded: its job failed or was dropped
        self._aborted = False

    def put(self, block: np.ndarray | Callable[[], np.ndarray], nbytes: int | None = None) -> bool:
        """Queue an owned array; blocks on the byte budget. False when the job is gone (stop putting).

        ``block`` may be a function that makes the array, with its size ``nbytes``: it is called
        only once there is room, so the block being made counts against the budget too.
        """
        make = block if callable(block) else None
        n = int(nbytes if make is not None else block.nbytes)  # type: ignore[union-attr]
        w = self._w
        with w._cv:
            while not self._closed and w._buffered > 0 and w._buffered + n > w.buffer_bytes:
                if w._error is not None:  # the writer failed: nobody will read this stream
                    return False
                t0 = time.perf_counter()
                w._cv.wait(0.2)
                w.wait_s += time.perf_counter() - t0
            if self._closed or w._error is not None:
                return False
            w._buffered += n
            w.peak_buffered = max(w.peak_buffered, w._buffered)
        if make is not None:
            try:
                block = make()
            except BaseException:
                with w._cv:
                    w._buffered -= n
                    w._cv.notify_all()
                raise
        with w._cv:
            w._buffered += int(block.nbytes) - n  # type: ignore[union-attr]
            self._items.append(block)
            w._cv.notify_all()
        return True

    def end(self) -> None:
        """No more blocks."""
        with self._w._cv:
            self._items.append(_END)
            self._w._cv.notify_all()

    def abort(self) -> None:
        """The caller gives up: the job's next read raises :class:`StreamAborted` (nothing is renamed)."""
        with self._w._cv:
            self._aborted = True
            self._w._cv.notify_all()

    def __iter__(self) -> Iterator[np.ndarray]:
        w = self._w
        while True:
            with w._cv:
                while not self._items and not self._aborted:
                    w._cv.wait()
                if self._aborted:
                    raise StreamAborted("the save point was abandoned")
                block = self._items.popleft()
            if block is _END:
                return
            try:
                yield block
            finally:
                with w._cv:
                    w._buffered -= int(block.nbytes)
                    w._cv.notify_all()
                del block

    def discard(self) -> None:
        """Drop the blocks not read (after the job ran, failed or was dropped) and release their bytes."""
        with self._w._cv:
            self._closed = True
            while self._items:
                b = self._items.popleft()
                if b is not _END:
                    self._w._buffered -= int(b.nbytes)
            self._w._cv.notify_all()


class BackgroundWriter:
    """One writer thread with a queue of at most ``depth`` waiting jobs (see the module docstring)."""

    def __init__(self, depth: int = 1, buffer_bytes: int = 64 * 2**20) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        #: Bytes of :class:`BlockStream` blocks that may wait to be written (one block always may).
        self.buffer_bytes = int(buffer_bytes)
        self._buffered = 0
        #: The most bytes of blocks that waited at once.
        self.peak_buffered = 0
        self._cv = threading.Condition()
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
                with self._cv:
                    self._error = exc
                    self._cv.notify_all()
            finally:
                if job is not _STOP:  # blocks its job did not read (it failed or was dropped)
                    for a in (*job[1], *job[2].values()):
                        if isinstance(a, BlockStream):
                            a.discard()
                self._q.task_done()

    def stream(self) -> BlockStream:
        """A new :class:`BlockStream` for a job of this writer (submit the job, then fill the stream)."""
        return BlockStream(self)

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
