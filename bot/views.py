"""Block Kit builders (one per message type) and mrkdwn escaping.

Every piece of text that came from a person or from Polaris passes through :func:`esc` exactly once, here,
so ``<!channel>``, ``<@U…>`` and ``<https://x|label>`` typed by someone arrive as harmless text. Limits of
Slack's Block Kit reference hold: section text ≤ 3000 characters, header ≤ 150, ≤ 50 blocks a message,
≤ 100 in a modal; long lists are cut with "and N more". Every message has a fallback ``text``.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Sequence

from . import privilege
from .models import APPLIED, APPROVED, DENIED, EXPIRED, FAILED, INVITE, JOIN, PENDING, RESET_PASSWORD, AccessRequest
from .polaris import Group, Permission, User

SECTION_MAX = 3000
HEADER_MAX = 150
MESSAGE_BLOCKS_MAX = 50
LIST_MAX = 40

APPROVE_ACTION = "approve_request"
DENY_ACTION = "deny_request"
RETRY_ACTION = "retry_request"
REQUEST_MODAL = "request_modal"

STATE_LABEL = {PENDING: "Pending approval", APPROVED: "Approved, applying", APPLIED: "Approved and applied",
               FAILED: "Approved, but failed in Polaris", DENIED: "Denied", EXPIRED: "Expired"}
STATE_EMOJI = {PENDING: ":hourglass_flowing_sand:", APPROVED: ":gear:", APPLIED: ":white_check_mark:",
               FAILED: ":x:", DENIED: ":no_entry_sign:", EXPIRED: ":alarm_clock:"}


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
    return f"<@{user_id}>" if user_id else "someone"


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_MAX)}}


def header(text: str) -> dict:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, HEADER_MAX), "emoji": True}}


def context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, SECTION_MAX)}]}


def bullet_list(items: Sequence[str], limit: int = LIST_MAX, budget: int = SECTION_MAX - 100,
                total: int | None = None) -> str:
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
    """What the request is for, in words (escaped)."""
    group = f"*{esc(req.group_name)}*" if req.group_name else ""
    if req.kind == JOIN:
        return f"membership in {group}"
    if req.kind == INVITE and req.polaris_user_id:  # the invitee had an account when asked: a membership
        return f"membership in {group} for `{esc(req.target_email)}`"
    if req.kind == INVITE:
        return f"a Polaris account for `{esc(req.target_email)}` in {group}"
    return f"a password reset for `{esc(req.target_email)}`"


def permission_lines(permissions: Iterable[Permission]) -> list[str]:
    """One escaped line per permission, grouped by resource scope (organization-level first)."""
    by_scope: dict[str, list[str]] = defaultdict(list)
    for p in permissions:
        scopes = p.resources or ("organization",)
        for scope in scopes:
            by_scope[scope].append(p.name)
    out = []
    for scope in sorted(by_scope, key=lambda s: (s != "organization", s)):
        names = sorted(set(by_scope[scope]))
        label = "Organization" if scope == "organization" else f"`{esc(scope)}`"
        for start in range(0, len(names), 12):  # long scopes become several lines, so a cut list still shows names
            out.append(f"{label}: {esc(', '.join(names[start:start + 12]))}")
    return out


# ----------------------------------------------------------------------------------- approval card
def approval_card(req: AccessRequest, *, group: Group | None = None, approvals: Sequence[str] = (),
                  note: str | None = None, manager_wanted: bool = False) -> tuple[str, list[dict]]:
    """The approval message for ``req`` in its current state: (fallback text, blocks).

    Pending: who asks, what for, the reason, what the group grants, and the ``Approve``/``Deny`` buttons
    (``value`` = request ID). Decided: the decision, the decider and the outcome, buttons gone; a failed
    request gets a ``Retry`` button.
    """
    who = mention(req.requester_id)
    title = f"Access request: {kind_phrase(req)}"
    text = f"{who} asks for {kind_phrase(req)}"
    blocks: list[dict] = [header("Polaris access request"), section(f"{who} asks for {kind_phrase(req)}."),
                          _card_fields(req)]
    blocks += _card_grants(req, group)
    blocks += _card_approvals(req, approvals, manager_wanted)
    blocks += _card_state(req)
    if note:
        blocks.append(context(note))
    blocks += _card_buttons(req)
    blocks.append(context(f"Request `{req.id[:8]}` · {req.created_at:%Y-%m-%d %H:%M} UTC"))
    return clip(f"{title} — {STATE_LABEL.get(req.state, req.state)} ({text})", 3000), blocks[:MESSAGE_BLOCKS_MAX]


def _card_fields(req: AccessRequest) -> dict:
    """Requester, the person it is for (when someone else), group and reason."""
    who = mention(req.requester_id)
    fields = [f"*Requester*\n{who} (`{esc(req.requester_email or 'no email')}`)"]
    if (req.target_email or "").lower() != (req.requester_email or "").lower():
        target = f"{mention(req.target_slack_id)} (`{esc(req.target_email)}`)" if req.target_slack_id \
            else f"`{esc(req.target_email)}`"
        fields.append(f"*For*\n{target}")
        fields.append("*Note*\n:warning: Requested on someone else's behalf")
    if req.group_name:
        fields.append(f"*Group*\n{esc(req.group_name)}")
    fields.append(f"*Reason*\n{esc(req.reason) if req.reason else '_none given_'}")
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": clip(f, 2000)} for f in fields[:10]]}


def _card_grants(req: AccessRequest, group: Group | None) -> list[dict]:
    """What the group grants, and the privileged-group warning."""
    if group is None or req.kind == RESET_PASSWORD:
        return []
    grants = permission_lines(group.permissions)
    blocks = [section(f"*{esc(group.name)} grants:*\n" + bullet_list(grants, limit=15))]
    if privilege.is_privileged(group):
        why = ", ".join(privilege.privileged_grants(group)) or privilege.ORG_ADMIN
        blocks.append(context(f":rotating_light: Privileged ({esc(why)}): needs {privilege.PRIVILEGED_APPROVALS} "
                              f"approvals by {privilege.ORG_ADMIN} members in Polaris."))
    return blocks


def _card_approvals(req: AccessRequest, approvals: Sequence[str], manager_wanted: bool) -> list[dict]:
    """Who decides (the manager, when wanted) and the approvals so far, when more than one is needed."""
    blocks = []
    if req.manager_id:
        blocks.append(context(f"Manager approval: {mention(req.manager_id)} decides (a copy of this card was sent to them)."))
    elif manager_wanted:
        blocks.append(context("Manager approval: no manager is known for the requester, so the group's other "
                              "approvers decide."))
    if req.approvals_required > 1:
        got = ", ".join(mention(a) for a in approvals) or "none yet"
        if req.state == PENDING:
            blocks.append(context(f"Needs {req.approvals_required} approvals. So far: {got}"))
        elif approvals:
            blocks.append(context(f"Approved by {got}"))
    return blocks


def _card_state(req: AccessRequest) -> list[dict]:
    """The state line (who decided), the outcome, and a failed attempt's count and time."""
    state = f"{STATE_EMOJI.get(req.state, '')} *{STATE_LABEL.get(req.state, req.state)}*"
    if req.decided_by and req.state != PENDING:
        verb = "Denied" if req.state == DENIED else "Approved"
        state += f" — {verb.lower()} by {mention(req.decided_by)}"
    if req.state == EXPIRED:
        state += " — nobody decided in time"
    blocks = [section(state)]
    if req.outcome and req.state in (APPLIED, FAILED, APPROVED):
        blocks.append(context(outcome_text(req)))
    if req.state == FAILED:
        retries = req.retries or 0
        retried = f" ({retries} Retr{'y' if retries == 1 else 'ies'} so far)" if retries else ""
        when = f" at {req.updated_at:%Y-%m-%d %H:%M:%S} UTC" if req.updated_at else ""
        blocks.append(context(f"Attempt {retries + 1} failed{when}{retried}."))
    return blocks


