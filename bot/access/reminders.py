"""Reminders and escalation of pending requests (the worker's pass calls :meth:`Reminders.run_due`).

- A pending request reminds its approvers every ``remind_after`` (the policy, per group or in ``[defaults]``;
  4 hours by default), at most ``max_reminders`` times (2 by default): a reply in the card's thread and a DM
  (with the decision buttons) to each approver named individually (user IDs in the rule, the manager, the
  environment's APPROVERS and ADMINS when the rule names nobody, and once escalated the ``escalate_to`` users),
  except those who approved already.
- After ``escalate_after`` it is escalated once: ``escalate_to`` (users and user groups) become approvers too
  (:meth:`bot.access.approvers.Approvers.approver_ids`, under the same authority checks), the card says
  "Escalated to …", the thread says so and the users named get a DM with the buttons.

The schedule is in the request row (``remind_at``, ``reminders_sent``, ``escalate_at``; revision 0008), set when
the request is made (:func:`first_nudges`), so it survives restarts. Each step is a compare-and-set on those
columns (:meth:`bot.access.store.RequestStore.take_reminder`), so with several processes each reminder is taken
once; the messages are delivery-ledger rows (keys ``remind:<n>``, ``escalated``), sent once and retried. Nothing
is sent once the request is decided, cancelled or expired: the due queries want it pending and unexpired, and a
decision supersedes what the ledger has not sent yet (:data:`bot.access.state_messages.NUDGE_KEYS`). Audited:
``request.reminded``, ``request.escalated``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re

from .. import durations, views
from ..models import ADMIN_DECIDED, PENDING, AccessRequest
from ..policy import MANAGER, Rule
from ..slack import SlackError
from .approvers import Approvers
from .context import Context
from .notifications import Notifications
from .store import RequestStore

log = logging.getLogger(__name__)
_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")


def first_nudges(rule: Rule, now: dt.datetime) -> dict:
    """The schedule columns of a request made ``now`` under ``rule``: its first reminder and its escalation."""
    return {
        "remind_at": now + dt.timedelta(seconds=rule.remind_after) if rule.max_reminders else None,
        "reminders_sent": 0,
        "escalate_at": now + dt.timedelta(seconds=rule.escalate_after) if rule.escalate_after else None,
    }


class Reminders:
    """The worker's reminders and escalations of pending requests (see the module's docstring)."""

    def __init__(self, ctx: Context, store: RequestStore, approvers: Approvers, notifications: Notifications):
        self.ctx, self.store, self.approvers, self.notifications = ctx, store, approvers, notifications

    def run_due(self, now: dt.datetime, limit: int, stop=None) -> int:
        """Send the reminders and escalations due at ``now`` (at most ``limit`` of each). Returns how many."""
        done, (escalations, reminders) = 0, self.store.due_nudges(now, limit)
        for rid in escalations:
            done += bool(self._safely(self.escalate, rid))
        for rid in reminders:
            if stop is not None and stop.is_set():
                break
            done += bool(self._safely(self.remind, rid))
        return done

    # ------------------------------------------------------------------------------- reminders
    def remind(self, request_id: str) -> bool:
        """Send the request's due reminder, if this caller takes it. True when it did."""
        req, now = self.store.get(request_id), self.ctx.clock()
        if req is None or req.state != PENDING or req.remind_at is None or req.remind_at > now:
            return False
        if req.expires_at <= now:
            return False
        rule = self.approvers.rule_of(req)
        n = (req.reminders_sent or 0) + 1
        if n > rule.max_reminders:  # the policy allows fewer than were planned
            self.store.stop_reminders(req.id, expected_at=req.remind_at)
            return False
        step = dt.timedelta(seconds=rule.remind_after)
        next_at = max(req.remind_at + step, now + step)  # a worker that was down sends one, not a burst
        if n >= rule.max_reminders or next_at >= req.expires_at:
            next_at = None
        if not self.store.take_reminder(req.id, expected_at=req.remind_at, sent=n - 1, next_at=next_at, now=now):
            return False  # another process took it, or the request was decided
        self.ctx.audit.record(
            "bot", "request.reminded", request_id=req.id, detail=f"reminder {n} of {rule.max_reminders}"
        )
        channel = req.approval_channel or self.ctx.settings.approval_channel
        thread, dm, blocks = views.approvals.reminder(req, n, rule.max_reminders, now, channel)
        self.notifications.threads.reply(req.id, f"remind:{n}", thread)
        for uid in sorted(self.individuals(req, rule)):
            self.notifications.dm(req.id, uid, f"remind:{n}", dm, blocks=blocks)
        self.notifications.refresh_card(req.id)
        return True

    def individuals(self, req: AccessRequest, rule: Rule) -> set[str]:
        """The approvers named individually who have not approved yet (never the requester nor the person it
        is for): the rule's user IDs and the manager, else the environment's APPROVERS and ADMINS; once
        escalated, the users of ``escalate_to``."""
        ids = {a for a in rule.approvers if _USER.match(a)}
        if req.manager_id and MANAGER in rule.approvers:
            ids.add(req.manager_id)
        if not [a for a in rule.approvers if a != MANAGER] and not ids:
            # Nobody named: those who may decide it (an offboarding: ADMINS only, never every approver).
            ids = set(self.ctx.settings.admins if req.kind in ADMIN_DECIDED else self.ctx.settings.deciders)
        if req.escalated_at:
            ids |= {a for a in rule.escalate_to if _USER.match(a)}
        ids -= set(self.store.approver_ids(req.id)) | {req.requester_id, req.target_slack_id}
        return {a for a in ids if self._may_act(a)}

    def _may_act(self, user_id: str) -> bool:
        """No reminder or escalation DM (with the request's details and buttons) to a guest, bot or deactivated
        account: the authority checks would refuse its click anyway (read with the 60 s identity cache)."""
        try:
            return not self.ctx.slack.identity(user_id, max_age=60).barred
        except SlackError:
            return True  # Slack cannot say now: the DM is tried; a click is checked anyway

    # ------------------------------------------------------------------------------- escalation
    def escalate(self, request_id: str) -> bool:
        """Escalate the request to the rule's ``escalate_to`` once its time has come, if this caller takes it."""
        req, now = self.store.get(request_id), self.ctx.clock()
        if req is None or req.state != PENDING or req.escalate_at is None or req.escalate_at > now:
            return False
        if req.expires_at <= now:
            return False
        rule = self.approvers.rule_of(req)
        to = rule.escalate_to
        if not self.store.take_escalation(req.id, expected_at=req.escalate_at, now=now, escalate=bool(to)) or not to:
            return False
        waited = durations.describe((now - req.created_at).total_seconds())
        self.ctx.audit.record(
            "bot",
            "request.escalated",
            request_id=req.id,
            detail=f"to {', '.join(to)} after {waited} without a decision",
        )
        req = self.store.get(req.id)
        channel = req.approval_channel or self.ctx.settings.approval_channel
        thread, dm, blocks = views.approvals.escalation(req, to, now, channel)
        self.notifications.refresh_card(req.id)
        self.notifications.threads.reply(req.id, "escalated", thread)
        for uid in sorted({a for a in to if _USER.match(a)} - {req.requester_id, req.target_slack_id}):
            if self._may_act(uid):  # never a guest's, bot's or deactivated account's DM
                self.notifications.dm(req.id, uid, "escalated", dm, blocks=blocks)
        return True

    @staticmethod
    def _safely(fn, *args):
        try:
            return fn(*args)
        except Exception:
            log.exception("reminder step failed for %s", args)
            return None
