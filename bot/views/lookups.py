"""Answers to lookups (whois, groups, members, permissions, request lists), the help text and the request form."""

from typing import Sequence

from ..models import PENDING, AccessRequest
from ..polaris import Group, Permission, User

from .blocks import (
    user_label,
    CANCEL_ACTION,
    HEADER_MAX,
    REQUEST_MODAL,
    STATE_EMOJI,
    STATE_LABEL,
    bullet_list,
    clip,
    context,
    esc,
    header,
    kind_phrase,
    mention,
    permission_lines,
    section,
)


# ----------------------------------------------------------------------------------- lookups
def whois(user: User, permissions: Sequence[Permission], *, asked_for: str) -> tuple[str, list[dict]]:
    """``/polaris whois`` answer: the user, enabled or not, groups, effective permissions by resource."""
    status = "enabled" if user.enabled else "*disabled*"
    groups = [esc(name or gid) for gid, name in user.groups]
    blocks = [
        header(clip(f"Polaris user {user.username}", HEADER_MAX)),
        section(
            f"{user_label(user, bold=True)} — {status}"
            + (f"\nPending actions: {esc(', '.join(user.actions))}" if user.actions else "")
        ),
        section("*Groups*\n" + bullet_list(groups)),
        section("*Effective permissions*\n" + bullet_list(permission_lines(permissions), limit=30)),
    ]
    return f"Polaris user {esc(user.username)}", blocks


def group_list(groups: Sequence[Group]) -> tuple[str, list[dict]]:
    """``/polaris groups``: name, predefined or custom, member count, number of permissions."""
    lines = [
        f"*{esc(g.name)}*{' (predefined)' if g.read_only else ''} — "
        f"{g.user_count if g.user_count is not None else '?'} member{'' if g.user_count == 1 else 's'}, "
        f"{len(g.permissions)} permission{'' if len(g.permissions) == 1 else 's'}"
        for g in groups
    ]
    return f"{len(groups)} Polaris groups", [header("Polaris groups"), section(bullet_list(lines))]


def member_list(group: Group, members: Sequence[User], total: int) -> tuple[str, list[dict]]:
    """``/polaris members <group>``: the first page of members and the total."""
    lines = [user_label(m) for m in members]
    noun = "member" if total == 1 else "members"
    return (
        f"{total} {noun} of {esc(group.name)}",
        [
            header(clip(f"Members of {group.name}", HEADER_MAX)),
            section(bullet_list(lines, total=total)),
            context(f"{total} {noun} in all"),
        ],
    )


def permission_catalogue(permissions: Sequence[Permission]) -> tuple[str, list[dict]]:
    """``/polaris permissions``: every permission, organization-level and project-scoped."""
    org = sorted(p.name for p in permissions if not p.resources)
    proj = sorted(p.name for p in permissions if p.resources)
    return (
        f"{len(permissions)} Polaris permissions",
        [
            header("Polaris permissions"),
            section("*Organization-level*\n" + esc(", ".join(org) or "none")),
            section("*Project-scoped*\n" + esc(", ".join(proj) or "none")),
        ],
    )


def request_list(
    title: str, requests: Sequence[AccessRequest], empty: str, *, cancellable_by: str | None = None
) -> tuple[str, list[dict]]:
    """``/polaris status`` and ``/polaris pending``: one line per request. ``cancellable_by``: the requester
    whose pending requests get a Cancel button (``value`` = request ID; ``status`` and the App Home)."""
    if not requests:
        return empty, [section(empty)]
    lines = [
        f"{STATE_EMOJI.get(r.state, '')} `{r.id[:8]}` {kind_phrase(r)} — {STATE_LABEL.get(r.state, r.state)}"
        f" (asked by {mention(r.requester_id)} {r.created_at:%Y-%m-%d %H:%M} UTC)"
        for r in requests
    ]
    blocks = [header(title), section(bullet_list(lines, limit=25))]
    mine = [r for r in requests[:25] if cancellable_by and r.requester_id == cancellable_by and r.state == PENDING]
    if mine:
        blocks.append(
            {
                "type": "actions",
                "block_id": "cancel_requests",
                "elements": [
                    {
                        "type": "button",
                        "action_id": f"{CANCEL_ACTION}:{r.id[:8]}",  # unique in the block; the value says which
                        "value": r.id,
                        "text": {"type": "plain_text", "text": f"Cancel {r.id[:8]}"},
                        "confirm": {
                            "title": {"type": "plain_text", "text": "Cancel this request?"},
                            "text": {
                                "type": "mrkdwn",
                                "text": clip(f"Withdraw request `{r.id[:8]}`: {kind_phrase(r)}", 300),
                            },
                            "confirm": {"type": "plain_text", "text": "Cancel it"},
                            "deny": {"type": "plain_text", "text": "Keep it"},
                        },
                    }
                    for r in mine
                ],
            }
        )
    return f"{title}: {len(requests)}", blocks


