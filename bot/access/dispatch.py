"""One ``/polaris`` command: parse it (pure, :func:`bot.commands.parse`), admit the person
(:mod:`bot.access.admission`), and route it to the query or the submission that answers it. Failures are left
to :func:`bot.access.errors.guarded`, which the facade wraps around this.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from .. import views
from ..commands import Command, UsageError, check_reason, parse, split_page
from ..durations import split_duration
from .admission import Admission
from .audit_view import AuditView
from .bulk_invites import BulkInvites, stray_word
from .paging import Paging
from .group_changes import CREATE_USAGE, GroupChanges
from .group_info import GroupInfo
from .queries import Queries
from .removals import Removals
from .reply import Reply
from .user_side import UserSide
from .user_updates import UserUpdates
from .requests import Submission


class Dispatch:
    def __init__(
        self,
        admission: Admission,
        queries: Queries,
        requests: Submission,
        removals: Removals,
        audit_view: AuditView | None = None,
        group_changes: GroupChanges | None = None,
    ):
        self.admission, self.queries, self.requests, self.removals = admission, queries, requests, removals
        self.audit_view = audit_view or AuditView(queries.ctx, queries)
        self.paging = Paging(queries.ctx, queries)
        self.group_changes = group_changes or GroupChanges(
            queries.ctx, requests.store, queries, queries.approvers, requests.notifications
        )
        self.group_info = GroupInfo(queries.ctx, queries, queries.approvers)
        self.bulk = BulkInvites(queries, requests)
        self.user_updates = UserUpdates(
            queries.ctx,
            requests.store,
            queries,
            queries.approvers,
            requests.notifications,
            admission,
            UserSide(queries.ctx, removals.side),
        )

    def run(self, user_id: str, text: str | None, shown: str, channel_id: str | None) -> Reply:
        try:
            command = parse(text)  # pure; a UsageError is audited by guarded()
        except UsageError:
            # Counted and rate limited like any command (a flood of bad ones was answered without end).
            why = self.admission.admit(user_id, shown, check_identity=False)
            if why:
                return Reply(f":no_entry: {why}")
            raise
        why = self.admission.admit(user_id, shown, check_identity=command.name != "help")
        if why:
            return Reply(f":no_entry: {why}")
        return self.route(user_id, command, channel_id)

    def route(self, user_id: str, cmd: Command, channel_id: str | None) -> Reply:
        """The answer to ``cmd`` from the unit that owns it. Raises :class:`UsageError` for an unknown one."""
        q, r, rm = self.queries, self.requests, self.removals
        routes: dict[str, Callable[[], Reply]] = {
            "help": lambda: Reply(*views.help_message()),
            "whois": lambda: self.paging.whois(user_id, cmd),
            "groups": lambda: self._group(cmd.rest) if cmd.rest else self.paging.groups(cmd),
            "members": lambda: self.paging.members(cmd.rest),
            "permissions": q.permissions,
            "request": lambda: self._request(user_id, cmd),
            "invite": lambda: self._invite(user_id, cmd),
            "reset-password": lambda: r.request_reset(user_id, cmd.target),
            "leave": lambda: rm.leave(user_id, cmd.rest),
            "remove": lambda: rm.remove(user_id, cmd.target, cmd.rest),
            "offboard": lambda: rm.offboard(user_id, cmd.target, cmd.rest),
            "cancel": lambda: rm.cancel(user_id, cmd.rest),
            "status": lambda: q.status(user_id),
            "pending": lambda: q.pending(user_id),
            "policy": lambda: q.policy(user_id),
            "audit": lambda: self.audit_view.show(user_id, cmd),
            "create-group": lambda: self._create_group(user_id, cmd),
            "edit-group": lambda: self._edit_group(user_id, cmd),
            "delete-group": lambda: self.group_changes.delete_command(user_id, cmd.rest),
            "update-user": lambda: self.user_updates.command(user_id, cmd),
        }
        if cmd.name not in routes:
            raise UsageError("Try `/polaris help`.")
        return routes[cmd.name]()

    def _group(self, name: str) -> Reply:
        """``groups <name>``; a name no group has that ends in ``page <not a number>`` (``groups page ²``) gets
        the page sentence instead of "no such group"."""
        try:
            return self.group_info.show(name)
        except UsageError:
            split_page(name, "/polaris groups page 2")  # raises the page sentence for `page ²`
            raise

    def _request(self, user_id: str, cmd: Command) -> Reply:
        if not cmd.rest:
            return Reply(
                "Usage: `/polaris request <group> [for <duration>] [reason]` (or the form, from a slash command)."
            )
        group, rest = self.queries.group_and_rest(cmd.rest)
        duration, reason = split_duration(rest)  # "for 2h because ..." -> 7200, "because ..."
        return self.requests.request_join(user_id, group.name, check_reason(reason), duration=duration)

    def _invite(self, user_id: str, cmd: Command) -> Reply:
        try:
            group, rest = self.queries.group_and_rest(cmd.rest)
        except UsageError as e:  # `a@x not-an-email b@y Viewer`: the word that is no person, not "no such group"
            stray = stray_word(cmd.rest) or self.bulk.stray_before_group(cmd.rest)
            if stray is None:
                raise
            raise stray from e
        people, twice = self.bulk.distinct(user_id, [cmd.target, *cmd.others]) if cmd.others else ([cmd.target], [])
        if len(people) > 1:  # several people: one bulk invite (bot/access/bulk_invites.py)
            reply = self.bulk.invite(user_id, people, group, rest)
        else:
            duration, reason = split_duration(rest)
            reply = self.requests.request_invite(
                user_id, people[0], group.name, check_reason(reason), duration=duration
            )
        if twice:
            named = ", ".join(f"`{views.esc(e)}`" for e in twice)
            reply = dataclasses.replace(reply, text=f"{reply.text} Named more than once, counted once: {named}.")
        return reply

    def _create_group(self, user_id: str, cmd: Command) -> Reply:
        if not cmd.rest:  # the form opens from the slash command's trigger_id (handlers); typed here: usage
            self.group_changes.check_admin(user_id)
            return Reply("To use the form, type `/polaris create-group` in Slack. " + CREATE_USAGE)
        return self.group_changes.create_command(user_id, cmd.rest)

    def _edit_group(self, user_id: str, cmd: Command) -> Reply:
        self.group_changes.check_admin(user_id)
        group = self.group_changes.editable(cmd.rest)
        return Reply(
            f"To change *{views.esc(group.name)}*, type `/polaris edit-group {views.esc(group.name)}` in Slack: "
            "it opens the form, filled in."
        )
