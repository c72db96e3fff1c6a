"""The read-only answers: ``permissions``, ``status``, ``pending``, ``policy`` and the App Home tab (``whois``,
``groups`` and ``members``, paged, are :mod:`bot.access.paging`'s), and the lookups commands share (a Slack user's email, a group by its typed
name, with a fresh read of the group list on a miss).

Nothing here writes. Refusals are :class:`bot.commands.UsageError` (quoting what was typed, unescaped: escaped
once by :mod:`bot.access.errors`); Polaris and Slack failures propagate.
"""

from __future__ import annotations

import datetime as dt

from .. import privilege, views
from ..commands import Target, UsageError, is_quoted, split_group_and_reason
from ..models import AccessRequest
from ..polaris import Group
from ..slack import SlackIdentity
from .approvers import Approvers
from .context import Context
from .lease_store import LeaseStore
from .reply import Reply
from .store import RequestStore


class Queries:
    def __init__(self, ctx: Context, store: RequestStore, approvers: Approvers):
        self.ctx, self.store, self.approvers = ctx, store, approvers
        self.leases = LeaseStore(ctx.db)

    # ------------------------------------------------------------------------------- lookups
    def email_for(self, user_id: str, target: Target) -> str:
        if target.email:
            return target.email
        who = target.user_id or user_id
        identity = self.ctx.slack.identity(who)
        if not identity.exists:
            raise UsageError("I could not find that Slack user.")
        if not identity.email:
            raise UsageError("That person has no email on their Slack profile that I can read.")
        return identity.email.lower()

    def active_requester(self, user_id: str) -> SlackIdentity:
        """The Slack identity of someone asking for a change (``users.info``, 60 s cache): an active full member
        with an email, else :class:`UsageError` with the refusal (guest, bot, deactivated, no email)."""
        identity = self.ctx.slack.identity(user_id, max_age=60)
        refusal = identity.refusal()
        if refusal:
            raise UsageError(refusal)
        return identity

    def resolve_group(self, name: str) -> Group:
        """The group named ``name`` (case-insensitive, quotes ignored). On a miss the group list is read again
        from Polaris (:meth:`GroupCatalog.refresh`, at most every few seconds), so a group made outside the bot
        is found at once. Raises :class:`UsageError` quoting ``name`` whole, with the nearest names, when
        there is none."""
        catalog = self.ctx.catalog
        group = catalog.by_name(name)
        if group is None:
            catalog.refresh()
            group = catalog.by_name(name)
        if group is not None:
            return group
        raise self._no_such_group(name, name)

    def group_and_rest(self, rest: str) -> tuple[Group, str]:
        """``<group> [words]`` as typed (request, invite, members) -> (the group, the words after its name).

        The group is the quoted name, or the longest run of leading words naming a known group. When none is
        known, or words follow an unquoted name (a group made since, "Finance Readers", may be longer than the
        known "Finance"), the group list is read again (:meth:`GroupCatalog.refresh`: at most one Polaris call
        every few seconds) and the text split again. Raises :class:`UsageError` quoting the whole typed text
        (not a guessed first word) when it names no group."""
        catalog = self.ctx.catalog
        group_text, after = split_group_and_reason(rest, [g.name for g in catalog.all()], check_lengths=False)
        group = catalog.by_name(group_text)
        if group is None or (after and not is_quoted(rest)):
            names = [g.name for g in catalog.refresh()]
            group_text, after = split_group_and_reason(rest, names, check_lengths=False)
            group = catalog.by_name(group_text)
        if group is None:
            raise self._no_such_group(group_text if is_quoted(rest) else rest.strip(), group_text)
        return group, after

    def _no_such_group(self, typed: str, guess: str) -> UsageError:
        """The refusal for text naming no group: ``typed`` quoted whole (escaped later, by
        :func:`bot.access.errors.guarded`), suggestions near ``guess``."""
        near = self.ctx.catalog.nearest(guess)
        hint = (" Did you mean " + " or ".join(f"*{n}*" for n in near) + "?") if near else ""
        shown = typed if len(typed) <= 300 else typed[:299] + "…"
        return UsageError(
            f"There is no Polaris group called `{shown.replace('`', chr(39))}`"
            f"{', nor one named by its first words' if len(typed.split()) > 1 and typed != guess else ''}."
            f"{hint} `/polaris groups` lists them."
        )

    # ------------------------------------------------------------------------------- commands
    def groups(self) -> Reply:
        return Reply(*views.group_list(self.ctx.catalog.all()))

    def permissions(self) -> Reply:
        return Reply(*views.permission_catalogue(self.ctx.polaris.list_permissions()))

    def status(self, user_id: str) -> Reply:
        """``status``: your open requests (and those failed in the last 30 days), then your time-bound access
        with its ends."""
        now = self.ctx.clock()
        rows = self.store.of_requester(user_id, failed_since=now - dt.timedelta(days=30))
        text, blocks = views.request_list(
            "Your open requests", rows, "You have no open requests.", cancellable_by=user_id
        )
        email = self.ctx.slack.identity(user_id, max_age=60).email or ""
        leases = (
            self.leases.active_of(email, slack_id=user_id) if email else self.leases.active_of("", slack_id=user_id)
        )
        if leases:
            text += f" · time-bound access: {len(leases)}"
        return Reply(text, blocks + views.leases.lease_list(leases, now))

    def awaiting(self, user_id: str) -> list[AccessRequest] | None:
        """The pending requests ``user_id`` may decide now; ``None`` when they are no approver at all."""
        rows = self.store.pending_of_others(user_id, self.ctx.clock())
        memo: dict[str, list[str]] = {}
        mine = [r for r in rows if user_id in self.approvers.approver_ids(r, memo) and user_id != r.target_slack_id]
        if not mine and user_id not in self.ctx.settings.deciders and user_id not in self.ctx.policy.direct_approvers():
            return None
        return mine

    def pending(self, user_id: str) -> Reply:
        mine = self.awaiting(user_id)
        if mine is None:
            return Reply(
                "You are not an approver, so nothing is waiting for you. `/polaris status` shows your own requests."
            )
        return Reply(*self._awaiting_list(mine))

    def _awaiting_list(self, mine: list[AccessRequest]) -> tuple[str, list]:
        """Each request awaiting you: how long it has waited, when it reminds, escalates and expires."""
        return views.approvals.awaiting_list(
            "Requests awaiting a decision", mine[:25], "Nothing is waiting for your decision.", self.ctx.clock()
        )

    def policy(self, user_id: str) -> Reply:
        """``/polaris policy`` (admins): the effective rule for each group and for password resets."""
        settings, policy = self.ctx.settings, self.ctx.policy
        if user_id not in settings.admins:
            return Reply("Only admins can see the approval policy.")
        groups = self.ctx.catalog.all()
        lines = [f"*{views.esc(g.name)}*: {policy.for_group(g.name).describe()}" for g in groups]
        known = {" ".join(g.name.split()).lower() for g in groups}
        unknown = sorted(name for name in policy.groups if name not in known)
        if unknown:  # a misspelt table ("Viewr") would otherwise be silently unused
            lines.append(
                ":warning: The policy file has rules for groups Polaris does not have (misspelt, or deleted): "
                + ", ".join(f"`{views.esc(n)}`" for n in unknown)
            )
        lines.append(f"*Password resets*: {policy.for_group(None).describe()}")
        offboard = policy.for_offboard()
        lines.append(f"*Offboarding*: {offboard.describe().replace('the default approvers', 'ADMINS', 1)}")
        default_who = ", ".join(views.mention(u) for u in sorted(settings.deciders)) or "none"
        head = f"Default approvers (APPROVERS and ADMINS): {default_who}. {privilege.describe()}"
        return Reply(
            "Approval policy",
            [views.header("Approval policy"), views.section(head), views.section(views.bullet_list(lines, limit=30))],
        )

    def home_view(self, user_id: str) -> dict:
        """The App Home tab for ``user_id``: help, their open requests, and (for an approver) what awaits their
        decision."""
        mine = self.status(user_id)
        blocks = [views.header("Polaris access"), views.section(views.HELP_TEXT), {"type": "divider"}]
        blocks += mine.blocks or []
        waiting = self.awaiting(user_id)
        if waiting is not None:
            _, more = self._awaiting_list(waiting)
            blocks += [{"type": "divider"}] + more
        return {"type": "home", "blocks": blocks[:100]}