def _card_buttons(req: AccessRequest) -> list[dict]:
    """Approve/Deny while pending, Retry when failed (``value`` = request ID), none otherwise."""
    if req.state == PENDING:
        return [{"type": "actions", "block_id": f"decide:{req.id}", "elements": [
            {"type": "button", "action_id": APPROVE_ACTION, "style": "primary", "value": req.id,
             "text": {"type": "plain_text", "text": "Approve"}},
            {"type": "button", "action_id": DENY_ACTION, "style": "danger", "value": req.id,
             "text": {"type": "plain_text", "text": "Deny"}},
        ]}]
    if req.state == FAILED:
        return [{"type": "actions", "block_id": f"retry:{req.id}", "elements": [
            {"type": "button", "action_id": RETRY_ACTION, "value": req.id,
             "text": {"type": "plain_text", "text": "Retry"}}]}]
    return []


def requester_update(req: AccessRequest, approvers: Sequence[str] = ()) -> str:
    """The DM text the requester gets at a state change (mrkdwn, escaped). ``approvers``: everyone whose
    approval counted (named when approved; the decider alone when empty)."""
    what = kind_phrase(req)
    ref = f"(request `{req.id[:8]}`)"
    if req.state == PENDING:
        if req.approval_ts:
            return f"Your request for {what} is waiting for approval {ref}."
        return (f"Your request for {what} is saved, but I could not post it to the approvers yet; "
                f"I will keep trying {ref}.")
    if req.state == APPROVED:
        who = names(approvers) if approvers else mention(req.decided_by)
        return f"Your request for {what} was approved by {who}; applying it in Polaris now {ref}."
    if req.state == APPLIED:
        return f":white_check_mark: Done: {what}. {outcome_text(req)} {ref}"
    if req.state == FAILED:
        attempt = f" (attempt {req.retries + 1})" if req.retries else ""  # None before the row is saved
        return (f":x: Your request for {what} was approved but Polaris refused or failed{attempt}: "
                f"{outcome_text(req)}. An approver can retry it {ref}.")
    if req.state == DENIED:
        return f"Your request for {what} was denied by {mention(req.decided_by)} {ref}."
    if req.state == EXPIRED:
        return f"Your request for {what} expired before anyone decided {ref}. You can ask again."
    return f"Your request {ref} is now {req.state}."


