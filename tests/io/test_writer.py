"""The background writer: order, back-pressure, errors surfacing in the caller's thread."""

from __future__ import annotations

import threading
import time

import pytest

from bonesim.io.writer import BackgroundWriter


def test_jobs_run_in_submission_order_on_one_thread():
    w = BackgroundWriter(depth=2)
    seen = []
    for i in range(20):
        w.submit(lambda i=i: seen.append((i, threading.current_thread().name)))
    w.drain()
    w.close()
    assert [i for i, _ in seen] == list(range(20))
    assert {name for _, name in seen} == {"bonesim-writer"}


def test_submit_blocks_while_the_queue_is_full():
    w = BackgroundWriter(depth=1)
    release = threading.Event()
    started = threading.Event()

    def slow():
        started.set()
        release.wait(10)

    w.submit(slow)  # running
    assert started.wait(5)
    w.submit(lambda: None)  # waits in the queue
    third_done = threading.Event()

    def third():
        w.submit(lambda: None)
        third_done.set()

    t = threading.Thread(target=third)
    t.start()
    assert not third_done.wait(0.5)  # back-pressure: the caller blocks
    release.set()
    assert third_done.wait(5)
    t.join()
    w.drain()
    w.close()
    assert w.wait_s >= 0.4


def test_an_error_is_raised_at_the_next_submit_and_later_jobs_are_dropped():
    w = BackgroundWriter(depth=1)
    ran = []

    def boom():
        raise OSError(5, "Input/output error")

    w.submit(boom)
    deadline = time.time() + 5
    while w._error is None and time.time() < deadline:
        time.sleep(0.01)
    with pytest.raises(OSError, match="Input/output"):
        w.submit(ran.append, 1)
    w.submit(ran.append, 2)  # raised once; the writer stays failed
    w.drain()
    w.close()
    assert ran == []  # nothing is written after a failed write (no checkpoint after its frame failed)


def test_an_error_is_raised_by_drain():
    w = BackgroundWriter(depth=1)
    w.submit(lambda: [][1])
    with pytest.raises(IndexError):
        w.drain()
    w.close()
