"""Block Kit pieces shared by every message: limits, action IDs, state labels, mrkdwn escaping (:func:`esc`),
sections, headers, lists, and the words for what a request is for."""

import json
from collections import defaultdict
from typing import Iterable, Mapping, Sequence

from .. import durations
from ..models import (
    APPLIED,
    APPROVED,
    BOT_REQUESTER,
    CANCELLED,
    DENIED,
    EXPIRED,
    FAILED,
    GRANTS,
    GROUP_CHANGES,
    INVITE,
    INVITE_MANY,
    JOIN,
    LEAVE,
    OFFBOARD,
    PENDING,
    REMOVE,
    UPDATE_USER,
    AccessRequest,
)
from ..polaris import Permission


SECTION_MAX = 3000
HEADER_MAX = 150
MESSAGE_BLOCKS_MAX = 50
LIST_MAX = 40

APPROVE_ACTION = "approve_request"
DENY_ACTION = "deny_request"  # opens the Deny form (a reason), DENY_MODAL
APPROVE_OPTIONS_ACTION = "approve_options"  # opens the Approve form (a comment, a shorter time), APPROVE_MODAL
DENY_MODAL = "deny_modal"
APPROVE_MODAL = "approve_modal"
RETRY_ACTION = "retry_request"
CANCEL_ACTION = "cancel_request"  # the requester withdraws a pending request (status, App Home)
REQUEST_MODAL = "request_modal"

STATE_LABEL = {
    PENDING: "Pending approval",
    APPROVED: "Approved, applying",
    APPLIED: "Approved and applied",
    FAILED: "Approved, but failed in Polaris",
    DENIED: "Denied",
    EXPIRED: "Expired",
    CANCELLED: "Cancelled",
}
STATE_EMOJI = {
    PENDING: ":hourglass_flowing_sand:",
    APPROVED: ":gear:",
    APPLIED: ":white_check_mark:",
    FAILED: ":x:",
    DENIED: ":no_entry_sign:",
    EXPIRED: ":alarm_clock:",
    CANCELLED: ":heavy_multiplication_x:",
}


def counted(n: int, word: str) -> str:
    """``n`` and ``word``, plural unless ``n`` is 1: ``counted(1, "member")`` -> "1 member", ``3`` -> "3 members"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def esc(text: object) -> str:
    """Escape ``&``, ``<`` and ``>`` (and nothing else) for mrkdwn, per Slack's "Escaping text" rules."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


POLICY_ACTOR = "policy"


def mention(user_id: str | None) -> str:
    """A user mention for an ID the bot itself knows (never for typed text)."""
    if user_id == POLICY_ACTOR:
        return "the approval policy (auto-approved)"
    if user_id == BOT_REQUESTER:
        return "the bot"
    return f"<@{user_id}>" if user_id else "someone"


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_MAX)}}


def header(text: str) -> dict:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, HEADER_MAX), "emoji": True}}


def context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, SECTION_MAX)}]}


def bullet_list(
    items: Sequence[str], limit: int = LIST_MAX, budget: int = SECTION_MAX - 100, total: int | None = None
) -> str:
    """Lines ``• item`` (items already escaped), cut by count and length with one "…and N more" line;
    ``total`` is the full count when ``items`` is only the first page."""
    total = len(items) if total is None else max(total, len(items))
    lines: list[str] = []
    used = 0
    shown = 0
    for i, item in enumerate(items):
        line = f"• {clip(item, budget - 40)}"
        if i >= limit or used + len(line) + 1 > budget - 40:
            break
        lines.append(line)
        used += len(line) + 1
        shown += 1
    if total > shown:
        lines.append(f"…and {total - shown} more")
    return "\n".join(lines) if lines else "_none_"


def names(user_ids: Sequence[str]) -> str:
    """Mentions joined as a sentence: ``<@A>``, ``<@A> and <@B>``, ``<@A>, <@B> and <@C>``."""
    shown = [mention(u) for u in user_ids] or [mention(None)]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def outcome_text(req: AccessRequest) -> str:
    """The request's outcome (Polaris's answer, or what was done), escaped, with the group's Polaris ID
    replaced by the group's name: people know groups by name."""
    text = esc(req.outcome or "")
    if req.group_id and req.group_name:
        text = text.replace(esc(req.group_id), esc(req.group_name))
    return text


