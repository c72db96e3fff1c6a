"""What every unit of the access core shares: the clients, the clock and the policy of one process.

:class:`Context` is built once by :class:`bot.access.service.AccessService` and handed to each unit. Units read
``settings``, ``policy`` and ``clock`` from it at each use (never a copy), so the facade can replace them at
run time (a test moves the clock, a reloaded policy) and every unit sees the change. No I/O happens here.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from typing import Callable

from ..audit import AuditLog
from ..claims import Claims
from ..config import Settings
from ..db import Database
from ..deliveries import DeliveryLedger
from ..polaris import GroupCatalog, PermissionCatalog, PolarisClient, ProjectCatalog
from ..policy import Policy
from ..slack import SlackGateway


class Context:
    """The shared clients (``db``, ``polaris``, ``slack``, ``audit``, ``catalog``, ``projects`` (the project
    names, :class:`bot.polaris.ProjectCatalog`), ``permissions`` (:class:`bot.polaris.PermissionCatalog`),
    ``claims``, ``deliveries``), ``settings``, ``policy``, ``clock`` (returns aware UTC now) and ``wake`` (set
    by the worker: run a pass soon)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        polaris: PolarisClient,
        slack: SlackGateway,
        audit: AuditLog,
        catalog: GroupCatalog,
        policy: Policy,
        clock: Callable[[], dt.datetime],
    ):
        self.settings, self.db, self.polaris, self.slack, self.audit = settings, db, polaris, slack, audit
        self.catalog, self.policy, self.clock = catalog, policy, clock
        self.projects = ProjectCatalog(polaris, ttl=settings.group_cache_ttl)
        self.permissions = PermissionCatalog(polaris, ttl=settings.group_cache_ttl)
        self.claims = Claims(db)
        self.deliveries = DeliveryLedger(db, audit, lambda: self.clock())
        self.wake: Callable[[], None] = lambda: None


def worker_name() -> str:
    """This process's name in claims and ``claimed_by``: ``host:pid:random``."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def shared(name: str, doc: str) -> property:
    """An attribute kept on the shared :class:`Context`, so every unit sees a replacement at once."""
    return property(lambda self: getattr(self.ctx, name), lambda self, value: setattr(self.ctx, name, value), doc=doc)