# ----------------------------------------------------------------------------------- lookups
def whois(user: User, permissions: Sequence[Permission], *, asked_for: str) -> tuple[str, list[dict]]:
    """``/polaris whois`` answer: the user, enabled or not, groups, effective permissions by resource."""
    status = "enabled" if user.enabled else "*disabled*"
    groups = [esc(name or gid) for gid, name in user.groups]
    blocks = [
        header(clip(f"Polaris user {user.username}", HEADER_MAX)),
        section(f"*{esc(user.display_name)}* (`{esc(user.username)}`) — {status}"
                + (f"\nPending actions: {esc(', '.join(user.actions))}" if user.actions else "")),
        section("*Groups*\n" + bullet_list(groups)),
        section("*Effective permissions*\n" + bullet_list(permission_lines(permissions), limit=30)),
    ]
    return f"Polaris user {esc(user.username)}", blocks


def group_list(groups: Sequence[Group]) -> tuple[str, list[dict]]:
    """``/polaris groups``: name, predefined or custom, member count, number of permissions."""
    lines = [f"*{esc(g.name)}*{' (predefined)' if g.read_only else ''} — "
             f"{g.user_count if g.user_count is not None else '?'} member{'' if g.user_count == 1 else 's'}, "
             f"{len(g.permissions)} permission{'' if len(g.permissions) == 1 else 's'}"
             for g in groups]
    return f"{len(groups)} Polaris groups", [header("Polaris groups"), section(bullet_list(lines))]


