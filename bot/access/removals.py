"""Taking access away, and withdrawing a request: ``leave``, ``remove``, ``offboard``, ``cancel``, and the
offboarding card the bot opens when a Slack account is deactivated (``user_change`` with ``deleted: true``).

- ``leave <group>``: less access needs no approval. Saved as a leave request already approved (decided by the
  requester, audited ``decision.self_service``) and applied at once in the command's own work
  (:meth:`bot.access.execution.Execution.apply`); the answer is the outcome. No card. The worker's resume of
  approved requests covers a crash.
- ``remove <email | @user> <group> [reason]``: a removal request decided by the group's approvers, with the
  same authority checks as a grant (a privileged group needs two Organization Admin members).
- ``offboard <email | @user> [reason]``: admins only; decided by the ``[offboard]`` policy's approvers, else
  ADMINS; never by the requester nor the person offboarded. Its card lists what it takes away (``plan``).
- ``cancel <request id>`` (and the Cancel button of ``status`` and the App Home): the requester withdraws a
  pending request; the card says "Cancelled by ...", its buttons go, later clicks are refused.

Each checks first that there is something to take away (a Polaris member, an enabled account): otherwise it is
refused and nothing is saved. The last enabled Organization Admin is refused here and again when applied
(:meth:`bot.access.removal_side.RemovalSide.last_admin_refusal`). Refusals are :class:`bot.commands.UsageError`.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

from sqlalchemy.exc import IntegrityError

from .. import privilege, views
from ..commands import Target, UsageError, check_reason, clean
from ..models import (
    APPLIED,
    APPROVED,
    BOT_REQUESTER,
    DENIED,
    FAILED,
    LEAVE,
    OFFBOARD,
    PENDING,
    REMOVE,
    AccessRequest,
)
from ..polaris import Group, PolarisError, User
from ..slack import SlackError, SlackIdentity
from .asking import card_reply
from .approvers import Approvers
from .cancels import Cancels
from .context import Context
from .execution import Execution
from .notifications import Notifications
from .queries import Queries
from .reminders import first_nudges
from .reply import Reply
from .store import RequestStore

DEACTIVATED_REASON = "Their Slack account was deactivated."


class Removals:
    def __init__(
        self,
        ctx: Context,
        store: RequestStore,
        queries: Queries,
        approvers: Approvers,
        notifications: Notifications,
        execution: Execution,
    ):
        self.ctx, self.store, self.queries, self.approvers = ctx, store, queries, approvers
        self.notifications, self.execution = notifications, execution
        self.side = execution.removals
        self.cancels = Cancels(ctx, store, notifications)

    # ------------------------------------------------------------------------------- checks
    def _requester(self, user_id: str) -> SlackIdentity:
        return self.queries.active_requester(user_id)

    def _member(self, email: str, group: Group, *, yours: bool) -> User:
        """The Polaris user ``email``, a member of ``group``; else :class:`UsageError` (nothing to take away)."""
        user = self.ctx.polaris.find_user_by_email(email)
        if user is None or group.id not in user.group_ids:
            who = "You are" if yours else f"`{email}` is"
            raise UsageError(f"{who} not a member of *{group.name}* in Polaris, so there is nothing to remove.")
        return user

    def _check_open(self, requester_id: str, kind: str, email: str, group_id: str | None) -> None:
        """The open-request limit of the requester (not the bot; never for a leave: taking your own access
        away is never blocked), and an open request for the same removal."""
        if requester_id != BOT_REQUESTER and kind != LEAVE:
            n = self.store.count_open(requester_id)
            if n >= self.ctx.settings.max_open_requests:
                raise UsageError(f"You already have {n} open requests; wait for a decision or see `/polaris status`.")
        dup = self.store.open_duplicate(kind, email, group_id)
        if dup is not None:
            raise UsageError(
                f"There is already an open request for that: {views.kind_phrase(dup)} (request `{dup.id[:8]}`, "
                f"{views.STATE_LABEL.get(dup.state, dup.state).lower()})."
            )

    # ------------------------------------------------------------------------------- leave
    def leave(self, user_id: str, rest: str) -> Reply:
        """``leave <group> [reason]``: removes the requester from the group at once (no approval)."""
        identity = self._requester(user_id)
        group, reason = self.queries.group_and_rest(rest)
        reason = check_reason(clean(reason, limit=None))
        email = identity.email.lower()  # type: ignore[union-attr]
        user = self._member(email, group, yours=True)
        why = self.side.last_admin_refusal(user, group_id=group.id)
        if why:
            raise UsageError(why)
        self._check_open(user_id, LEAVE, email, group.id)
        now = self.ctx.clock()
        req = self._new(LEAVE, identity.id, identity.email, email, user_id, group, reason, polaris_user_id=user.id)
        req.state, req.decided_by, req.decided_at = APPROVED, user_id, now
        self._save(req, user_id, f"leave {group.name}", self_service=True)
        self.execution.apply(req.id, quiet=True)  # applied now, in this command's work
        req = self.store.get(req.id)
        ref = f"(request `{req.id[:8]}`)"
        if req.state == APPLIED:
            return Reply(f":white_check_mark: {views.outcome_text(req)} {ref}")
        if req.state == FAILED:
            return Reply(f":x: I could not remove you from *{views.esc(group.name)}*: {views.outcome_text(req)} {ref}")
        return Reply(  # Polaris did not answer (retried with backoff), or a worker took it first
            f":hourglass: Your leaving *{views.esc(group.name)}* is being applied in Polaris; I will message you "
            f"when it is done {ref}."
        )

    # ------------------------------------------------------------------------------- remove
    def remove(self, user_id: str, target: Target, rest: str) -> Reply:
        """``remove <email | @user> <group> [reason]``: a removal request for the group's approvers."""
        identity = self._requester(user_id)
        email = self.queries.email_for(user_id, target)
        if target.user_id == user_id or email == (identity.email or "").lower():
            raise UsageError("To leave a group yourself: `/polaris leave <group>` (no approval needed).")
        group, reason = self.queries.group_and_rest(rest)
        reason = check_reason(clean(reason, limit=None))
        user = self._member(email, group, yours=False)
        why = self.side.last_admin_refusal(user, group_id=group.id)
        if why:
            raise UsageError(why)
        self._check_open(user_id, REMOVE, email, group.id)
        target_id = target.user_id or self.ctx.slack.user_id_for_email(email)
        rule = self.approvers.rule_for(group.name)
        req = self._new(REMOVE, identity.id, identity.email, email, target_id, group, reason, polaris_user_id=user.id)
        req.approvals_required = privilege.approvals_needed(rule.approvals, group)
        req.expires_at = req.created_at + dt.timedelta(seconds=rule.ttl)
        self._save(req, user_id, f"remove {group.name}")
        return self._posted(req)

    # ------------------------------------------------------------------------------- offboard
    def offboard(self, user_id: str, target: Target, reason: str) -> Reply:
        """``offboard <email | @user> [reason]`` (admins): every group removed and the account disabled, once
        approved by another admin (or the ``[offboard]`` policy's approvers)."""
        if user_id not in self.ctx.settings.admins:
            raise UsageError("Only admins can offboard someone; ask one of them, or `/polaris remove` for one group.")
        identity = self._requester(user_id)
        email = self.queries.email_for(user_id, target)
        if target.user_id == user_id or email == (identity.email or "").lower():
            raise UsageError("You cannot offboard yourself.")
        reason = check_reason(clean(reason, limit=None))
        user = self.ctx.polaris.find_user_by_email(email)
        if user is None:
            raise UsageError(f"No Polaris user has the email `{email}`, so there is nothing to offboard.")
        if not user.enabled and not user.groups:
            raise UsageError(f"`{email}` is already disabled in Polaris and in no group; nothing to offboard.")
        why = self.side.last_admin_refusal(user, group_id=None)
        if why:
            raise UsageError(why)
        self._check_open(user_id, OFFBOARD, email, None)
        target_id = target.user_id or self.ctx.slack.user_id_for_email(email)
        req = self._offboarding(identity.id, identity.email, email, target_id, user, reason)
        self._save(req, user_id, "offboard")
        return self._posted(req)

    def deactivated(self, slack_id: str, email_hint: str = "") -> AccessRequest | None:
        """A Slack account was deactivated (``user_change``, ``deleted: true``): when it is still deactivated
        (read now) and its email has an enabled Polaris account with no open offboarding, open an offboarding
        (requester :data:`BOT_REQUESTER`) and post its card for the admins. Nothing is applied without an
        approval. Audited (``slack.user_deactivated``). Returns the request opened, or ``None``."""
        ctx = self.ctx
        try:
            who = ctx.slack.identity(slack_id)
        except SlackError:  # the event itself (signed by Slack) says deactivated: go by it
            who = SlackIdentity(id=slack_id, exists=True, deleted=True, email=email_hint or None)
        email = (who.email or email_hint or "").strip().lower()
        skip, user, unread = None, None, None
        if who.exists and not who.deleted:
            skip = "the account is active again"
        elif not email:
            skip = "no email on the Slack profile"
        if skip is None:
            try:
                user = ctx.polaris.find_user_by_email(email)
                if user is None or not user.enabled:
                    skip = "no enabled Polaris account"
                else:
                    skip = self.side.last_admin_refusal(user, group_id=None)
            except PolarisError as e:  # never lost: the card opens, saying Polaris could not be read
                unread = f"{e.status or 'no answer'} {e.code}"
        skip = skip or self._already_offboarding(email)
        if skip:
            ctx.audit.record("bot", "slack.user_deactivated", target=email or slack_id, detail=f"no card: {skip}")
            return None
        req = self._offboarding(BOT_REQUESTER, None, email, slack_id, user, DEACTIVATED_REASON, unread=unread)
        try:
            self._save(req, BOT_REQUESTER, "offboard after a Slack deactivation")
        except UsageError:  # the same event from another process, at the same moment
            return None
        self.notifications.post_card(req.id)
        return self.store.get(req.id)

    def _already_offboarding(self, email: str) -> str | None:
        """Why no new offboarding card is opened for ``email``: one is open, or the admins denied the last
        one the bot opened (that decision stands until someone asks again with ``/polaris offboard``)."""
        if self.store.open_duplicate(OFFBOARD, email, None) is not None:
            return "an offboarding is already open"
        last = self.store.last_bot_offboarding(email)
        if last is not None and last.state == DENIED:
            return f"the admins denied the last one (request {last.id[:8]})"
        return None

    def _offboarding(
        self,
        requester_id: str,
        requester_email: str | None,
        email: str,
        target_id: str | None,
        user: User | None,
        reason: str,
        *,
        unread: str | None = None,
    ) -> AccessRequest:
        rule = self.ctx.policy.for_offboard()
        req = self._new(
            OFFBOARD, requester_id, requester_email, email, target_id, None, reason, polaris_user_id=user and user.id
        )
        # Taking away Organization Admin (or any privileged group) needs what removing it needs: two approvals by
        # Organization Admin members (checked again at each click, on the groups Polaris has then).
        privileged = user is not None and any(self.approvers.is_privileged(g) for g in self._groups_of(user))
        req.approvals_required = max(rule.approvals, privilege.PRIVILEGED_APPROVALS if privileged else 1)
        req.expires_at = req.created_at + dt.timedelta(seconds=rule.ttl)
        req.plan = self._plan(user, email, target_id) if user is not None else json.dumps({"unread": unread})
        return req

    def _groups_of(self, user: User) -> list[Group]:
        catalog = self.ctx.catalog
        return [g for g in (catalog.by_id(gid) for gid, _name in user.groups) if g is not None]

    def _plan(self, user: User, email: str, slack_id: str | None) -> str:
        """What an offboarding takes away, as Polaris and the bot have it now (JSON for the card): the groups
        by name, whether the account is enabled, the active leases and the open requests it closes."""
        leases = self.side.leases.active_of(email, slack_id=slack_id, limit=20)
        with self.ctx.db.session() as s:
            others = self.store.open_of_person(email, slack_id, other_than="", session=s)
        return json.dumps(
            {
                "groups": [name or gid for gid, name in user.groups],
                "enabled": user.enabled,
                "leases": [
                    {"group": x.group_name or x.group_id, "ends_at": f"{x.ends_at:%Y-%m-%d %H:%M} UTC"} for x in leases
                ],
                "requests": [
                    {
                        "id": r.id[:8],
                        "what": f"{r.kind.replace('_', ' ')} {r.group_name or ''}".strip(),
                        "state": r.state,
                    }
                    for r in others[:20]
                ],
            }
        )

    # ------------------------------------------------------------------------------- saving
    def _new(
        self, kind, requester_id, requester_email, email, target_id, group, reason, *, polaris_user_id=None
    ) -> AccessRequest:
        now = self.ctx.clock()
        names = self.ctx.slack.identity(target_id, max_age=60) if target_id else None
        req = AccessRequest(
            id=str(uuid.uuid4()),
            kind=kind,
            state=PENDING,
            requester_id=requester_id,
            requester_email=(requester_email or "").lower() or None,
            target_email=email,
            target_slack_id=target_id,
            target_first_name=clean(names.first_name if names else "", 200),
            target_last_name=clean(names.last_name if names else "", 200),
            group_id=group.id if group else None,
            group_name=group.name if group else None,
            polaris_user_id=polaris_user_id,
            reason=reason,
            approvals_required=1,
            open_key=AccessRequest.make_open_key(email, group.id if group else None, kind),
            created_at=now,
            updated_at=now,
            expires_at=now + dt.timedelta(seconds=self.ctx.policy.defaults.ttl),
            post_attempts=0,
            card_stale=False,
            attempts=0,
        )
        for column, value in first_nudges(self.approvers.rule_of(req), now).items():  # reminders, escalation
            setattr(req, column, value)
        return req

    def _save(self, req: AccessRequest, actor: str, detail: str, *, self_service: bool = False) -> None:
        """Insert ``req`` with its ``request.created`` audit row (and ``decision.self_service`` for a leave),
        under the requester's claim so the open-request limit holds across processes. Raises
        :class:`UsageError` when the same request is already open (its unique key)."""
        ctx = self.ctx
        with ctx.claims.hold(f"requester:{actor}", wait=10.0) as got:
            if not got:
                raise UsageError("Another of your requests is being saved right now; try again in a moment.")
            if actor != BOT_REQUESTER:
                self._check_open(actor, req.kind, req.target_email, req.group_id)
            try:
                with ctx.db.session() as s:
                    self.store.insert(req, session=s)
                    ctx.audit.record(
                        actor, "request.created", request_id=req.id, target=req.target_email, session=s, detail=detail
                    )
                    if self_service:
                        ctx.audit.record(
                            actor,
                            "decision.self_service",
                            request_id=req.id,
                            target=req.target_email,
                            session=s,
                            detail="less access needs no approval",
                        )
            except IntegrityError:
                raise UsageError("There is already an open request for that; see `/polaris status`.") from None

    def _posted(self, req: AccessRequest) -> Reply:
        """Post the card of a saved removal or offboarding and answer the requester."""
        return card_reply(self.notifications, req)

    # ------------------------------------------------------------------------------- cancel
    def cancel(self, user_id: str, ref: str) -> Reply:
        """``cancel <request id>`` (:meth:`bot.access.cancels.Cancels.cancel`)."""
        return self.cancels.cancel(user_id, ref)

    def withdraw(self, request_id: str, user_id: str) -> str:
        """The Cancel button (:meth:`bot.access.cancels.Cancels.withdraw`)."""
        return self.cancels.withdraw(request_id, user_id)
