"""Who may decide a request: a pure function, facts in, verdict out (no I/O, no clock, no database).

:func:`decide_authority` applies the rule, checked at click time:

1. never the requester, nor the person the request is for;
2. an approver under the policy now (``approver_ids``);
3. an active full member of the workspace (``actor`` not a guest, bot or deactivated account);
4. approving (not denying) access: the requester, and the person it is for, still active full members (not
   for a removal or offboarding, ``removal``: taking access from a deactivated person is the point);
5. for a privileged group (Organization Admin, or one granting an organization-level administration
   permission: :mod:`bot.privilege`), or one named Organization Admin: an enabled member of Organization Admin
   in Polaris (``actor_org_admin``), which needs an email on the actor's Slack profile.

Facts that cost a Slack or Polaris read may be left ``None``; the verdict then names the first one it
``needs`` (in the order above), so the caller (:meth:`bot.access.approvers.Approvers.authority`) reads only
what the decision needs, one fact at a time. With every fact given, a verdict never needs one.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import privilege
from ..slack import SlackIdentity

ORG_ADMIN = privilege.ORG_ADMIN


def barred_reason(identity: SlackIdentity, whose: str) -> str | None:
    """Why the Slack account ``identity`` (``whose``: e.g. "The requester's") bars a request made by or
    for it (unknown, deactivated, bot or guest, the same flags as :attr:`SlackIdentity.barred`), as a
    sentence; ``None`` when it does not."""
    if not identity.exists:
        return f"{whose} Slack account no longer exists."
    if identity.deleted:
        return f"{whose} Slack account is deactivated."
    if identity.is_bot:
        return f"{whose} Slack account is a bot."
    if identity.is_guest:
        return f"{whose} Slack account is a guest account."
    return None


@dataclass(frozen=True)
class AuthorityFacts:
    """What the authority rule looks at. ``None``: not read yet."""

    actor_id: str
    requester_id: str
    target_slack_id: str | None
    approving: bool
    removal: bool = False  # the request takes access away (leave, remove, offboard)
    group_name: str | None = None  # the request's group, as recorded
    approver_ids: frozenset[str] | None = None  # who may decide it now (policy, Slack user groups, manager)
    actor: SlackIdentity | None = None
    requester: SlackIdentity | None = None
    target: SlackIdentity | None = None  # the person it is for (when not the requester)
    privileged: bool | None = None  # the group, as Polaris has it now, is privileged
    actor_org_admin: bool | None = None  # the actor is an enabled Organization Admin member in Polaris


@dataclass(frozen=True)
class Verdict:
    """``refusal``: why not, a sentence for the clicker; ``needs``: the fact to read before deciding; both
    ``None``: the actor may decide."""

    refusal: str | None = None
    needs: str | None = None

    @property
    def allowed(self) -> bool:
        return self.refusal is None and self.needs is None


ALLOWED = Verdict()


def decide_authority(f: AuthorityFacts) -> Verdict:
    """The verdict on ``f`` (see the module's docstring): the first of these checks that refuses, or asks for a
    fact, decides; the facts are asked for in the order the checks need them."""
    for check in (_who, _parties if f.approving and not f.removal else None, _privilege):
        verdict = check(f) if check else None
        if verdict is not None:
            return verdict
    return ALLOWED


def _who(f: AuthorityFacts) -> Verdict | None:
    """Never the requester or the person it is for; an approver, of a Slack account that may act."""
    if f.actor_id == f.requester_id:
        return Verdict("You cannot decide your own request.")
    if f.target_slack_id and f.actor_id == f.target_slack_id:
        return Verdict("You cannot decide a request that is for you.")
    if f.approver_ids is None:
        return Verdict(needs="approver_ids")
    if f.actor_id not in f.approver_ids:
        return Verdict("Only approvers can decide access requests.")
    if f.actor is None:
        return Verdict(needs="actor")
    if f.actor.barred:
        return Verdict("Your Slack account cannot decide access requests (deactivated, guest or bot).")
    return None


def _parties(f: AuthorityFacts) -> Verdict | None:
    """Approving: the requester and the person it is for may still have access (not deactivated or a guest)."""
    if f.requester is None:
        return Verdict(needs="requester")
    if f.requester.barred:
        return Verdict(
            "The requester's Slack account is now deactivated or a guest account; this request can "
            "only be denied or left to expire."
        )
    if f.target_slack_id and f.target_slack_id != f.requester_id:
        if f.target is None:
            return Verdict(needs="target")
        why = barred_reason(f.target, "The Slack account of the person it is for")
        if why:
            return Verdict(f"{why[:-1]} now; this request can only be denied or left to expire.")
    return None


def _privilege(f: AuthorityFacts) -> Verdict | None:
    """A privileged group (or Organization Admin itself): only Organization Admin members in Polaris."""
    if f.privileged is None:
        return Verdict(needs="privileged")
    if not (f.privileged or (f.group_name or "").lower() == ORG_ADMIN.lower()):
        return None
    if not f.actor.email:
        return Verdict(f"Only {ORG_ADMIN} members in Polaris can approve this, and your Slack profile has no email.")
    if f.actor_org_admin is None:
        return Verdict(needs="actor_org_admin")
    if not f.actor_org_admin:
        return Verdict(f"Only members of {ORG_ADMIN} in Polaris can approve access that administers users.")
    return None
