"""Work lanes: the work listeners hand off after ``ack()``, in bounded thread pools kept apart by what the
work waits on, so work that waits on Polaris never holds up work that does not.

- :data:`LOCAL`: the database and cached or quick Slack lookups only (``help``, ``status``, ``pending``,
  ``policy`` with the group list cached, a command that cannot be read, the Home tab, a malformed button).
- :data:`POLARIS`: work that may wait on Polaris (``whois``, ``groups``, ``members``, ``permissions``,
  ``request``, ``invite``, ``reset-password``, decisions, Retry, the request form and its submission). It
  also posts the cards and DMs a decision or request causes.

Each lane has its own threads and its own queue limit: a full lane answers "busy" for its own work while the
other lane goes on. Slack's rate limits never make a lane thread sleep: :class:`bot.slack.SlackGateway` fails
a 429 at once (``SlackError.retry_after``) and the worker retries unposted cards and untold DMs later.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from .commands import UsageError, parse

log = logging.getLogger(__name__)

LOCAL = "local"
POLARIS = "polaris"
LANES = (LOCAL, POLARIS)

#: Commands answered from the database (and Slack lookups) alone.
LOCAL_COMMANDS = frozenset({"help", "status", "pending"})
#: Commands that read only the cached group list besides the database: local while the cache is fresh.
GROUP_LIST_COMMANDS = frozenset({"policy"})


def lane_for_command(text: str | None, *, groups_cached: bool) -> str:
    """The lane of the ``/polaris`` command ``text``: :data:`LOCAL` or :data:`POLARIS`.

    ``groups_cached``: the group list is cached and fresh (so ``policy`` needs no Polaris call). Text that
    cannot be parsed is answered with a usage message, locally. Never raises: text the parser trips on is
    sent to :data:`POLARIS`, where the guarded command answers it (the listener has acked already)."""
    try:
        name = parse(text).name
    except UsageError:
        return LOCAL
    except Exception:  # noqa: BLE001 - a listener must never die after the ack
        log.exception("could not pick a lane for a /polaris command")
        return POLARIS
    if name in LOCAL_COMMANDS or (name in GROUP_LIST_COMMANDS and groups_cached):
        return LOCAL
    return POLARIS


class Lane:
    """One bounded pool: ``threads`` worker threads and at most ``max_queued`` tasks waiting or running.

    Thread-safe. ``max_queued`` may be changed at any time (it is read on each :meth:`submit`)."""

    def __init__(self, name: str, threads: int, max_queued: int):
        self.name, self.threads, self.max_queued = name, threads, max_queued
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"work-{name}")
        self._queued = 0
        self._lock = threading.Lock()

    @property
    def queued(self) -> int:
        """Tasks accepted and not finished yet."""
        with self._lock:
            return self._queued

    def submit(self, fn: Callable[[], object], on_busy: Callable[[], object] | None = None) -> bool:
        """Run ``fn`` on this lane. Its exceptions are logged, never lost. When ``max_queued`` tasks are
        already accepted, ``on_busy`` runs instead (in the caller's thread) and False is returned."""
        with self._lock:
            busy = self._queued >= self.max_queued
            if not busy:
                self._queued += 1
        if busy:
            log.warning("work lane %s full (%d tasks); asking the person to retry", self.name, self.max_queued)
            if on_busy is not None:
                try:
                    on_busy()
                except Exception:
                    log.exception("busy answer failed")
            return False

        def run() -> None:
            try:
                fn()
            except Exception:
                log.exception("background task failed (lane %s)", self.name)
            finally:
                with self._lock:
                    self._queued -= 1

        with self._lock:  # never onto a pool drain() is shutting down
            self._pool.submit(run)
        return True

    def drain(self) -> None:
        """Wait until every accepted task has finished (also tasks those tasks handed on); the lane stays
        usable afterwards."""
        for _ in range(10):
            with self._lock:
                pool = self._pool
                self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix=f"work-{self.name}")
            pool.shutdown(wait=True)
            if not self.queued:
                return


class Lanes:
    """The lanes of one process: ``threads`` threads and a queue limit of ``max_queued`` in each of
    :data:`LANES`."""

    def __init__(self, threads: int, max_queued: int):
        self._lanes = {name: Lane(name, threads, max_queued) for name in LANES}

    def lane(self, name: str) -> Lane:
        """The lane called ``name``; raises ``KeyError`` for another name."""
        return self._lanes[name]

    def submit(self, name: str, fn: Callable[[], object], on_busy: Callable[[], object] | None = None) -> bool:
        """:meth:`Lane.submit` on the lane called ``name``."""
        return self._lanes[name].submit(fn, on_busy)

    def set_max_queued(self, max_queued: int) -> None:
        """The same queue limit for every lane."""
        for lane in self._lanes.values():
            lane.max_queued = max_queued

    def drain(self) -> None:
        """Wait for the work of every lane to finish (shutdown, tests)."""
        for lane in self._lanes.values():
            lane.drain()
