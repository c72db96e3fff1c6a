"""The Polaris side of applying an approved request (:class:`PolarisSide`), and what makes it safe to run again.

The user is looked up by email before being created, an existing membership counts as done, and a password
reset is sent once. A create (``POST /v1/users``) or reset PUT whose answer was lost is never sent again
blindly: its start and answer are committed around the write (``write_started_at``, ``write_answered_at``),
and a resumed apply waits out the write's time budget (:data:`WRITE_SETTLE_MARGIN`, see
:meth:`PolarisSide.write_settled_at`) and looks in Polaris first.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Callable

from ..models import RESET_PASSWORD, AccessRequest
from ..polaris import PolarisAuthError, PolarisConflict, PolarisError, PolarisNotFound, PolarisUnavailable
from .context import Context
from .store import RequestStore

log = logging.getLogger(__name__)

#: How far Polaris's clock may be from ours when its audit events prove that a reset PUT landed.
RESET_EVENT_SKEW = dt.timedelta(seconds=60)
#: Seconds, beyond the Polaris read timeout, after which a write sent with its answer lost has either landed or
#: never will; only then is Polaris asked whether it landed (and the write sent again if not).
WRITE_SETTLE_MARGIN = 30.0
RESET_NOT_CONFIRMED = (
    "The password reset may not have been sent: Polaris did not answer in time and I could not "
    "confirm it; press Retry to send it again"
)


class NotConfirmed(Exception):
    """A write whose answer was lost could not be proven to have landed; ends the request failed."""


class PolarisSide:
    """The Polaris calls of one apply; ``ctx`` gives the client and clock, ``store`` records the write brackets."""

    def __init__(self, ctx: Context, store: RequestStore):
        self.ctx, self.store = ctx, store

    def run(self, req: AccessRequest, *, before_add: Callable[[], None] | None = None) -> tuple[str, str]:
        """The Polaris side of an approved request; returns (outcome sentence, Polaris user ID).
        ``before_add`` runs just before the membership is written (the user created with it, or added): a
        time-bound grant records its pending lease there (:meth:`bot.access.leases.Leases.before_add`)."""
        if req.kind == RESET_PASSWORD:
            return self._apply_reset(req)
        before_add = before_add or (lambda: None)
        polaris, store = self.ctx.polaris, self.store
        group_label = req.group_name or req.group_id
        user = polaris.find_user_by_email(req.target_email)
        if user is None:
            before_add()
            # Committed before the POST: a resumed apply (any process) waits out its time budget and looks the
            # user up before creating it again (see apply).
            store.set(req.id, write_started_at=self.ctx.clock(), write_answered_at=None)
            try:
                user = polaris.create_user(
                    req.target_email,
                    first_name=req.target_first_name,
                    last_name=req.target_last_name,
                    group_ids=[req.group_id],
                )
                store.set(req.id, write_answered_at=self.ctx.clock())
                return f"Created Polaris user {req.target_email} in {group_label}.", user.id
            except PolarisConflict:
                user = polaris.find_user_by_email(req.target_email)  # created meanwhile (an earlier attempt)
                if user is None:
                    raise
            except PolarisUnavailable as e:
                # The create may have landed even though the answer was lost: look now (and again, once its
                # time budget is over, before any new POST).
                user = polaris.find_user_by_email(req.target_email)
                if user is None:
                    if not e.outcome_unknown:  # refused before it was processed (429): nothing in flight
                        store.set(req.id, write_started_at=None)
                    raise
        if req.group_id in user.group_ids:
            return f"{req.target_email} is a member of {group_label}.", user.id
        before_add()
        polaris.add_members(req.group_id, [user.id])
        return f"Added {req.target_email} to {group_label}; their other groups are unchanged.", user.id

    def write_settled_at(self, req: AccessRequest) -> dt.datetime | None:
        """When a write this request sent, with its answer lost, has either landed or never will (its start +
        the Polaris read timeout + :data:`WRITE_SETTLE_MARGIN`); ``None`` when no such write is in doubt."""
        if req.write_started_at is None or req.write_answered_at is not None:
            return None
        return req.write_started_at + dt.timedelta(seconds=self.ctx.polaris.read_timeout + WRITE_SETTLE_MARGIN)

    def _apply_reset(self, req: AccessRequest) -> tuple[str, str]:
        """A password reset: done when THIS request's PUT is proven to have landed, never because
        ``UPDATE_PASSWORD`` is merely present (every new account has it pending).

        ``write_started_at`` is committed just before the PUT is sent (after its fresh GET), with whether the
        action was already pending (``write_had_update_password``); ``write_answered_at`` when the PUT got its
        200. A resumed apply with a PUT started and not answered (and its time budget over, see :meth:`apply`)
        decides from Polaris: the action absent before and present now, or a ``USER_PASSWORD_RESET`` event of
        Polaris's own audit events since the PUT, proves it landed; otherwise the request fails saying the email
        may not have been sent (Retry sends it again). Raises :class:`PolarisError`."""
        polaris, store, clock = self.ctx.polaris, self.store, self.ctx.clock
        sent = f"Polaris will email {req.target_email} a link to set a new password."
        user = polaris.find_user_by_email(req.target_email)
        if user is None:
            raise PolarisNotFound(404, "ObjectNotFound", f"no Polaris user {req.target_email}")
        if req.write_started_at is not None:
            if req.write_answered_at is not None:  # the PUT got its 200; the apply stopped before recording it
                return sent, user.id
            if self._reset_landed(req, user.id):
                store.set(req.id, write_answered_at=clock())
                self.ctx.audit.record(
                    "bot",
                    "apply.write_confirmed",
                    request_id=req.id,
                    target=req.target_email,
                    detail="the password-reset PUT whose answer was lost had landed",
                )
                return sent, user.id
            raise NotConfirmed(RESET_NOT_CONFIRMED)

        def before_put(current) -> None:
            store.set(
                req.id,
                write_started_at=clock(),
                write_answered_at=None,
                write_had_update_password="UPDATE_PASSWORD" in current.actions,
            )

        try:
            polaris.request_password_reset(user.id, before_put=before_put)
        except PolarisError as e:
            if not getattr(e, "outcome_unknown", False):  # not sent, or answered with a refusal: nothing landed
                store.set(req.id, write_started_at=None, write_had_update_password=None)
            raise
        store.set(req.id, write_answered_at=clock())
        return sent, user.id

    def _reset_landed(self, req: AccessRequest, user_id: str) -> bool:
        """Whether the reset PUT this request sent (answer lost) landed, from what Polaris says now."""
        polaris = self.ctx.polaris
        current = polaris.get_user(user_id)
        if req.write_had_update_password is False and "UPDATE_PASSWORD" in current.actions:
            return True  # absent in the GET before the PUT, present now
        since = req.write_started_at - RESET_EVENT_SKEW  # allow for clock skew between us and Polaris
        # ...but never so far back that an earlier reset of the same user would count as this one's.
        earlier = self.store.last_reset_answered(req.target_email, before=req.write_started_at, other_than=req.id)
        if earlier is not None:
            since = max(since, earlier + RESET_EVENT_SKEW)
        try:
            events = polaris.list_audit_events(type="USER_PASSWORD_RESET", user=user_id, since=since)
        except (PolarisAuthError, PolarisNotFound) as e:  # no AccessAuditLogs on the key: cannot prove it
            log.warning("Polaris audit events unreadable (%s); reset of request %s not confirmed", e.status, req.id)
            return False
        return any(e.type == "USER_PASSWORD_RESET" and e.concerns(user_id) for e in events)
