"""Asking for a bulk invite: ``/polaris invite <email | @user> [<email | @user> ...] <group> [reason]`` with
several people (kind ``invite_many``): one request, one card listing each person, one decision by the group's
approvers under the same rules as a grant (:meth:`bot.access.requests.Submission._submit` saves it, posts the
card and answers; :mod:`bot.access.bulk_side` applies it).

Each person is checked like a requester before anything is saved: a deactivated, guest or bot Slack account, or
a disabled Polaris account, refuses the command naming who; people already in the group are left out (the reply
says so). At most :data:`bot.views.bulk.MAX_PEOPLE` people; a duration is refused (time-bound invites are one
person at a time). Refusals are :class:`bot.commands.UsageError`.
"""

from __future__ import annotations

import difflib

from .. import durations, views
from ..commands import Target, UsageError, check_reason, looks_like_person
from ..models import INVITE, INVITE_MANY
from ..polaris import Group
from ..views import bulk
from .authority import barred_reason
from .queries import Queries
from .reply import Reply
from .requests import Submission

ONE_AT_A_TIME = (
    "Time-bound invites are one person at a time: send one `/polaris invite <email | @user> {group} for "
    "<duration>` per person, or invite them together for good."
)


def stray_word(rest: str) -> UsageError | None:
    """For the words after an invite's people (``rest``) that name no group: when a later word names a person
    (``a@x not-an-email b@y Viewer``), the refusal naming the words before it, which are neither an email nor
    an @mention; else ``None`` (the group is simply unknown)."""
    words = rest.split()
    for i, word in enumerate(words):
        if i and looks_like_person(word):
            bad = " ".join(words[:i]).replace("`", "'")
            return UsageError(
                f"`{bad}` is neither an email nor an @mention, so nothing was asked: name each person by email "
                "or @mention, then the group."
            )
    return None


class BulkInvites:
    """The ``invite`` of several people; ``submission`` saves the request (its claims, limits and card)."""

    def __init__(self, queries: Queries, submission: Submission):
        self.queries, self.submission = queries, submission
        self.ctx = submission.ctx

    def distinct(self, user_id: str, people: list[Target]) -> tuple[list[Target], list[str]]:
        """(``people`` in the order typed with anyone named twice, an @mention and their email or one email in
        two spellings, kept once, by the email each resolves to (:meth:`Queries.email_for`); the emails named
        more than once, for the answer to say so). Raises :class:`UsageError` for an unknown Slack user."""
        seen: dict[str, Target] = {}
        twice: list[str] = []
        for target in people:
            email = self.queries.email_for(user_id, target)
            if email in seen and email not in twice:
                twice.append(email)
            seen.setdefault(email, target)
        return list(seen.values()), twice

    def stray_before_group(self, rest: str) -> UsageError | None:
        """For the words after an invite's people that name no group: when all but the first word name a group
        (``a@x not-an-email Viewer``), the refusal naming that first word, neither an email nor an @mention;
        else ``None``."""
        words = rest.split()
        if len(words) < 2 or looks_like_person(words[0]):
            return None
        names = [g.name.lower() for g in self.ctx.catalog.all()]
        if difflib.get_close_matches(words[0].lower(), names, n=1, cutoff=0.75):  # `Viewers …`: a mistyped group
            return None
        try:
            self.queries.group_and_rest(" ".join(words[1:]))
        except UsageError:
            return None
        return UsageError(
            f"`{words[0].replace('`', chr(39))[:80]}` is neither an email nor an @mention, so nothing was asked: "
            "name each person by email or @mention, then the group."
        )

    def invite(self, user_id: str, people: list[Target], group: Group, rest: str) -> Reply:
        """``people`` (two or more, in the order typed) invited to ``group``; ``rest`` the words after the group
        (``[for <duration>] [reason]``). Returns the reply; raises :class:`UsageError` naming who is refused."""
        requester = self.queries.active_requester(user_id)
        if len(people) > bulk.MAX_PEOPLE:
            raise UsageError(
                f"You named {len(people)} people; one invite takes at most {bulk.MAX_PEOPLE} (one card line each), "
                "so nothing was asked. Split them into several invites."
            )
        asked, reason = durations.split_duration(rest)
        if asked is not None or self._policy_duration(group) is not None:
            raise UsageError(ONE_AT_A_TIME.format(group=group.name))
        found, members = self._people(user_id, people, group)
        if not found:
            listed = ", ".join(f"`{views.esc(e)}`" for e in members)
            return Reply(f"Everyone you named is already a member of *{views.esc(group.name)}*: {listed}.")
        emails = [p["email"] for p in found]
        reply = self.submission._submit(
            INVITE_MANY,
            requester,
            email=bulk.target_label(emails),
            target_slack_id=None,
            first="",
            last="",
            group=group,
            reason=check_reason(reason),
            plan=bulk.plan_json(found),
        )
        if members:
            listed = ", ".join(f"`{views.esc(e)}`" for e in members)
            reply = Reply(f"{reply.text} Left out, already members of *{views.esc(group.name)}*: {listed}.")
        return reply

    def _policy_duration(self, group: Group) -> int | None:
        """The duration the group's policy gives a grant asked for good (``None``: for good). Raises
        :class:`UsageError` when the policy requires one (then too: one person at a time)."""
        rule = self.submission.approvers.rule_for(group.name)
        try:
            return durations.choose(
                None,
                default=rule.default_duration,
                maximum=rule.max_duration,
                permanent=rule.permanent,
                group=group.name,
            )
        except UsageError:
            raise UsageError(ONE_AT_A_TIME.format(group=group.name)) from None

    def _people(self, user_id: str, people: list[Target], group: Group) -> tuple[list[dict], list[str]]:
        """Each person read and checked: (the plan's people to invite, the emails already in ``group``).
        Raises :class:`UsageError` naming everyone refused (and why)."""
        slack, polaris = self.ctx.slack, self.ctx.polaris
        found: list[dict] = []
        members: list[str] = []
        refused: list[str] = []
        seen: set[str] = set()
        for target in people:
            email = self.queries.email_for(user_id, target)
            if email in seen:
                continue
            seen.add(email)
            slack_id = target.user_id or slack.user_id_for_email(email)
            first = last = ""
            if slack_id:
                who = slack.identity(slack_id, max_age=60)
                why = barred_reason(who, "Their")
                if why:
                    refused.append(f"`{views.esc(email)}`: {why}")
                    continue
                first, last = who.first_name, who.last_name
            existing = polaris.find_user_by_email(email)
            if existing is not None and not existing.enabled:
                refused.append(f"`{views.esc(email)}`: the Polaris account is disabled (offboarded, or by an admin).")
                continue
            if existing is not None and group.id in existing.group_ids:
                members.append(email)
                continue
            dup = self._open_for(email, group)
            if dup is not None:
                refused.append(f"`{views.esc(email)}`: there is already an open request for that (request `{dup}`).")
                continue
            found.append(bulk.person(email, slack_id, first, last, existing.id if existing else None))
        if refused:
            raise UsageError(
                "Nothing was asked: requests cannot be made for deactivated, guest or bot accounts, for disabled "
                "Polaris accounts, nor for someone with an open request for the group.\n"
                + "\n".join(f"• {r}" for r in refused)
            )
        return found, members

    def _open_for(self, email: str, group: Group) -> str | None:
        """The short ID of an open request that would give ``email`` the membership of ``group``: a join or
        one-person invite, or another open bulk invite naming them (:meth:`Submission.open_grant_of`)."""
        dup = self.submission.open_grant_of(INVITE, email, group.id)
        return dup.id[:8] if dup is not None else None
