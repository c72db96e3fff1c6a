"""Who may decide a request, read now: the policy rule, the approvers it names (Slack user groups read now,
the requester's manager), the group as Polaris has it now, how many approvals it needs, and the Slack and
Polaris reads that gather the facts for the pure rule in :mod:`bot.access.authority`.

Raises :class:`bot.polaris.PolarisError` or :class:`bot.slack.SlackError` when a read cannot be made; callers
decide what the person is told.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace

from .. import privilege
from ..audit import audit_context
from ..commands import UsageError
from ..models import (
    ADMIN_DECIDED,
    CREATE_GROUP,
    EDIT_GROUP,
    GROUP_CHANGES,
    INVITE_MANY,
    OFFBOARD,
    REMOVALS,
    RESET_PASSWORD,
    UPDATE_USER,
    AccessRequest,
)
from ..polaris import Group, Permission
from ..policy import MANAGER, Rule
from ..slack import SlackError
from ..views import bulk
from .authority import ORG_ADMIN, AuthorityFacts, decide_authority
from .context import Context

log = logging.getLogger(__name__)


def _plan(req: AccessRequest) -> dict:
    try:
        plan = json.loads(req.plan or "{}")
    except ValueError:
        return {}
    return plan if isinstance(plan, dict) else {}


def disables(req: AccessRequest) -> bool:
    """Whether ``req`` is a user update that disables the account: it takes access away, so it is decided like
    an offboarding (Organization Admin members when the person has a privileged group; a deactivated person's
    account may still be disabled)."""
    return req.kind == UPDATE_USER and _plan(req).get("enabled") is False


class Approvers:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    def rule_for(self, group_name: str | None) -> Rule:
        """The approval policy rule for a group (``None``: password resets)."""
        return self.ctx.policy.for_group(group_name)

    def rule_of(self, req: AccessRequest) -> Rule:
        """The rule of ``req``: its group's, the password-reset rule, or the offboarding rule (``[offboard]``)."""
        if req.kind == OFFBOARD:
            return self.ctx.policy.for_offboard()
        if req.kind in GROUP_CHANGES:  # ADMINS decide (never the requester), one approval unless privileged
            return Rule(ttl=self.ctx.policy.defaults.ttl, source="built-in: ADMINS decide group changes")
        if req.kind == UPDATE_USER:  # like an offboarding's default: ADMINS decide, never the requester nor the person
            return Rule(ttl=self.ctx.policy.defaults.ttl, source="built-in: ADMINS decide user updates")
        return self.rule_for(req.group_name if req.kind != RESET_PASSWORD else None)

    def manager_of(self, user_id: str) -> str | None:
        """The requester's manager: the configured Slack profile field (``users.profile.get``), else the
        policy's ``[managers]`` table; ``None`` when unknown or when it would be themselves."""
        policy = self.ctx.policy
        manager = None
        if policy.manager_field:
            try:
                value = self.ctx.slack.profile_field(user_id, policy.manager_field)
            except SlackError as e:
                log.warning("manager field of %s unreadable: %s", user_id, e.error)
                value = None
            if value and re.match(r"^[UW][A-Z0-9]{2,}$", value.strip()):
                manager = value.strip()
        manager = manager or policy.managers.get(user_id)
        return None if manager == user_id else manager

    @staticmethod
    def is_privileged(group: Group | None) -> bool:
        """Organization Admin, or any group that grants an organization-level administration permission
        (the one list: :data:`bot.privilege.ORG_ADMIN_PERMISSIONS`): two approvals at least, never
        auto-approved, and approved only by Organization Admin members in Polaris."""
        return privilege.is_privileged(group)

    def request_group(self, req: AccessRequest) -> Group | None:
        """The request's group as Polaris has it now (``GET /v1/groups/{id}``, never the cache: a permission
        added since the request changes who may approve it); ``None`` for a password reset.
        Raises :class:`PolarisNotFound` when the group was deleted, :class:`PolarisError` when Polaris fails."""
        if req.kind in GROUP_CHANGES:
            return self._changed_group(req)
        if req.kind in (RESET_PASSWORD, UPDATE_USER) or not req.group_id:
            return None
        return self.ctx.polaris.get_group(req.group_id)

    def _changed_group(self, req: AccessRequest) -> Group:
        """For a group change, the group whose privilege decides who approves: a new group as planned; an
        edited one as Polaris has it now with the planned permissions too (privileged before or after: Organization
        Admins decide); a deleted one as Polaris has it now. Raises :class:`PolarisNotFound` when it is gone."""
        plan = _plan(req)
        planned = tuple(
            Permission(str(p["name"]), tuple(p.get("resources") or ()))
            for p in (plan.get("after") or plan.get("permissions") or [])
            if isinstance(p, dict) and p.get("name")
        )
        if req.kind == CREATE_GROUP:
            return Group(id="", name=req.group_name or "", permissions=planned)
        group = self.ctx.polaris.get_group(req.group_id)
        if req.kind == EDIT_GROUP:
            return replace(group, permissions=group.permissions + planned)
        return group

    def approvals_required(self, req: AccessRequest, group: Group | None) -> int:
        """How many approvals ``req`` needs now: never fewer than fixed at request time, and at least two
        when ``group`` (read from Polaris now) is privileged."""
        return max(req.approvals_required, privilege.approvals_needed(self.rule_of(req).approvals, group))

    def approver_ids(self, req: AccessRequest, memo: dict[str, list[str]] | None = None) -> set[str]:
        """Who may decide ``req`` now: the rule's user IDs, members of its Slack user groups
        (``usergroups.users.list``, read now) and the requester's manager; the environment's APPROVERS and
        ADMINS when the rule names nobody (or only a manager nobody knows); ADMINS alone for an offboarding;
        once the request is escalated, the rule's ``escalate_to`` too."""
        rule = self.rule_of(req)
        memo = {} if memo is None else memo
        ids = self._members(rule.approvers, req, memo)
        named = [a for a in rule.approvers if a != MANAGER]
        if not named and not ids:
            # Nobody named (or only a manager nobody knows): the environment's approvers decide.
            ids = set(self.ctx.settings.admins if req.kind in ADMIN_DECIDED else self.ctx.settings.deciders)
        if req.escalated_at:  # escalated: the rule's escalate_to decide too, under the same checks
            ids |= self._members(rule.escalate_to, req, memo)
        ids.discard(req.requester_id)
        return ids

    def check_decidable(self, req: AccessRequest) -> None:
        """Refuse (:class:`UsageError`, nothing saved) a new request fewer people could ever decide than it needs
        (``approvals_required``): who may decide it (:meth:`approver_ids`, with the rule's ``escalate_to``, who
        decide once it escalates) but the requester and anyone it is for (its person, a bulk invite's people),
        who never decide it. Whether each is an Organization Admin member (a privileged group) is checked at the
        click; this counts who could be. A Slack user group Slack does not read now refuses nothing (the click
        checks); ``escalate_to`` is read only when the approvers alone are too few."""
        memo: dict[str, list[str]] = {}
        never = {req.requester_id, req.target_slack_id, *(p.get("slack_id") for p in bulk.people_of(req))}
        try:
            ids = self.approver_ids(req, memo) - never
            if len(ids) < req.approvals_required:  # escalate_to read only when it could make the difference
                ids |= self._members(self.rule_of(req).escalate_to, req, memo) - never
        except SlackError:  # a Slack user group not read now: no refusal on a guess (the click checks)
            return
        if len(ids) >= req.approvals_required:
            return
        who = f"only {len(ids)} other person" if ids else "nobody else"
        raise UsageError(
            f"Nobody could approve this: it needs {req.approvals_required} approval"
            f"{'s' * (req.approvals_required > 1)}, and {who} may decide it (never the requester, nor the person it "
            "is for). Nothing was asked; an admin can add approvers (APPROVERS, ADMINS or the policy file)."
        )

    def _members(self, entries, req: AccessRequest, memo: dict[str, list[str]]) -> set[str]:
        """The user IDs ``entries`` name: users, the members of user groups (read now), the manager."""
        ids: set[str] = set()
        for entry in entries:
            if entry == MANAGER:
                if req.manager_id:
                    ids.add(req.manager_id)
            elif entry.startswith("S"):
                if entry not in memo:
                    memo[entry] = self.ctx.slack.usergroup_members(entry)  # SlackError: refuse, never fall back
                ids.update(memo[entry])
            else:
                ids.add(entry)
        return ids

    def authority(
        self, actor_id: str, req: AccessRequest, *, approving: bool = True, group: Group | None = None
    ) -> str | None:
        """Why ``actor_id`` may not decide ``req`` now, or ``None`` (:func:`decide_authority`). Each fact is
        read when the rule needs it: Slack identities with ``max_age`` 0 (read now), the group from Polaris
        (``group``: as just read, else read here), Organization Admin membership from Polaris. Raises
        :class:`PolarisError` or :class:`SlackError` when a check cannot be made."""
        if req.kind == INVITE_MANY and any(p.get("slack_id") == actor_id for p in bulk.people_of(req)):
            return "You cannot decide a request that is for you."  # one of the people a bulk invite is for
        slack = self.ctx.slack
        reads = {
            "approver_ids": lambda f: frozenset(self.approver_ids(req)),
            "actor": lambda f: slack.identity(actor_id),
            "requester": lambda f: slack.identity(req.requester_id),
            "target": lambda f: slack.identity(req.target_slack_id),
            "privileged": lambda f: (
                self._offboards_privileged(req)
                if req.kind == OFFBOARD or disables(req)
                else self.is_privileged(group if group is not None else self.request_group(req))
            ),
            "actor_org_admin": lambda f: self._org_admin(actor_id, f.actor.email, req.id),
        }
        facts = AuthorityFacts(
            actor_id=actor_id,
            requester_id=req.requester_id,
            target_slack_id=req.target_slack_id,
            approving=approving,
            removal=req.kind in REMOVALS or disables(req),
            offboarding=req.kind == OFFBOARD,
            group_name=req.group_name,
        )
        for _ in range(len(reads) + 1):
            verdict = decide_authority(facts)
            if verdict.needs is None:
                return verdict.refusal
            facts = replace(facts, **{verdict.needs: reads[verdict.needs](facts)})
        raise AssertionError("authority: a fact was asked for twice")  # pragma: no cover

    def _offboards_privileged(self, req: AccessRequest) -> bool:
        """An offboarding takes away a privileged group (Organization Admin, or one granting an
        organization-level administration permission) from the person, as Polaris has them now: then it needs
        what removing that group needs (Organization Admin members approve)."""
        user = self.ctx.polaris.find_user_by_email(req.target_email)
        if user is None:
            return False
        catalog = self.ctx.catalog
        return any(self.is_privileged(catalog.by_id(gid)) for gid, _name in user.groups)

    def _org_admin(self, actor_id: str, email: str, request_id: str) -> bool:
        admins = self.ctx.catalog.by_name(ORG_ADMIN)
        with audit_context(actor_id, request_id):
            mine = self.ctx.polaris.find_user_by_email(email)
        return not (admins is None or mine is None or not mine.enabled or admins.id not in mine.group_ids)
