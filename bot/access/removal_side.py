"""The Polaris side of taking access away (:class:`RemovalSide`): a leave or removal (``DELETE
/v1/groups/{id}/members``) and an offboarding (GET, then one PUT of the whole user with ``groups: []`` and
``enabled: false``, names and every other property kept), and what follows in the bot's own tables.

:meth:`bot.access.execution.Execution.apply` dispatches here by kind, under the request claim and the
``user:{email}`` claim, so nothing else changes that Polaris user meanwhile. Each is idempotent: the user is
looked up first; not a member (or already disabled and in no group) is done, a user deleted in Polaris is done
quietly (the outcome says so). The last enabled Organization Admin is never removed: :class:`Refused` ends the
request failed, at apply time as at request time (:meth:`RemovalSide.last_admin_refusal`). Polaris faults
propagate (:class:`bot.polaris.PolarisError`): the apply retries them with backoff.

:meth:`RemovalSide.settle` runs in the transaction that marks the request applied: the person's live leases
end (:meth:`bot.access.lease_store.LeaseStore.end_live`, reasons ``left``, ``removed``, ``offboarded``) and an
offboarding closes the person's other open requests (state ``cancelled``); :meth:`RemovalSide.announce` then
updates their cards and tells their requesters.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json

from ..models import BOT_REQUESTER, INVITE, JOIN, LEAVE, OFFBOARD, REMOVE, AccessRequest
from ..polaris import Group, PolarisNotFound, PolarisUnavailable, User
from .authority import ORG_ADMIN
from .context import Context
from .lease_store import LeaseStore
from .notifications import Notifications
from .store import RequestStore

#: Why a lease ends when its membership is taken away, by request kind.
LEASE_REASONS = {LEAVE: "left", OFFBOARD: "offboarded"}
LAST_ADMIN = (
    "`{email}` is the last enabled {org_admin} in Polaris; removing them would leave nobody to administer the "
    "organization, so nothing was changed. Make someone else an {org_admin} first."
)


class Refused(Exception):
    """The removal must not be applied (the last enabled Organization Admin); ``str()`` is the sentence."""


class RemovalSide:
    """The Polaris calls of applying a leave, removal or offboarding; ``ctx`` gives the clients, ``store`` and
    ``notifications`` the requests an offboarding closes."""

    def __init__(self, ctx: Context, store: RequestStore, notifications: Notifications):
        self.ctx, self.store, self.notifications = ctx, store, notifications
        self.leases = LeaseStore(ctx.db)

    # ------------------------------------------------------------------------------- the last Organization Admin
    def org_admin_group(self) -> Group | None:
        """The group named Organization Admin (the cached group list), or ``None``."""
        return self.ctx.catalog.by_name(ORG_ADMIN)

    def last_admin_refusal(self, user: User, *, group_id: str | None) -> str | None:
        """Why ``user`` may not lose ``group_id`` (``None``: every group and the account, an offboarding): they
        are an enabled member of Organization Admin and no other enabled member is left. ``None`` when they
        may. Raises :class:`bot.polaris.PolarisError` when Polaris cannot say."""
        admins = self.org_admin_group()
        if admins is None or admins.id not in user.group_ids or not user.enabled:
            return None
        if group_id is not None and group_id != admins.id:
            return None
        if self.another_enabled_admin(admins.id, user.id):
            return None
        return LAST_ADMIN.format(email=user.email or user.username, org_admin=ORG_ADMIN)

    def another_enabled_admin(self, group_id: str, user_id: str) -> bool:
        """Whether a member of ``group_id`` other than ``user_id`` is enabled: the members are read page by page
        (``GET /v1/groups/{id}/members``); a member whose listing does not say ``enabled`` is read whole
        (``GET /v1/users/{id}``), stopping at the first enabled one."""
        polaris, skip = self.ctx.polaris, 0
        while True:
            page = polaris.list_members(group_id, top=100, skip=skip)
            for member in page.values:
                if member.id == user_id:
                    continue
                if "enabled" in member.raw:
                    enabled = member.enabled
                else:
                    try:
                        enabled = polaris.get_user(member.id).enabled
                    except PolarisNotFound:
                        enabled = False
                if enabled:
                    return True
            skip += len(page.values)
            if not page.values or skip >= page.count:
                return False

    # ------------------------------------------------------------------------------- apply
    def run(self, req: AccessRequest) -> tuple[str, str | None]:
        """The Polaris side of an approved leave, removal or offboarding: (outcome sentence, Polaris user ID or
        ``None`` when there is no such user). Raises :class:`Refused`, :class:`bot.polaris.PolarisError`."""
        user = self.ctx.polaris.find_user_by_email(req.target_email)
        if user is None:
            return f"There is no Polaris user {req.target_email} any more (deleted in Polaris); nothing to do.", None
        if req.kind == OFFBOARD:
            return self._offboard(req, user), user.id
        return self._remove(req, user), user.id

    @contextlib.contextmanager
    def _admin_guard(self, user: User, group_id: str | None):
        """Around the last-Organization-Admin check and the write that could make it untrue: one claim for the
        whole organization when ``user`` is an enabled Organization Admin member losing that group (or all), so
        two such removals at once (any process) cannot both pass the check. A busy claim is a transient
        failure: the apply is retried."""
        admins = self.org_admin_group()
        if admins is None or admins.id not in user.group_ids or not user.enabled or group_id not in (None, admins.id):
            yield
            return
        with self.ctx.claims.hold("org-admin-members", wait=10.0) as got:
            if not got:
                raise PolarisUnavailable(None, "Busy", f"another change to {ORG_ADMIN} is being made; retrying")
            yield

    def _remove(self, req: AccessRequest, user: User) -> str:
        group = req.group_name or req.group_id
        if req.group_id not in user.group_ids:
            return f"{req.target_email} is not a member of {group} (any more); nothing to remove."
        with self._admin_guard(user, req.group_id):
            if self.org_admin_group() is not None and req.group_id == self.org_admin_group().id:
                user = self.ctx.polaris.get_user(user.id)  # read again under the guard
            why = self.last_admin_refusal(user, group_id=req.group_id)
            if why:
                raise Refused(why)
            try:
                self.ctx.polaris.remove_members(req.group_id, [user.id])
            except PolarisNotFound:
                return f"{group} no longer exists in Polaris; {req.target_email} is in it no more."
        whose = "your" if req.kind == LEAVE else "their"
        return f"Removed {req.target_email} from {group}; {whose} other groups are unchanged."

    def _offboard(self, req: AccessRequest, user: User) -> str:
        self._check_still_deactivated(req)
        if not user.enabled and not user.groups:
            planned = self._planned_groups(req)
            if req.attempts > 0 and planned:  # an earlier attempt's PUT landed; its answer was lost
                return (
                    f"Removed {req.target_email} from every group ({', '.join(planned)}) and disabled the account; "
                    "names and everything else kept."
                )
            return f"{req.target_email} was already disabled and in no group; nothing more to do."

        def change(body: dict) -> None:
            body["groups"] = []
            body["enabled"] = False

        with self._admin_guard(user, None):
            user = self.ctx.polaris.get_user(user.id)  # read again under the guard
            why = self.last_admin_refusal(user, group_id=None)
            if why:
                raise Refused(why)
            try:
                self.ctx.polaris.update_user(user.id, change, done=lambda now: not now.enabled and not now.groups)
            except PolarisNotFound:
                return f"{req.target_email} was deleted in Polaris meanwhile; nothing to do."
        names = ", ".join(name or gid for gid, name in user.groups) or "no group"
        return (
            f"Removed {req.target_email} from every group ({names}) and disabled the account; "
            "names and everything else kept."
        )

    def _check_still_deactivated(self, req: AccessRequest) -> None:
        """An offboarding the bot opened after a Slack deactivation is applied only while that Slack account is
        still deactivated (read now). Raises :class:`Refused`."""
        if req.requester_id != BOT_REQUESTER or not req.target_slack_id:
            return
        who = self.ctx.slack.identity(req.target_slack_id)
        if who.exists and not who.deleted:
            raise Refused(
                "The Slack account is active again, so the offboarding its deactivation asked for was not applied; "
                "an admin can still `/polaris offboard` the person."
            )

    @staticmethod
    def _planned_groups(req: AccessRequest) -> list[str]:
        try:
            return [str(g) for g in (json.loads(req.plan or "{}").get("groups") or [])]
        except ValueError:
            return []

    # ------------------------------------------------------------------------------- in the bot's tables
    def settle(self, req: AccessRequest, *, session, now: dt.datetime) -> list[str]:
        """In the transaction that marks ``req`` applied: end the person's live leases (in the group, or all
        for an offboarding) and, for an offboarding, close their other open requests (compare-and-set to
        ``cancelled``, audited ``request.cancelled``). Returns the IDs of the requests closed."""
        audit, by = self.ctx.audit, req.decided_by or BOT_REQUESTER
        group_id = None if req.kind == OFFBOARD else req.group_id
        reason = LEASE_REASONS.get(req.kind, "removed")
        for lease in self.leases.end_live(req.target_email, group_id, reason=reason, by=by, now=now, session=session):
            audit.record(
                "bot",
                "lease.ended",
                request_id=req.id,
                target=req.target_email,
                session=session,
                detail=f"{lease.group_name or lease.group_id}: {reason}",
            )
        closed = []
        if req.kind != OFFBOARD:
            # Open grants of that person and group (one being retried could add them back) and other removals of
            # it are closed: the removal decided it.
            why = f"{req.target_email} was removed from {req.group_name or req.group_id} (request {req.id[:8]})"
            others = self.store.open_grants_of(
                req.target_email, req.group_id, kinds=(JOIN, INVITE, LEAVE, REMOVE), other_than=req.id, session=session
            )
        else:
            why = f"{req.target_email} was offboarded (request {req.id[:8]})"
            others = self.store.open_of_person(
                req.target_email, req.target_slack_id, other_than=req.id, session=session
            )
        for other in others:
            if self.store.close(other, by=BOT_REQUESTER, now=now, outcome=f"Closed: {why}", session=session):
                audit.record(
                    "bot",
                    "request.cancelled",
                    request_id=other.id,
                    target=other.target_email,
                    session=session,
                    detail=f"closed: {why}",
                )
                closed.append(other.id)
        return closed

    def announce(self, req: AccessRequest, closed: list[str]) -> None:
        """After :meth:`settle`: the cards of the requests an offboarding closed show it, and their requesters
        are told (not the person offboarded, nor the bot)."""
        for request_id in closed:
            self.notifications.refresh_card(request_id)
            other = self.store.get(request_id)
            if other is None:
                continue
            theirs = other.requester_id == req.target_slack_id or (
                (other.requester_email or "").lower() == req.target_email.lower()
            )
            if theirs:
                self.notifications.mark_told(other)
            else:
                self.notifications.notify_requester(other)