#: The commands, in mrkdwn: ``<`` and ``>`` are written ``&lt;``/``&gt;`` (Slack reads ``<...>`` as a link or a
#: mention even inside backticks).
HELP_TEXT = "\n".join(
    [
        "*Polaris access bot* — ask for Polaris access here; approvers decide in Slack; everything is audited.",
        "• `/polaris request &lt;group&gt; [for &lt;duration&gt;] [reason]` — join a Polaris group, for good or for a time "
        "(`for 4h`, `for 2 days`); creates your account if you have none. With no arguments it opens a form.",
        "• `/polaris invite &lt;email&gt; &lt;group&gt; [for &lt;duration&gt;] [reason]` — a Polaris account for someone else; "
        "several people (`invite a@x @b Viewer`, up to 25, for good) are one request and one decision",
        "• `/polaris reset-password [email | @user]` — a password reset (yours by default)",
        "• `/polaris leave &lt;group&gt;` — leave a group at once (no approval) · "
        "`/polaris remove &lt;email | @user&gt; &lt;group&gt; [reason]` — ask for someone's removal from a group",
        "• `/polaris offboard &lt;email | @user&gt; [reason]` — admins: every group removed and the account disabled, "
        "once another admin approves",
        "• `/polaris cancel &lt;request id&gt;` — withdraw your pending request",
        "• `/polaris status` — your open requests and time-bound access · "
        "`/polaris pending` — requests awaiting your decision",
        "• `/polaris whois [email | @user] [page N]` — a Polaris user, their groups and effective permissions",
        "• `/polaris groups [page N]` · `/polaris groups &lt;group&gt;` (one group in detail) · "
        "`/polaris members &lt;group&gt; [page N]` · `/polaris permissions`",
        '• `/polaris create-group` (a form) or `create-group "&lt;name&gt;" &lt;permission&gt; ... [in &lt;project&gt; ...]` · '
        "`/polaris edit-group &lt;group&gt;` · `/polaris delete-group &lt;group&gt; [reason]` — admins: "
        "once another admin approves",
        "• `/polaris update-user &lt;email | @user&gt;` — admins: a form with the user's first name, last name "
        "and enabled; applied once another admin approves",
        "• `/polaris audit &lt;email | @user | group&gt; [page N]` — (admins) who asked, who decided, what Polaris "
        "holds today",
        'Group names match without regard to case, with or without quotes: `/polaris request "Data Analyst" dashboards`.',
    ]
)


def help_message() -> tuple[str, list[dict]]:
    return "Polaris access bot help", [section(HELP_TEXT)]


def request_modal(groups: Sequence[Group] | None, *, error: str | None = None) -> dict:
    """The request form: a group select (loading placeholder while ``groups`` is ``None``), for how long
    (empty: for good, or the group's default) and a reason."""
    view: dict = {
        "type": "modal",
        "callback_id": REQUEST_MODAL,
        "title": {"type": "plain_text", "text": "Polaris access"},
        "close": {"type": "plain_text", "text": "Cancel"},
    }
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
        {
            "type": "input",
            "block_id": "group",
            "label": {"type": "plain_text", "text": "Group"},
            "element": {
                "type": "static_select",
                "action_id": "value",
                "options": options,
                "placeholder": {"type": "plain_text", "text": "Choose a Polaris group"},
            },
        },
        {
            "type": "input",
            "block_id": "duration",
            "optional": True,
            "label": {"type": "plain_text", "text": "For how long"},
            "hint": {
                "type": "plain_text",
                "text": "e.g. 30m, 4h, 2d, 1w or 2 hours. Empty: for good, or the group's default duration.",
            },
            "element": {
                "type": "plain_text_input",
                "action_id": "value",
                "max_length": 40,
                "placeholder": {"type": "plain_text", "text": "for good"},
            },
        },
        {
            "type": "input",
            "block_id": "reason",
            "optional": True,
            "label": {"type": "plain_text", "text": "Reason"},
            "element": {"type": "plain_text_input", "action_id": "value", "multiline": True, "max_length": 500},
        },
    ]
    return view
