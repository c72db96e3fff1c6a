"""The background worker of one process: runs :meth:`AccessService.run_due` every ``interval`` seconds, and
at once when woken (after an approval or a Retry). On start-up its first pass resumes every request left
approved or mid-apply by a crash or deploy. :meth:`Worker.stop` (SIGTERM) lets the current apply finish.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class Worker:
    """A daemon thread around ``service.run_due``. ``interval`` in seconds. ``periodic``: callables run after
    each pass (e.g. :meth:`bot.audit_jobs.AuditJobs.run_due`, which decides itself what is due); an exception
    in one is logged."""

    def __init__(self, service, interval: float = 5.0, *, periodic=()):
        self.service, self.interval = service, interval
        self.periodic = list(periodic)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.idle = threading.Event()
        service.wake = self._wake.set

    def start(self) -> "Worker":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="polaris-worker", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.idle.clear()
            try:
                self.service.run_due(stop=self._stop)
            except Exception:
                log.exception("worker pass failed")
            for job in self.periodic:
                if self._stop.is_set():
                    break
                try:
                    job()
                except Exception:
                    log.exception("periodic job failed")
            self.idle.set()
            self._wake.wait(self.interval)
            self._wake.clear()

    def stop(self, timeout: float = 25.0) -> None:
        """Stop after the current step; waits up to ``timeout`` seconds."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
