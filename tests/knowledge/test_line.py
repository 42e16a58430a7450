"""The host's line: requests start in the order they arrived, a few at once, and a closing
host lets in nobody new but finishes those already in line."""

from __future__ import annotations

import threading
import time

import pytest

from knowledge.shared import _Line


def _wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


def test_requests_start_in_the_order_they_arrived() -> None:
    line = _Line(1)
    started: list[str] = []
    release = threading.Event()

    def first() -> None:
        with line.turn():
            started.append("first")
            release.wait(10)

    def later(name: str) -> None:
        with line.turn():
            started.append(name)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    _wait_for(lambda: started == ["first"], "the first turn")
    # a stream of requests from one caller queues behind the others that came before it
    for name in ("a1", "b1", "a2", "b2"):
        threads.append(threading.Thread(target=later, args=(name,)))
        threads[-1].start()
        waiting = len(threads)
        _wait_for(lambda n=waiting: line._issued == n, f"{name} in line")
    release.set()
    for thread in threads:
        thread.join(10)
    assert started == ["first", "a1", "b1", "a2", "b2"]


def test_width_requests_run_side_by_side() -> None:
    line = _Line(2)
    inside = threading.Barrier(2, timeout=10)

    def both() -> None:
        with line.turn():
            inside.wait()  # breaks (and raises) unless two are inside at once

    threads = [threading.Thread(target=both) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not inside.broken


def test_a_closed_line_finishes_what_is_in_it_and_lets_nobody_new_in() -> None:
    line = _Line(1)
    release = threading.Event()
    done: list[str] = []

    def slow(name: str) -> None:
        with line.turn():
            release.wait(10)
            done.append(name)

    threads = [threading.Thread(target=slow, args=(n,)) for n in ("running", "waiting")]
    threads[0].start()
    _wait_for(lambda: line._running == 1, "the first turn")
    threads[1].start()
    _wait_for(lambda: line._issued == 2, "the second in line")
    closer = threading.Thread(target=line.close)
    closer.start()
    _wait_for(lambda: line._closed, "the line to close")
    with pytest.raises(RuntimeError), line.turn():
        pass
    release.set()
    closer.join(10)
    assert not closer.is_alive()
    assert done == ["running", "waiting"]
