"""The background worker (bot/worker.py) with a stand-in service: it runs passes, wakes on ``wake()``, lets
the current pass finish on ``stop()``, and survives a pass that raises."""

from __future__ import annotations

import threading
import time

from bot.worker import Worker


class FakeService:
    """What the worker needs of :class:`bot.workflow.AccessService`: ``run_due(stop=)`` and a ``wake`` slot."""

    def __init__(self, pass_fn=None):
        self.passes = 0
        self.finished = 0
        self.stops: list[threading.Event] = []
        self.ran = threading.Condition()
        self.pass_fn = pass_fn
        self.wake = None

    def run_due(self, *, stop: threading.Event) -> int:
        with self.ran:
            self.passes += 1
            number = self.passes
            self.stops.append(stop)
            self.ran.notify_all()
        if self.pass_fn:
            self.pass_fn(number, stop)
        with self.ran:
            self.finished += 1
            self.ran.notify_all()
        return 0

    def wait_for(self, attr: str, n: int, timeout: float = 5.0) -> bool:
        with self.ran:
            return self.ran.wait_for(lambda: getattr(self, attr) >= n, timeout)


def test_runs_passes_every_interval():
    service = FakeService()
    worker = Worker(service, interval=0.01).start()
    try:
        assert service.wait_for("passes", 5)
    finally:
        worker.stop()


def test_start_twice_is_one_thread():
    service = FakeService()
    worker = Worker(service, interval=60)
    assert worker.start() is worker.start()
    try:
        assert service.wait_for("passes", 1)
        time.sleep(0.1)
        assert service.passes == 1
    finally:
        worker.stop()


def test_wakes_at_once_on_wake():
    service = FakeService()
    worker = Worker(service, interval=60).start()  # without a wake the next pass is a minute away
    try:
        assert service.wait_for("finished", 1) and worker.idle.wait(5)
        started = time.monotonic()
        service.wake()  # the service is given the worker's wake (an approval calls it)
        assert service.wait_for("passes", 2)
        assert time.monotonic() - started < 5
    finally:
        worker.stop()


def test_stop_lets_the_current_pass_finish():
    inside, release = threading.Event(), threading.Event()

    def slow(number, stop):
        if number == 1:
            inside.set()
            release.wait(5)

    service = FakeService(slow)
    worker = Worker(service, interval=60).start()
    assert inside.wait(5)
    stopper = threading.Thread(target=worker.stop)
    stopper.start()
    time.sleep(0.1)
    assert stopper.is_alive() and service.finished == 0  # stop() waits for the pass ...
    assert service.stops[0].is_set()  # ... which is told to stop after its current step
    release.set()
    stopper.join(5)
    assert not stopper.is_alive() and service.finished == 1 and service.passes == 1


def test_a_pass_that_raises_does_not_kill_the_worker(caplog):
    def flaky(number, stop):
        if number == 1:
            raise RuntimeError("database went away")

    service = FakeService(flaky)
    worker = Worker(service, interval=0.01).start()
    try:
        assert service.wait_for("finished", 2)  # the second pass ran and finished
    finally:
        worker.stop()
    assert any("worker pass failed" in r.getMessage() for r in caplog.records)
