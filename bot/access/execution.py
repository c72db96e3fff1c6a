"""Applying an approved request in Polaris, exactly once.

:meth:`Execution.apply` takes a claim per request and then per Polaris user (two requests never change one
user at once), re-checks on what Slack and Polaris say now (:meth:`Execution._fit_to_apply`: the requester and
the person it is for still active; a group privileged since needs its Organization Admin approvals, else the
request goes back to pending), then does the Polaris side: the user looked up by email before being created, an
existing membership counts as done, a password reset sent once. A create or reset whose answer was lost is
never sent again blindly: its start and answer are committed around the write, and a resumed apply waits out
the write's time budget and looks in Polaris first (:mod:`bot.access.polaris_side`). Transient failures are
retried with backoff (``next_attempt_at``); the rest end the request failed (Retry puts it back).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random

from .. import privilege, views
from ..audit import audit_context
from ..models import (
    APPLIED,
    APPROVED,
    DELETE_GROUP,
    EDIT_GROUP,
    FAILED,
    GROUP_CHANGES,
    INVITE_MANY,
    LEAVE,
    OFFBOARD,
    PENDING,
    REMOVALS,
    RESET_PASSWORD,
    UPDATE_USER,
    AccessRequest,
)
from ..polaris import Group, PolarisError, PolarisNotFound, PolarisUnavailable
from ..redact import redact
from ..slack import SlackError
from .approvers import Approvers
from .authority import ORG_ADMIN, barred_reason
from .bulk_side import BulkSide
from .context import Context
from .group_side import GroupSide
from .leases import Leases
from .notifications import Notifications
from .polaris_side import NotConfirmed, PolarisSide
from .removal_side import Refused, RemovalSide
from .store import RequestStore
from .user_side import UserSide

log = logging.getLogger(__name__)

APPLY_BACKOFF_BASE = 5.0  # seconds before the 2nd apply attempt; doubles each time
APPLY_BACKOFF_MAX = 300.0


class Execution:
    def __init__(
        self,
        ctx: Context,
        store: RequestStore,
        approvers: Approvers,
        notifications: Notifications,
        worker_name: str,
        leases: Leases,
    ):
        self.ctx, self.store, self.approvers, self.notifications = ctx, store, approvers, notifications
        self.worker_name, self.leases = worker_name, leases
        self.side = PolarisSide(ctx, store)
        self.removals = RemovalSide(ctx, store, notifications)  # leave, remove, offboard (by kind)
        self.groups = GroupSide(ctx, store)  # create_group, edit_group, delete_group
        self.bulk = BulkSide(ctx, store)  # invite_many
        self.users = UserSide(ctx, self.removals)  # update_user

    def apply(self, request_id: str, *, quiet: bool = False, email: str | None = None) -> bool:
        """Apply one approved request in Polaris if this worker can claim it. True when it ended applied.
        ``quiet``: the requester is answered by the caller (a leave, applied in the command's own work), so
        no DM tells them it was applied. ``email``: the one it is for, when the caller read it (else read here).

        Idempotent: safe to run again after a crash at any point."""
        ctx, store = self.ctx, self.store
        target = email or getattr(store.get(request_id), "target_email", None)
        if target is None:
            return False
        # One claim per request, then one per Polaris user: two requests never change the same user at once
        # (a password reset's GET-change-PUT would otherwise erase a membership added in between). The user
        # claim is only tried by the holder of the request claim, so a worker that lost the request cannot
        # block the one that won it.
        with contextlib.ExitStack() as claims:
            if not claims.enter_context(ctx.claims.hold(request_id)):
                return False
            if not claims.enter_context(ctx.claims.hold(f"user:{target.lower()}")):
                return False
            req, settled = self._take(request_id)
            if req is None:
                return False
            if settled is not None:
                ctx.audit.record(
                    "bot",
                    "apply.wait_for_write",
                    request_id=req.id,
                    detail=f"an earlier write's answer was lost; looking in Polaris at {settled:%H:%M:%S} UTC",
                )
                return False
            ctx.audit.record(
                "bot", "apply.start", request_id=req.id, target=req.target_email, detail=f"attempt {req.attempts + 1}"
            )
            try:
                with audit_context("bot", req.id):
                    if not self._fit_to_apply(req):
                        return False
                    outcome, polaris_user_id = self._run_side(req)
            except (PolarisError, SlackError) as e:
                return self._apply_failed(req, e)
            except Refused as e:  # the last enabled Organization Admin: never removed
                self._apply_refused(req, str(e))
                return False
            except NotConfirmed as e:
                self._apply_refused(req, str(e), action="apply.failed", outcome="error", write_started_at=None)
                return False
            except Exception as e:  # a bug: record it, do not lose the request
                log.exception("apply of %s crashed", req.id)
                return self._apply_failed(req, PolarisError(None, "InternalError", type(e).__name__))
            recorded = self._record_applied(req, outcome, polaris_user_id, quiet)
            if recorded is None:
                return False
        self._after_applied(req, *recorded)
        return True

    def _take(self, request_id: str) -> tuple[AccessRequest | None, dt.datetime | None]:
        """Under the request's claim, in one transaction: the request read fresh and, when it is due, taken for
        an attempt (``claimed_by``, ``attempts`` + 1): (request as read before, None); (request, when the write
        in doubt settles): an earlier write's answer was lost and it waits till then; (None, None): not due."""
        with self.ctx.db.session() as s:
            req, now, store = self.store.get(request_id, session=s), self.ctx.clock(), self.store
            if req is None or req.state != APPROVED or (req.next_attempt_at and req.next_attempt_at > now):
                return None, None
            s.expunge(req)  # the caller keeps the request as read (its attempt count before this one)
            settled = self.side.write_settled_at(req)
            if settled is not None and settled > now:
                # An earlier attempt (maybe a process that died) sent a write and never heard whether it landed;
                # it may still land. Nothing is sent, nor looked for, before its time budget is over.
                store.update(req.id, session=s, next_attempt_at=settled, claimed_by=None)
                return req, settled
            store.update(req.id, session=s, claimed_by=self.worker_name, attempts=req.attempts + 1, updated_at=now)
            return req, None

    def _run_side(self, req: AccessRequest) -> tuple[str, str]:
        """The Polaris calls of ``req``: a removal's (:mod:`bot.access.removal_side`), or a grant's or reset's
        (:mod:`bot.access.polaris_side`, a time-bound grant writing its pending lease just before the add)."""
        if req.kind in REMOVALS:
            return self.removals.run(req)
        if req.kind in GROUP_CHANGES:
            return self.groups.run(req)
        if req.kind == INVITE_MANY:
            return self.bulk.run(req)
        if req.kind == UPDATE_USER:
            return self.users.run(req)
        return self.side.run(req, before_add=lambda: self.leases.before_add(req))

    def _record_applied(self, req: AccessRequest, outcome: str, polaris_user_id: str | None, quiet) -> tuple | None:
        """Mark ``req`` applied in one transaction with its lease (:meth:`Leases.settle`) or its removal's
        bookkeeping (:meth:`RemovalSide.settle`), audited, its requester's messages owed (``quiet``: the thread's).
        Returns (the requests closed, the request as applied, the leases whose end is owed an announcement, what
        was owed), read in that transaction, or ``None`` when the request was no longer approved (nothing written)."""
        ctx, store = self.ctx, self.store
        with ctx.db.session() as s:
            applied_at = ctx.clock()
            lease_part = self.leases.settle(req, applied_at=applied_at, polaris_user_id=polaris_user_id, session=s)
            outcome = f"{outcome} {lease_part}".strip()
            changed = store.update(
                req.id,
                session=s,
                expect=APPROVED,
                state=APPLIED,
                outcome=outcome,
                polaris_user_id=polaris_user_id,
                applied_at=applied_at,
                updated_at=applied_at,
                claimed_by=None,
                open_key=None,
            )
            if not changed:  # no longer approved (cannot happen under the claim): keep the lease as it was
                s.rollback()
                return None
            ctx.audit.record("bot", "apply.done", request_id=req.id, target=req.target_email, detail=outcome, session=s)
            # A deleted group's open requests are closed; so are an offboarding's.
            settle = self.groups.settle if req.kind in GROUP_CHANGES else self.removals.settle
            closed = settle(req, session=s, now=ctx.clock()) if req.kind in GROUP_CHANGES + REMOVALS else []
            owed = [] if req.kind == RESET_PASSWORD else self.leases.leases.owed_announcements_of(req.target_email, s)
            done = store.get(req.id, session=s)
            return closed, done, owed, self.notifications.owe_told(done, quiet=quiet, session=s)

    def _after_applied(self, req: AccessRequest, closed: list[str], done: AccessRequest, owed: list, told) -> None:
        """Once ``req`` is applied: the group list read again, the card updated, what the applying transaction
        owed sent (``told``), and the cards and requesters of the requests an offboarding ``closed``."""
        if req.kind != RESET_PASSWORD:
            self.ctx.catalog.invalidate()  # a membership changed: `groups` member counts are read again
        self.notifications.refresh_card(req.id, current=done, carry=not told.sends)
        self.notifications.send_told(told)
        self.removals.announce(req, closed)
        if req.kind == EDIT_GROUP:  # the open requests for the group: their cards show what it grants now
            for other in self.groups.open_of_group(req):
                self.notifications.refresh_card(other.id)
        if req.kind == INVITE_MANY:  # each person given the membership is told, as a one-person invite's
            self.bulk.announce(done, self.notifications)
        for lease_id in owed:  # the cards of the grants whose leases it ended (or made permanent)
            self.leases.ends.announce(lease_id)

    def _fit_to_apply(self, req: AccessRequest) -> bool:
        """The checks made just before a request is applied, on what Slack and Polaris say now (no cache).

        - The requester and the person it is for (when they have a Slack account) are re-read with
          ``users.info``: a deactivated, guest or bot account ends the request failed (:meth:`_apply_refused`).
        - The group is re-read (``GET /v1/groups/{id}``): when it is privileged now (:mod:`bot.privilege`) and
          the request lacks the approvals that needs (at least two, each by an Organization Admin member in
          Polaris, checked now), it goes back to pending for them (:meth:`_hold_for_approvals`).

        A leave, removal or offboarding takes access away: nobody's Slack account is checked (removing a
        deactivated person is the point), and a leave or offboarding has no group to re-check.

        True when it may be applied. Raises :class:`PolarisError` / :class:`SlackError` when a check cannot be
        made (the apply is retried later)."""
        if req.kind in (LEAVE, OFFBOARD):
            return True
        people = [] if req.kind in REMOVALS else [(req.requester_id, "The requester's")]
        if req.target_slack_id and req.target_slack_id != req.requester_id and req.kind not in (*REMOVALS, UPDATE_USER):
            people.append((req.target_slack_id, "The Slack account of the person it is for"))
        for slack_id, whose in people:
            why = barred_reason(self.ctx.slack.identity(slack_id), whose)  # max_age 0: read now
            if why:
                self._apply_refused(
                    req,
                    f"{why} Nothing was changed in Polaris: access is not given to deactivated, guest or bot accounts.",
                )
                return False
        try:
            group = self.approvers.request_group(req)
        except PolarisNotFound:
            if req.kind in (*REMOVALS, DELETE_GROUP):  # the group is gone (and the membership with it): done
                return True
            raise
        if not self.approvers.is_privileged(group):
            return True
        required = self.approvers.approvals_required(req, group)
        approvers = self.store.approver_ids(req.id)
        valid = [a for a in approvers if self.approvers.authority(a, req, approving=False, group=group) is None]
        if len(valid) >= required:
            return True
        self._hold_for_approvals(req, group, required, valid, [a for a in approvers if a not in valid])
        return False

    def _apply_refused(
        self, req: AccessRequest, reason: str, *, action: str = "apply.refused", outcome: str = "refused", **values
    ) -> None:
        """End an approved request failed for ``reason`` (a sentence for people), without retrying: audited
        (``action``, ``outcome``), the card updated, the requester told. ``values``: more columns to set."""
        with self.ctx.db.session() as s:
            self.store.update(
                req.id,
                session=s,
                expect=APPROVED,
                state=FAILED,
                outcome=reason,
                updated_at=self.ctx.clock(),
                claimed_by=None,
                open_key=None,
                **values,
            )
            self.ctx.audit.record(
                "bot", action, request_id=req.id, target=req.target_email, outcome=outcome, detail=reason, session=s
            )
        self.notifications.refresh_card(req.id)
        self.notifications.notify_requester(self.store.get(req.id))

    def _hold_for_approvals(
        self, req: AccessRequest, group: Group, required: int, valid: list[str], revoked: list[str]
    ) -> None:
        """Send an approved request whose group became privileged back to pending, not applied: it now needs
        ``required`` approvals by Organization Admin members; the approvals of ``revoked`` approvers no longer
        count. Audited (``apply.held``), the card shows the buttons again, the requester is told."""
        ctx = self.ctx
        now = ctx.clock()
        grants = ", ".join(privilege.privileged_grants(group)) or ORG_ADMIN
        rule = self.approvers.rule_for(req.group_name)
        expires = max(req.expires_at, now + dt.timedelta(seconds=rule.ttl))
        with ctx.db.session() as s:
            changed = self.store.update(
                req.id,
                session=s,
                expect=APPROVED,
                state=PENDING,
                approvals_required=required,
                decided_by=None,
                decided_at=None,
                next_attempt_at=None,
                claimed_by=None,
                attempts=0,
                outcome=None,
                updated_at=now,
                expires_at=expires,
            )
            if not changed:
                return
            ctx.deliveries.supersede(req.id, ("state:",), session=s)  # a held "approved" reply is no longer true
            for gone in revoked:
                self.store.revoke_approval(req.id, gone, session=s)
                ctx.audit.record(
                    gone,
                    "approval.revoked",
                    request_id=req.id,
                    session=s,
                    outcome="refused",
                    detail=f"not an {ORG_ADMIN} member, and the group now grants {grants}",
                )
            ctx.audit.record(
                "bot",
                "apply.held",
                request_id=req.id,
                target=req.target_email,
                outcome="refused",
                session=s,
                detail=f"group now privileged ({grants}); needs {required} approvals by "
                f"{ORG_ADMIN} members, has {len(valid)}",
            )
        self.notifications.refresh_card(req.id)
        self.notifications.dm(  # through the delivery ledger: retried, and ADMINS told if Slack refuses it
            req.id,
            req.requester_id,
            f"held:{required}",
            f"Your request for {views.kind_phrase(req)} was not applied yet: *{views.esc(group.name)}* now "
            f"grants {views.esc(grants)} in Polaris, so it needs {required} approvals by {ORG_ADMIN} "
            f"members ({len(valid)} so far). It is back with the approvers (request `{req.id[:8]}`).",
        )

    def _apply_failed(self, req: AccessRequest, error: PolarisError | SlackError) -> bool:
        ctx = self.ctx
        attempts = req.attempts + 1
        now = ctx.clock()
        max_attempts = ctx.settings.polaris_max_attempts
        if isinstance(error, SlackError):  # a check before applying could not be made: retried like Polaris
            error = PolarisUnavailable(None, "SlackUnavailable", f"Slack did not answer ({error.error})")
        plain = error.plain()
        unknown = getattr(error, "outcome_unknown", False)
        # A write whose answer was lost may have landed: even after the last attempt, one more looks (once it
        # has landed or never will) before the request is called failed.
        if error.transient and attempts < max_attempts + (1 if unknown else 0):
            delay = min(APPLY_BACKOFF_MAX, APPLY_BACKOFF_BASE * 2 ** (attempts - 1)) * random.uniform(0.8, 1.2)
            delay = max(delay, min(error.retry_after or 0.0, 3600.0))  # Polaris asked us to wait longer
            settled = self.side.write_settled_at(self.store.get(req.id) or req) if unknown else None
            if settled is not None:  # a write whose answer was lost: not before it has landed or never will
                delay = max(delay, (settled - now).total_seconds())
            self.store.set(
                req.id,
                next_attempt_at=now + dt.timedelta(seconds=delay),
                claimed_by=None,
                outcome=redact(f"{plain}; will retry (attempt {attempts} of {max_attempts})"),
            )
            ctx.audit.record(
                "bot",
                "apply.retry_later",
                request_id=req.id,
                outcome="error",
                detail=f"{error.label}; next in {delay:.0f}s",
            )
            self.notifications.refresh_card(req.id)
            return False
        if isinstance(error, PolarisError) and error.status in (401, 403):
            key = "check POLARIS_API_KEY and its AdministerUsers permission"
            log.error("Polaris refused the bot's API key (%s %s): %s", error.status, error.code, key)
        with ctx.db.session() as s:
            self.store.update(
                req.id,
                session=s,
                expect=APPROVED,
                state=FAILED,
                outcome=redact(plain),
                updated_at=now,
                claimed_by=None,
                open_key=None,
            )
            ctx.audit.record(
                "bot",
                "apply.failed",
                request_id=req.id,
                target=req.target_email,
                outcome="error",
                detail=f"{error.label}: {error.message}",
                session=s,
            )
        self.notifications.refresh_card(req.id)
        failed = self.store.get(req.id)
        self.notifications.notify_requester(failed)
        if req.kind == INVITE_MANY:  # those it did give the membership before Polaris refused another are told
            self.bulk.announce(failed, self.notifications)
        return False
