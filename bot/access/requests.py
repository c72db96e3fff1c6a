"""Submitting a request: ``request`` (join a group; the form gives the group by ID), ``invite`` (an account or
membership for someone else) and ``reset-password``.

Each checks the requester (an active full member with an email), the person it is for, the group, that it is
not already done, the open-request limit and an open duplicate, then :meth:`Submission._submit` saves it under
one claim per requester (so requests at the same moment cannot slip past the limit; a unique key allows one
open request per person and group), posts the approval card and answers. A rule that auto-approves approves it
at once (:meth:`bot.access.decisions.Decisions.auto_approve`). Refusals are :class:`bot.commands.UsageError`.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .. import durations, privilege, views
from ..commands import Target, UsageError, check_reason, clean
from ..models import INVITE, INVITE_MANY, JOIN, OPEN_STATES, PENDING, RESET_PASSWORD, AccessRequest
from ..polaris import Group
from ..slack import SlackIdentity
from ..views.bulk import people_of
from .approvers import Approvers
from .authority import barred_reason
from .context import Context
from .decisions import Decisions
from .lease_store import LeaseStore
from .notifications import Notifications
from .queries import Queries
from .reminders import first_nudges
from .reply import Reply
from .store import RequestStore


class Submission:
    """``check_duplicates``: the friendly check for an open duplicate before saving (on by default). A
    deliberate seam: tests turn it off to show that the unique key alone keeps requests at the same moment to
    one."""

    check_duplicates = True

    def __init__(
        self,
        ctx: Context,
        store: RequestStore,
        queries: Queries,
        approvers: Approvers,
        notifications: Notifications,
        decisions: Decisions,
    ):
        self.ctx, self.store, self.queries, self.approvers = ctx, store, queries, approvers
        self.notifications, self.decisions = notifications, decisions
        self.leases = LeaseStore(ctx.db)

    def _requester(self, user_id: str) -> SlackIdentity:
        return self.queries.active_requester(user_id)

    def _check_open_limit(self, user_id: str, *, session=None) -> None:
        n = self.store.count_open(user_id, session=session)
        if n >= self.ctx.settings.max_open_requests:
            raise UsageError(f"You already have {n} open requests; wait for a decision or see `/polaris status`.")

    def _duration(self, group: Group, asked: int | None) -> int | None:
        """The duration (seconds; ``None``: for good) a grant of ``group`` gets under its policy rule. Raises
        :class:`UsageError` naming the maximum, or saying a duration is required."""
        rule = self.approvers.rule_for(group.name)
        return durations.choose(
            asked,
            default=rule.default_duration,
            maximum=rule.max_duration,
            permanent=rule.permanent,
            group=group.name,
        )

    @staticmethod
    def _check_enabled(user, *, yours: bool) -> None:
        """A disabled Polaris account (offboarded, or disabled by an admin) gets no membership: it cannot sign in,
        and an offboarding must not be undone piecemeal by requests. :class:`UsageError`. (A password reset is
        still allowed: it changes no access.)"""
        if user is not None and not user.enabled:
            whose = "Your Polaris account" if yours else f"The Polaris account `{user.email or user.username}`"
            raise UsageError(
                f"{whose} is disabled (offboarded, or disabled by an admin), so access cannot be given to it. "
                "An admin must enable it in Polaris first."
            )

    def _on_lease(self, email: str, group: Group) -> bool:
        """``email`` holds ``group`` on a lease (a new grant would extend it, or make it permanent)."""
        return self.leases.live_for(email, group.id) is not None

    def open_grant_of(self, kind: str, email: str, group_id: str | None) -> AccessRequest | None:
        """An open request that would already do what a new ``kind`` request for ``email`` and ``group_id`` asks:
        :meth:`RequestStore.open_duplicate`, or, for a grant (join, invite), an open bulk invite to the group
        whose plan names ``email`` (a bulk invite's ``target_email`` is only its label). ``None`` when none."""
        dup = self.store.open_duplicate(kind, email, group_id)
        if dup is not None or kind not in (JOIN, INVITE) or not group_id:
            return dup
        with self.ctx.db.session() as s:
            bulks = s.scalars(
                select(AccessRequest).where(
                    AccessRequest.kind == INVITE_MANY,
                    AccessRequest.state.in_(OPEN_STATES),
                    AccessRequest.group_id == group_id,
                )
            )
            return next((b for b in bulks if any(p["email"] == email.lower() for p in people_of(b))), None)

    def _check_duplicate(self, kind: str, email: str, group_id: str | None) -> None:
        if not self.check_duplicates:
            return
        dup = self.open_grant_of(kind, email, group_id)
        if dup is not None:
            raise UsageError(
                f"There is already an open request for that (request `{dup.id[:8]}`, "
                f"{views.STATE_LABEL.get(dup.state, dup.state).lower()})."
            )

    def request_join(
        self,
        user_id: str,
        group_text: str,
        reason: str,
        *,
        group_id: str | None = None,
        duration: int | None = None,
    ) -> Reply:
        """``request <group> [for <duration>] [reason]`` (or the request form, which gives ``group_id``): the
        requester joins the group, for ``duration`` seconds or for good (the group's policy may set a default,
        a maximum, or require a duration); their Polaris account is created with it if they have none. A
        member of the group on a lease may ask again: approved, it extends the lease."""
        identity = self._requester(user_id)
        group = self.ctx.catalog.by_id(group_id) if group_id else self.queries.resolve_group(group_text)
        if group is None:
            raise UsageError("That group no longer exists in Polaris; `/polaris groups` lists the current ones.")
        email = identity.email.lower()  # type: ignore[union-attr]
        duration = self._duration(group, duration)
        existing = self.ctx.polaris.find_user_by_email(email)
        self._check_enabled(existing, yours=True)
        if existing is not None and group.id in existing.group_ids and not self._on_lease(email, group):
            return Reply(f"You are already a member of *{views.esc(group.name)}* in Polaris.")
        self._check_open_limit(user_id)
        self._check_duplicate(JOIN, email, group.id)
        return self._submit(
            JOIN,
            identity,
            duration=duration,
            email=email,
            target_slack_id=user_id,
            first=identity.first_name,
            last=identity.last_name,
            group=group,
            reason=reason,
        )

    def request_invite(
        self,
        user_id: str,
        target: Target,
        group_text: str,
        reason: str,
        *,
        duration: int | None = None,
        group_id: str | None = None,
    ) -> Reply:
        """``invite <email> <group> [for <duration>] [reason]``: an account (or membership) for someone else,
        for ``duration`` seconds or for good, under the group's policy like :meth:`request_join`. ``group_id``
        (Extend on a lease) names the group by ID instead of ``group_text``."""
        slack = self.ctx.slack
        identity = self._requester(user_id)
        email = self.queries.email_for(user_id, target)
        group = self.ctx.catalog.by_id(group_id) if group_id else self.queries.resolve_group(group_text)
        if group is None:
            raise UsageError("That group no longer exists in Polaris; `/polaris groups` lists the current ones.")
        duration = self._duration(group, duration)
        existing = self.ctx.polaris.find_user_by_email(email)
        self._check_enabled(existing, yours=False)
        if existing is not None and group.id in existing.group_ids and not self._on_lease(email, group):
            return Reply(f"`{views.esc(email)}` is already a member of *{views.esc(group.name)}*.")
        self._check_open_limit(user_id)
        self._check_duplicate(INVITE, email, group.id)
        target_id = target.user_id or slack.user_id_for_email(email)
        first = last = ""
        if target_id:
            who = slack.identity(target_id)
            first, last = who.first_name, who.last_name
        return self._submit(
            INVITE,
            identity,
            duration=duration,
            email=email,
            target_slack_id=target_id,
            first=first,
            last=last,
            group=group,
            reason=reason,
            polaris_user_id=existing.id if existing else None,
            plan=None if existing else json.dumps({"new_account": True}),  # the card says so once applied too
        )

    def request_reset(self, user_id: str, target: Target) -> Reply:
        """``reset-password [email | @user]``: yours by default (matched by your Slack email)."""
        slack = self.ctx.slack
        identity = self._requester(user_id)
        if target.is_self or target.user_id == user_id:
            email, target_id = identity.email.lower(), user_id  # type: ignore[union-attr]
        else:
            email = self.queries.email_for(user_id, target)
            target_id = target.user_id or slack.user_id_for_email(email)
        user = self.ctx.polaris.find_user_by_email(email)
        if user is None:
            whose = "You have" if target_id == user_id else f"`{views.esc(email)}` has"
            return Reply(
                f"{whose} no Polaris account, so there is no password to reset. "
                "`/polaris request <group>` asks for an account."
            )
        self._check_open_limit(user_id)
        self._check_duplicate(RESET_PASSWORD, email, None)
        reply = self._submit(
            RESET_PASSWORD,
            identity,
            email=email,
            target_slack_id=target_id,
            first=user.first_name,
            last=user.last_name,
            group=None,
            reason="",
        )
        saved = self.store.open_duplicate(RESET_PASSWORD, email, None) if target_id and target_id != user_id else None
        if saved is not None:  # someone else's reset: they are told, through the ledger
            self.notifications.dm(  # through the delivery ledger: retried, and ADMINS told if Slack refuses it
                saved.id,
                target_id,
                "reset_asked",
                f"{views.mention(user_id)} asked for a password reset of your Polaris account "
                f"`{views.esc(email)}`. If you did not expect this, tell an admin.",
            )
        return reply

    def _submit(
        self,
        kind: str,
        requester: SlackIdentity,
        *,
        email: str,
        target_slack_id: str | None,
        first: str,
        last: str,
        group: Group | None,
        reason: str,
        polaris_user_id: str | None = None,
        duration: int | None = None,
        plan: str | None = None,
    ) -> Reply:
        """Save the request (``plan``: a bulk invite's people, :mod:`bot.access.bulk_invites`; an invite that
        creates an account: ``{"new_account": true}``), post its card and answer. Raises :class:`UsageError` (the reason rule, the open-request limit, a duplicate)."""
        ctx = self.ctx
        if target_slack_id and target_slack_id != requester.id:
            # The person it is for is checked like the requester (an invitee by email alone has no account).
            why = barred_reason(ctx.slack.identity(target_slack_id, max_age=60), "That person's")
            if why:
                raise UsageError(f"{why} Requests cannot be made for deactivated, guest or bot accounts.")
        rule = self.approvers.rule_for(group.name if group else None)
        privileged = self.approvers.is_privileged(group)
        approvals = privilege.approvals_needed(rule.approvals, group)
        auto = rule.auto_approve and kind == JOIN and approvals == 1 and not privileged
        reason = check_reason(clean(reason, limit=None))  # too long: refused with its length, never cut
        if rule.reason_required and len(reason) < max(1, rule.reason_min_length):
            need = f" of at least {rule.reason_min_length} characters" if rule.reason_min_length > 1 else ""
            raise UsageError(
                f"Requests for {'*' + group.name + '*' if group else 'this'} need a reason{need}: "
                f"`/polaris request {group.name if group else ''} <reason>`."
            )
        manager = self.approvers.manager_of(requester.id) if rule.wants_manager else None
        now = ctx.clock()
        req = AccessRequest(
            id=str(uuid.uuid4()),
            kind=kind,
            state=PENDING,
            requester_id=requester.id,
            requester_email=(requester.email or "").lower() or None,
            target_email=email,
            target_slack_id=target_slack_id,
            target_first_name=clean(first, 200),
            target_last_name=clean(last, 200),
            group_id=group.id if group else None,
            group_name=group.name if group else None,
            polaris_user_id=polaris_user_id,  # an invitee who has an account: the card says membership
            reason=reason,
            duration_seconds=duration,
            approvals_required=approvals,
            manager_id=manager,
            open_key=AccessRequest.make_open_key(email, group.id if group else None, kind),
            plan=plan,
            created_at=now,
            updated_at=now,
            expires_at=now + dt.timedelta(seconds=rule.ttl),
            **first_nudges(rule, now),  # the first reminder and the escalation (bot/access/reminders.py)
            post_attempts=0,
            card_stale=False,
            attempts=0,
        )
        if not auto:
            self.approvers.check_decidable(req)  # nobody could approve it: refused now, not pending until it expires
        # The open-request limit is counted and the row inserted under one claim per requester, so requests
        # sent at the same moment (any process) cannot slip past the limit together.
        with ctx.claims.hold(f"requester:{requester.id}", wait=10.0) as got:
            if not got:
                raise UsageError("Another of your requests is being saved right now; try again in a moment.")
            try:
                with ctx.db.session() as s:  # counted and inserted in one transaction
                    self._check_open_limit(requester.id, session=s)
                    self.store.insert(req, session=s)
                    ctx.audit.record(
                        requester.id,
                        "request.created",
                        request_id=req.id,
                        target=email,
                        session=s,
                        detail=f"{kind} {group.name if group else ''}".strip(),
                    )
            except IntegrityError:  # the same request, at the same moment, from another click or process
                raise UsageError("There is already an open request for that; see `/polaris status`.") from None
        posted = self.notifications.post_card(req.id)
        what = views.kind_phrase(req)
        names = views.account_names(req)
        if names:  # a new account: which names it gets (from Slack), or that they are unknown
            what = f"{what} (names: {names})"
        channel = ctx.settings.approval_channel
        if auto:
            self.decisions.auto_approve(req.id)
            return Reply(
                f":white_check_mark: Your request for {what} is approved by policy and is being applied "
                f"(request `{req.id[:8]}`). Approvers are informed in <#{channel}>."
            )
        if posted:
            return Reply(
                f":inbox_tray: Your request for {what} went to the approvers in <#{channel}>. "
                f"I'll message you when it is decided (request `{req.id[:8]}`)."
            )
        self.notifications.tell_unposted(req.id)
        return Reply(
            f":warning: Your request for {what} is saved (request `{req.id[:8]}`), but I could not post it "
            "to the approvers yet. I will keep trying and message you."
        )
