"""``/polaris groups <name>`` (issue 11): one group in detail, from Polaris now: predefined (read-only) or not,
its member count, its permissions by resource with project names (``GET /v1/projects``, cached by
:class:`bot.polaris.ProjectCatalog`), and who approves a request for it under the policy."""

from __future__ import annotations

from .. import privilege, views
from ..policy import MANAGER
from .approvers import Approvers
from .context import Context
from .queries import Queries
from .reply import Reply


class GroupInfo:
    """Answers ``groups <name>``; ``queries`` resolves the name (nearest names on a miss)."""

    def __init__(self, ctx: Context, queries: Queries, approvers: Approvers):
        self.ctx, self.queries, self.approvers = ctx, queries, approvers

    def show(self, name: str) -> Reply:
        """One group: ``GET /v1/groups/{id}`` (fresh), the project names, the policy rule. Raises
        :class:`bot.commands.UsageError` for an unknown name, :class:`bot.polaris.PolarisError`."""
        group = self.ctx.polaris.get_group(self.queries.resolve_group(name).id)
        members = group.user_count
        if members is None:
            members = self.ctx.polaris.list_members(group.id, top=1).count
        labels = {r: self.ctx.projects.label(r) for p in group.permissions for r in p.resources}
        return Reply(
            *views.groups.group_detail(group, labels=labels, members=members, approvers=self.approvers_text(group))
        )

    def approvers_text(self, group) -> str:
        """Who decides a request for ``group`` under the policy, in words (escaped): the rule's approvers (or
        the default APPROVERS and ADMINS), how many approvals, and the Organization Admin condition."""
        rule = self.approvers.rule_for(group.name)
        named = [a for a in rule.approvers if a != MANAGER]
        who = [views.mention(a) if not a.startswith("S") else f"<!subteam^{a}>" for a in named]
        if MANAGER in rule.approvers:
            who.append("the requester's manager")
        if not named:
            deciders = sorted(self.ctx.settings.deciders)
            default = ", ".join(views.mention(u) for u in deciders) or "nobody configured"
            who.append(f"the default approvers (APPROVERS and ADMINS: {default})")
        needed = privilege.approvals_needed(rule.approvals, group)
        text = f"{', '.join(who)}; {needed} approval{'s' if needed != 1 else ''}"
        if privilege.is_privileged(group):
            text += f", each by an {privilege.ORG_ADMIN} member in Polaris"
        if rule.auto_approve and not privilege.is_privileged(group):
            text += "; auto-approved"
        return text
