"""One ``/polaris`` command: parse it (pure, :func:`bot.commands.parse`), admit the person
(:mod:`bot.access.admission`), and route it to the query or the submission that answers it. Failures are left
to :func:`bot.access.errors.guarded`, which the facade wraps around this.
"""
from __future__ import annotations

from .. import views
from ..commands import Command, UsageError, check_reason, parse
from .admission import Admission
from .queries import Queries
from .reply import Reply
from .requests import Submission


class Dispatch:
    def __init__(self, admission: Admission, queries: Queries, requests: Submission):
        self.admission, self.queries, self.requests = admission, queries, requests

    def run(self, user_id: str, text: str | None, shown: str, channel_id: str | None) -> Reply:
        command = parse(text)  # pure; a UsageError is audited by guarded()
        why = self.admission.admit(user_id, shown, check_identity=command.name != "help")
        if why:
            return Reply(f":no_entry: {why}")
        return self.route(user_id, command, channel_id)

    def route(self, user_id: str, cmd: Command, channel_id: str | None) -> Reply:
        q, r = self.queries, self.requests
        if cmd.name == "help":
            return Reply(*views.help_message())
        if cmd.name == "whois":
            return q.whois(user_id, cmd.target)
        if cmd.name == "groups":
            return q.groups()
        if cmd.name == "members":
            return q.members(cmd.rest)
        if cmd.name == "permissions":
            return q.permissions()
        if cmd.name == "request":
            if not cmd.rest:
                return Reply("Usage: `/polaris request <group> [reason]` (or the form, from a slash command).")
            group, reason = q.group_and_rest(cmd.rest)
            return r.request_join(user_id, group.name, check_reason(reason))
        if cmd.name == "invite":
            group, reason = q.group_and_rest(cmd.rest)
            return r.request_invite(user_id, cmd.target, group.name, check_reason(reason))
        if cmd.name == "reset-password":
            return r.request_reset(user_id, cmd.target)
        if cmd.name == "status":
            return q.status(user_id)
        if cmd.name == "pending":
            return q.pending(user_id)
        if cmd.name == "policy":
            return q.policy(user_id)
        raise UsageError("Try `/polaris help`.")