def kind_phrase(req: AccessRequest) -> str:
    """What the request is for, in words (escaped); a time-bound grant says for how long ("for 2 hours")."""
    group = f"*{esc(req.group_name)}*" if req.group_name else ""
    if req.kind in GROUP_CHANGES:
        from .groups import change_phrase  # groups builds on these pieces

        return change_phrase(req)
    if req.kind == INVITE_MANY:
        from .bulk import phrase  # bulk builds on these pieces

        return phrase(req)
    if req.kind == UPDATE_USER:
        from .users import update_phrase  # users builds on these pieces

        return update_phrase(req)
    if req.kind in GRANTS and req.duration_seconds:
        group = f"{group} for {durations.describe(req.duration_seconds)}"
    if req.kind == JOIN:
        return f"membership in {group}"
    if req.kind == INVITE and not creates_account(req):  # the invitee had an account when asked: a membership
        return f"membership in {group} for `{esc(req.target_email)}`"
    if req.kind == INVITE:
        return f"a Polaris account for `{esc(req.target_email)}` in {group}"
    if req.kind == LEAVE:
        return f"leaving {group}"
    if req.kind == REMOVE:
        return f"the removal of `{esc(req.target_email)}` from {group}"
    if req.kind == OFFBOARD:
        return f"offboarding `{esc(req.target_email)}` (every group removed, the Polaris account disabled)"
    return f"a password reset for `{esc(req.target_email)}`"


def creates_account(req: AccessRequest) -> bool:
    """True for an invite that creates a Polaris account: an ``INVITE`` whose invitee had none when asked
    (no ``polaris_user_id`` yet, or ``"new_account": true`` in its JSON ``plan``, written at request time and
    still true once the apply has set ``polaris_user_id``)."""
    if req.kind != INVITE:
        return False
    if not req.polaris_user_id:
        return True
    try:
        plan = json.loads(req.plan) if req.plan else {}
    except ValueError:
        return False
    return isinstance(plan, dict) and plan.get("new_account") is True


def account_names(req: AccessRequest) -> str | None:
    """For an invite that creates a Polaris account (:func:`creates_account`): the names the account gets,
    escaped ("Ana Silva, from their Slack profile"), or a sentence saying why there are none (the invitee's
    Slack profile has no names; or the email belongs to no workspace member, so ``users.lookupByEmail`` gave no
    profile). ``None`` for any other request (an existing account keeps its names)."""
    if not creates_account(req):
        return None
    full = " ".join(n for n in (req.target_first_name, req.target_last_name) if n)
    if full:
        return f"{esc(full)}, from their Slack profile"
    if req.target_slack_id:
        return "none: their Slack profile has no first or last name, so the account gets none"
    return "unknown: the email belongs to no member of this workspace, so the account gets no first or last name"


def ask_phrase(req: AccessRequest) -> str:
    """The card's first line: who asks for what (escaped), e.g. "<@U1> asks to remove `x` from *G*"."""
    who = mention(req.requester_id)
    email = f"`{esc(req.target_email)}`"
    if req.kind == REMOVE:
        return f"{who} asks to remove {email} from *{esc(req.group_name or req.group_id)}*"
    if req.kind == OFFBOARD and req.requester_id == BOT_REQUESTER:
        whose = f"{mention(req.target_slack_id)} ({email})" if req.target_slack_id else email
        return f":warning: The Slack account of {whose} was deactivated: the bot asks to offboard {email}"
    if req.kind == OFFBOARD:
        return f"{who} asks to offboard {email}"
    if req.kind == LEAVE:
        return f"{who} leaves *{esc(req.group_name or req.group_id)}*"
    if req.kind in GROUP_CHANGES:
        verb = {"create_group": "create", "edit_group": "change", "delete_group": "delete"}[req.kind]
        return f"{who} asks to {verb} the group *{esc(req.group_name)}*"
    if req.kind == UPDATE_USER:
        return f"{who} asks to change the Polaris user `{esc(req.target_email)}`"
    return f"{who} asks for {kind_phrase(req)}"


def permission_lines(permissions: Iterable[Permission], labels: Mapping[str, str] | None = None) -> list[str]:
    """One escaped line per permission, grouped by resource scope (organization-level first). ``labels``:
    resource -> the words shown for it (a project's name); a resource without one is shown as its string, but
    ``projects/*``, which is *all projects*. A scope of more than 12 permissions takes several lines, the later
    ones marked "(continued)"."""
    labels = labels or {}
    by_scope: dict[str, list[str]] = defaultdict(list)
    for p in permissions:
        scopes = p.resources or ("organization",)
        for scope in scopes:
            by_scope[scope].append(p.name)
    out = []
    for scope in sorted(by_scope, key=lambda s: (s != "organization", s)):
        names = sorted(set(by_scope[scope]))
        label = "Organization" if scope == "organization" else f"`{esc(scope)}`"
        if scope in labels or scope == "projects/*":
            label = f"*{esc(labels.get(scope, 'all projects'))}*"
        for start in range(0, len(names), 12):  # long scopes become several lines, so a cut list still shows names
            more = " (continued)" if start else ""
            out.append(f"{label}{more}: {esc(', '.join(names[start : start + 12]))}")
    return out


def user_label(user, *, bold: bool = False) -> str:
    """A Polaris user as lookups show them (escaped): ``Alice Tester (`alice@x.com`)``, the name in bold when
    ``bold``; a user with no names is their username alone (not ``a@x.com (`a@x.com`)``)."""
    named = user.display_name  # the names, else the username (bot/polaris/models.py)
    if named == user.username:
        return f"`{esc(user.username)}`"
    return f"{f'*{esc(named)}*' if bold else esc(named)} (`{esc(user.username)}`)"
