"""One worker pass (:meth:`Schedule.run_due`): what is due now, done in a safe order.

Expire overdue requests, send due reminders and escalations (:mod:`bot.access.reminders`), post cards where nothing was ever tried (a crash in between), make the Slack
deliveries that are due (:mod:`bot.deliveries`), tell requesters never told the current state, prune old
``slack_events``, apply due approved requests, then the leases' work (:meth:`bot.access.leases.Leases.run_due`:
end those whose time is up, warn those about to end). Safe in any number of processes at once (claims and
compare-and-set below); one failing step is logged and never stops the pass.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from sqlalchemy import delete, select

from ..models import SlackEvent
from .context import Context
from .decisions import Decisions
from .execution import Execution
from .leases import Leases
from .notifications import Notifications
from .reminders import Reminders
from .state_messages import held_approval
from .store import RequestStore

log = logging.getLogger(__name__)


class Schedule:
    def __init__(
        self,
        ctx: Context,
        store: RequestStore,
        decisions: Decisions,
        notifications: Notifications,
        execution: Execution,
        leases: Leases,
        reminders: Reminders | None = None,
    ):
        self.ctx, self.store, self.decisions = ctx, store, decisions
        self.notifications, self.execution, self.leases = notifications, execution, leases
        self.reminders = reminders
        self._pruned_at: dt.datetime | None = None

    def run_due(self, *, limit: int = 20, stop: threading.Event | None = None) -> int:
        """One worker pass: expire overdue requests, make the Slack deliveries that are due (card posts and
        updates, DMs: :mod:`bot.deliveries`), post cards and tell requesters where nothing was ever tried (a
        crash in between), prune old ``slack_events``, apply due approved requests. Safe to run in any number
        of processes at once. Returns how many it applied."""
        now = self.ctx.clock()
        self._prune_events(now)
        work = self.store.due_work(now, limit)
        for rid in work.overdue:
            self._safely(self.decisions.expire, rid)
        if self.reminders is not None:  # before the deliveries, so a reminder's messages go out in this pass
            self._safely(self.reminders.run_due, now, limit, stop)
        for rid in work.unposted:
            self._safely(self.notifications.post_card, rid)
        applying = {rid for rid, _email in work.due}
        for row in self.ctx.deliveries.due(limit):
            if stop is not None and stop.is_set():
                break
            if row.request_id in applying and held_approval(row):  # the apply below tells its outcome instead
                continue  # (or, when it does not end, the next pass tells the approval)
            self._safely(self.notifications.deliver_due, row)
        for rid in work.untold:
            req = self.store.get(rid)
            if req is not None and req.notified_state != req.state:
                self._safely(self.notifications.notify_requester, req)
        applied = 0
        for rid, email in work.due:
            if stop is not None and stop.is_set():
                break
            if self._safely(self.execution.apply, rid, email=email):
                applied += 1
        self._safely(self.leases.run_due, self.ctx.clock(), limit, stop)
        return applied

    def _prune_events(self, now: dt.datetime) -> None:
        """Delete ``slack_events`` rows older than a day (Slack retries an event within minutes), at most
        once a minute per process and 1,000 rows a time (index ``ix_slack_events_received_at``)."""
        if self._pruned_at is not None and abs((now - self._pruned_at).total_seconds()) < 60:
            return
        self._pruned_at = now
        old = select(SlackEvent.event_id).where(SlackEvent.received_at < now - dt.timedelta(days=1)).limit(1000)
        try:
            with self.ctx.db.session() as s:
                s.execute(delete(SlackEvent).where(SlackEvent.event_id.in_(old)))
        except Exception:
            log.exception("pruning slack_events failed")

    def _safely(self, fn, *args, **kwargs):
        try:
            with self.ctx.audit.batch():  # the step's Polaris call and Slack rows in one transaction at its end
                return fn(*args, **kwargs)
        except Exception:
            log.exception("worker step %s failed for %s", getattr(fn, "__name__", fn), args)
            return None
