"""Asking to change a Polaris user (issue 11): ``/polaris update-user <email | @user>``.

- Only ADMINS ask (as for ``offboard``); another admin decides, never the requester nor the person
  (:func:`bot.access.authority.decide_authority`), as an offboarding is decided. A change that disables someone
  in a privileged group (Organization Admin, or one granting organization-level administration) needs two
  approvals by Organization Admin members, checked at every click.
- The command, sent from Slack with a ``trigger_id``, opens the user form (:func:`bot.views.users.user_modal`)
  filled in from Polaris (``GET /v1/users`` search by email); an unknown user gets a sentence and no form.
  Typed without a ``trigger_id`` (the CLI), it says to use Slack.
- The form's ``view_submission``: :meth:`UserUpdates.errors` runs before the ack, with no I/O (each name
  checked by :func:`bot.access.user_changes.check_fields`; nothing changed against the values the form was
  filled in with): ``response_action: errors``. :meth:`UserUpdates.submit` then runs on a work lane: the user
  is read again, the change saved as an access request of kind ``update_user`` (``plan``: the change and its
  before → after lines) and its card posted; the answer goes to the admin by DM.
- Disabling the last enabled Organization Admin is refused here (and again when applied:
  :mod:`bot.access.user_side`). One open update per person (``open_key``). Refusals are
  :class:`bot.commands.UsageError`.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

from sqlalchemy.exc import IntegrityError

from .. import privilege, views
from ..commands import Command, UsageError, clean, parse
from ..models import PENDING, UPDATE_USER, AccessRequest
from ..polaris import PolarisNotFound, User
from .asking import card_reply
from .admission import Admission
from .approvers import Approvers
from .context import Context
from .errors import guarded
from .notifications import Notifications
from .queries import Queries
from .reminders import first_nudges
from .reply import Reply
from .store import RequestStore
from .user_changes import FIRST_BLOCK, UserChange, check_fields
from .user_side import UserSide

NO_CHANGE = "Nothing would change: these are the names and the state the account has now."
NOT_OPENED = (
    ":warning: I could not open the form (Slack did not take it in time). Nothing was changed. "
    "Try `/polaris update-user` again."
)


class UserUpdates:
    """Saves ``update_user`` requests and posts their cards; ``side`` gives the last-admin check."""

    def __init__(
        self,
        ctx: Context,
        store: RequestStore,
        queries: Queries,
        approvers: Approvers,
        notifications: Notifications,
        admission: Admission,
        side: UserSide,
    ):
        self.ctx, self.store, self.queries, self.approvers = ctx, store, queries, approvers
        self.notifications, self.admission, self.side = notifications, admission, side

    # ------------------------------------------------------------------------------- checks
    def check_admin(self, user_id: str) -> None:
        """Only ADMINS change users; an active full member with an email. Raises :class:`UsageError`."""
        if user_id not in self.ctx.settings.admins:
            raise UsageError("Only admins can change a Polaris user's names or account; ask one of them.")
        self.queries.active_requester(user_id)

    def find(self, user_id: str, cmd: Command) -> tuple[User, str | None]:
        """The Polaris user ``cmd`` names (read now) and their Slack user ID (or ``None``). Raises
        :class:`UsageError` when no Polaris user has that email."""
        self.check_admin(user_id)
        if cmd.target.is_self:
            raise UsageError("Whose account? `/polaris update-user <email | @user>` opens a form with their names.")
        email = self.queries.email_for(user_id, cmd.target)
        user = self.ctx.polaris.find_user_by_email(email)
        if user is None:
            raise UsageError(f"No Polaris user has the email `{email}`, so there is nothing to update.")
        return user, cmd.target.user_id or self.ctx.slack.user_id_for_email(email)

    # ------------------------------------------------------------------------------- the command and the form
    def command(self, user_id: str, cmd: Command) -> Reply:
        """``update-user`` typed where no form can open (no ``trigger_id``): the user is checked, then named."""
        user, _ = self.find(user_id, cmd)
        return Reply(
            f"To change `{views.esc(user.email)}`, type `/polaris update-user {views.esc(user.email)}` in Slack: "
            "it opens the form, filled in."
        )

    def open_form(self, user_id: str, text: str, trigger_id: str) -> Reply:
        """``/polaris update-user <email | @user>`` from Slack: admitted like a command (audited, rate limited),
        the user read from Polaris, then the form opened with ``trigger_id`` (``views.open``). The answer for
        the sender: empty when the form opened, else the refusal or failure (never raises)."""
        shown = clean(text, 200)

        def work() -> Reply:
            why = self.admission.admit(user_id, shown)
            if why:
                return Reply(f":no_entry: {why}")
            user, slack_id = self.find(user_id, parse(text))
            if self.ctx.slack.open_view(trigger_id, views.users.user_modal(user, slack_id)) is None:
                return Reply(NOT_OPENED)
            return Reply("")

        return guarded(self.ctx.audit, user_id, shown, work)

    @staticmethod
    def errors(form: dict) -> dict[str, str]:
        """The fields to fix, ``{block_id: sentence}`` (empty: fine), with no I/O. ``form``: ``first``,
        ``last`` (the names typed), ``enabled`` (bool) and ``meta`` (the form's ``private_metadata``, a dict:
        the values it was filled in with)."""
        out = check_fields(form.get("first"), form.get("last"))
        if out:
            return out
        meta = form.get("meta") or {}
        change = UserChange.of(form.get("first"), form.get("last"), bool(form.get("enabled")))
        if (change.first_name, change.last_name, change.enabled) == (
            meta.get("first"),
            meta.get("last"),
            meta.get("enabled"),
        ):
            return {FIRST_BLOCK: NO_CHANGE}
        return {}

    def submit(self, user_id: str, form: dict) -> Reply:
        """The form's submission: the request asked, or the refusal, as a :class:`Reply` (never raises)."""

        def work() -> Reply:
            meta = form.get("meta") or {}
            why = self.admission.admit(user_id, f"user form {str(meta.get('email'))[:64]}", check_identity=False)
            if why:
                return Reply(f":no_entry: {why}")
            self.check_admin(user_id)
            try:
                change = UserChange.of(form.get("first"), form.get("last"), bool(form.get("enabled")))
            except ValueError as e:
                raise UsageError(str(e)) from None
            return self.ask(user_id, str(meta.get("id") or ""), meta.get("slack") or None, change)

        return guarded(self.ctx.audit, user_id, "user form", work)

    def submit_and_tell(self, user_id: str, form: dict) -> Reply:
        """:meth:`submit`, its answer sent to ``user_id`` by DM (a modal has no response_url)."""
        reply = self.submit(user_id, form)
        self.ctx.slack.dm(user_id, reply.text, reply.blocks)
        return reply

    # ------------------------------------------------------------------------------- asking
    def ask(self, user_id: str, polaris_id: str, slack_id: str | None, change: UserChange) -> Reply:
        """A request to make ``change`` to the Polaris user ``polaris_id`` (read again now). Raises
        :class:`UsageError` when nothing would change, when it would disable the last enabled Organization
        Admin, or when an update of that person is already open."""
        identity = self.queries.active_requester(user_id)
        if not polaris_id:
            raise UsageError("The form does not say which Polaris user it is for; open it again.")
        try:
            user = self.ctx.polaris.get_user(polaris_id)
        except PolarisNotFound:
            raise UsageError("That Polaris user no longer exists; nothing was asked.") from None
        lines = change.lines(user)
        if not lines:
            raise UsageError(NO_CHANGE)
        why = self.side.last_admin_refusal(user, change)
        if why:
            raise UsageError(why)
        email = (user.email or user.username).lower()
        # The person's Slack account is the one with the Polaris user's email, read now: never the form's
        # private_metadata, which a forged submission could point at someone else (or at nobody, so that the
        # person could approve a change to their own account).
        slack_id = self.ctx.slack.user_id_for_email(email)
        dup = self.store.open_duplicate(UPDATE_USER, email, None)
        if dup is not None:
            raise UsageError(f"There is already an open request for {views.kind_phrase(dup)} (request `{dup.id[:8]}`).")
        req = self._new(identity, email, slack_id, user, change, lines)
        self.approvers.check_decidable(req)  # the person it is for and the requester never decide it
        try:
            with self.ctx.db.session() as s:
                self.store.insert(req, session=s)
                self.ctx.audit.record(
                    user_id, "request.created", request_id=req.id, target=email, session=s, detail="update user"
                )
        except IntegrityError:
            raise UsageError("There is already an open request for that person; see `/polaris pending`.") from None
        return card_reply(self.notifications, req, deciders="admins")

    def _new(self, identity, email, slack_id, user: User, change: UserChange, lines: list[str]) -> AccessRequest:
        now = self.ctx.clock()
        plan = {**change.plan(), "lines": lines}
        req = AccessRequest(
            id=str(uuid.uuid4()),
            kind=UPDATE_USER,
            state=PENDING,
            requester_id=identity.id,
            requester_email=(identity.email or "").lower() or None,
            target_email=email,
            target_slack_id=slack_id,
            target_first_name=clean(user.first_name, 200),
            target_last_name=clean(user.last_name, 200),
            group_id=None,
            group_name=None,
            polaris_user_id=user.id,
            reason="",
            approvals_required=1,
            open_key=AccessRequest.make_open_key(email, None, UPDATE_USER),
            created_at=now,
            updated_at=now,
            post_attempts=0,
            card_stale=False,
            attempts=0,
            plan=json.dumps(plan),
        )
        if change.disables(user):  # taking a privileged group's holder out needs what removing that group needs
            groups = [self.ctx.catalog.by_id(gid) for gid, _name in user.groups]
            if any(self.approvers.is_privileged(g) for g in groups if g is not None):
                req.approvals_required = privilege.PRIVILEGED_APPROVALS
        rule = self.approvers.rule_of(req)
        req.expires_at = now + dt.timedelta(seconds=rule.ttl)
        for column, value in first_nudges(rule, now).items():
            setattr(req, column, value)
        return req