def member_list(group: Group, members: Sequence[User], total: int) -> tuple[str, list[dict]]:
    """``/polaris members <group>``: the first page of members and the total."""
    lines = [f"{esc(m.display_name)} (`{esc(m.username)}`)" for m in members]
    noun = "member" if total == 1 else "members"
    return (f"{total} {noun} of {esc(group.name)}",
            [header(clip(f"Members of {group.name}", HEADER_MAX)),
             section(bullet_list(lines, total=total)), context(f"{total} {noun} in all")])


def permission_catalogue(permissions: Sequence[Permission]) -> tuple[str, list[dict]]:
    """``/polaris permissions``: every permission, organization-level and project-scoped."""
    org = sorted(p.name for p in permissions if not p.resources)
    proj = sorted(p.name for p in permissions if p.resources)
    return (f"{len(permissions)} Polaris permissions",
            [header("Polaris permissions"),
             section("*Organization-level*\n" + esc(", ".join(org) or "none")),
             section("*Project-scoped*\n" + esc(", ".join(proj) or "none"))])


def request_list(title: str, requests: Sequence[AccessRequest], empty: str) -> tuple[str, list[dict]]:
    """``/polaris status`` and ``/polaris pending``: one line per request."""
    if not requests:
        return empty, [section(empty)]
    lines = [f"{STATE_EMOJI.get(r.state, '')} `{r.id[:8]}` {kind_phrase(r)} — {STATE_LABEL.get(r.state, r.state)}"
             f" (asked by {mention(r.requester_id)} {r.created_at:%Y-%m-%d %H:%M} UTC)" for r in requests]
    return f"{title}: {len(requests)}", [header(title), section(bullet_list(lines, limit=25))]


HELP_TEXT = "\n".join([
    "*Polaris access bot* — ask for Polaris access here; approvers decide in Slack; everything is audited.",
    "• `/polaris request <group> [reason]` — join a Polaris group (creates your account if you have none). "
    "With no arguments it opens a form.",
    "• `/polaris invite <email> <group> [reason]` — a Polaris account for someone else",
    "• `/polaris reset-password [email | @user]` — a password reset (yours by default)",
    "• `/polaris status` — your open requests · `/polaris pending` — requests awaiting your decision",
    "• `/polaris whois [email | @user]` — a Polaris user, their groups and effective permissions",
    "• `/polaris groups` · `/polaris members <group>` · `/polaris permissions`",
    "Group names match without regard to case, with or without quotes: `/polaris request \"Data Analyst\" dashboards`.",
])


def help_message() -> tuple[str, list[dict]]:
    return "Polaris access bot help", [section(HELP_TEXT)]


def request_modal(groups: Sequence[Group] | None, *, error: str | None = None) -> dict:
    """The request form: a group select (loading placeholder while ``groups`` is ``None``) and a reason."""
    view: dict = {"type": "modal", "callback_id": REQUEST_MODAL,
                  "title": {"type": "plain_text", "text": "Polaris access"},
                  "close": {"type": "plain_text", "text": "Cancel"}}
    if groups is None:
        view["blocks"] = [section(":hourglass_flowing_sand: Loading Polaris groups…")]
        return view
    if error:
        view["blocks"] = [section(f":warning: {error}")]
        return view
    if not groups:
        view["blocks"] = [section(":warning: Polaris has no groups to request.")]
        return view
    options = [{"text": {"type": "plain_text", "text": clip(g.name, 75)}, "value": g.id} for g in groups[:100]]
    view["submit"] = {"type": "plain_text", "text": "Request"}
    view["blocks"] = [
        {"type": "input", "block_id": "group", "label": {"type": "plain_text", "text": "Group"},
         "element": {"type": "static_select", "action_id": "value", "options": options,
                     "placeholder": {"type": "plain_text", "text": "Choose a Polaris group"}}},
        {"type": "input", "block_id": "reason", "optional": True, "label": {"type": "plain_text", "text": "Reason"},
         "element": {"type": "plain_text_input", "action_id": "value", "multiline": True, "max_length": 500}},
    ]
    return view

