"""The gauges ``GET /metrics`` reads from the shared database at each scrape (:class:`DatabaseCollector`):
requests by kind and state, leases active and overdue, the worker's queues (depth and the age of the oldest due
item), and whether the database answered. Read-only queries of their own; nothing here writes.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Callable, Iterator

from sqlalchemy import func, or_, select

from .models import APPROVED, KINDS, LEASE_ACTIVE, PENDING, STATES, AccessRequest, Delivery, Lease

log = logging.getLogger(__name__)
PREFIX = "polaris_access_bot_"
QUEUES = ("apply", "delivery", "expiry")


def _aware(value):
    if isinstance(value, str):  # SQLite through a raw query
        value = dt.datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value


class DatabaseCollector:
    """A ``prometheus_client`` collector over ``db`` (:class:`bot.db.Database`); ``clock`` gives aware UTC now.
    A database that does not answer gives ``database_up 0`` and none of the other gauges."""

    def __init__(self, db, clock: Callable[[], dt.datetime]):
        self.db, self.clock = db, clock

    def describe(self):
        return []  # no describe-time queries: the registry must not touch the database when registering

    def collect(self) -> Iterator:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily(PREFIX + "database_up", "1 when the database answered this scrape")
        try:
            families = list(self._families(GaugeMetricFamily))
        except Exception as e:
            log.warning("metrics: the database did not answer (%s)", type(e).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, Gauge) -> Iterator:
        now = self.clock()
        with self.db.session() as s:
            counts = {
                (kind, state): n
                for kind, state, n in s.execute(
                    select(AccessRequest.kind, AccessRequest.state, func.count()).group_by(
                        AccessRequest.kind, AccessRequest.state
                    )
                )
            }
            queues = self._queues(s, now)
            active, overdue = self._leases(s, now)
        requests = Gauge(PREFIX + "requests", "Access requests by kind and state", labels=["kind", "state"])
        for kind in KINDS:
            for state in STATES:
                requests.add_metric([kind, state], counts.get((kind, state), 0))
        yield requests
        leases_active = Gauge(PREFIX + "leases_active", "Leases in force (0 without a leases table)")
        leases_active.add_metric([], active)
        yield leases_active
        leases_overdue = Gauge(PREFIX + "leases_overdue", "Leases in force past their end (0 without a leases table)")
        leases_overdue.add_metric([], overdue)
        yield leases_overdue
        depth = Gauge(PREFIX + "work_queue_depth", "Work items due now, by queue", labels=["queue"])
        age = Gauge(
            PREFIX + "work_queue_oldest_due_seconds",
            "Seconds the oldest due item has waited (0 when none)",
            labels=["queue"],
        )
        for queue in QUEUES:
            n, oldest = queues[queue]
            depth.add_metric([queue], n)
            oldest = _aware(oldest)
            age.add_metric([queue], max(0.0, (now - oldest).total_seconds()) if n and oldest else 0.0)
        yield depth
        yield age

    @staticmethod
    def _queues(s, now: dt.datetime) -> dict[str, tuple[int, object]]:
        """(count, oldest due time) of each queue, as :meth:`bot.access.store.RequestStore.due_work` and
        :meth:`bot.deliveries.Deliveries.due` pick them."""
        due_at = func.coalesce(AccessRequest.next_attempt_at, AccessRequest.decided_at, AccessRequest.updated_at)
        apply = s.execute(
            select(func.count(), func.min(due_at)).where(
                AccessRequest.state == APPROVED,
                or_(AccessRequest.next_attempt_at.is_(None), AccessRequest.next_attempt_at <= now),
            )
        ).one()
        delivery_at = func.coalesce(Delivery.next_attempt_at, Delivery.created_at)
        delivery = s.execute(
            select(func.count(), func.min(delivery_at)).where(
                Delivery.status == "pending",
                or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
            )
        ).one()
        expiry = s.execute(
            select(func.count(), func.min(AccessRequest.expires_at)).where(
                AccessRequest.state == PENDING, AccessRequest.expires_at <= now
            )
        ).one()
        return {"apply": tuple(apply), "delivery": tuple(delivery), "expiry": tuple(expiry)}

    @staticmethod
    def _leases(s, now: dt.datetime) -> tuple[int, int]:
        """(active leases, of which overdue: past their end and not removed yet), from ``leases`` (index
        ``ix_leases_state_ends``)."""
        active = s.scalar(select(func.count()).select_from(Lease).where(Lease.state == LEASE_ACTIVE)) or 0
        overdue = (
            s.scalar(select(func.count()).select_from(Lease).where(Lease.state == LEASE_ACTIVE, Lease.ends_at <= now))
            or 0
        )
        return int(active), int(overdue)
