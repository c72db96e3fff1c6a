"""The approval card (posted in the approval channel and copied to a manager) and the requester's DMs."""

import json
from typing import Sequence

from .. import privilege
from ..models import (
    APPLIED,
    APPROVED,
    BOT_REQUESTER,
    CANCELLED,
    DENIED,
    EXPIRED,
    FAILED,
    GROUP_CHANGES,
    INVITE_MANY,
    OFFBOARD,
    PENDING,
    REMOVALS,
    RESET_PASSWORD,
    UPDATE_USER,
    AccessRequest,
)
from ..grants import Gains
from ..polaris import Group

from .approvals import decide_buttons
from .gains import gain_blocks
from .groups import change_blocks
from .bulk import people_blocks
from .users import update_blocks
from .blocks import (
    MESSAGE_BLOCKS_MAX,
    RETRY_ACTION,
    STATE_EMOJI,
    STATE_LABEL,
    ask_phrase,
    bullet_list,
    clip,
    context,
    esc,
    header,
    kind_phrase,
    account_names,
    mention,
    names,
    outcome_text,
    permission_lines,
    section,
)


# ----------------------------------------------------------------------------------- approval card
def approval_card(
    req: AccessRequest,
    *,
    group: Group | None = None,
    approvals: Sequence[str] = (),
    note: str | None = None,
    manager_wanted: bool = False,
    lease_line: str | None = None,
    decision_blocks: Sequence[dict] = (),
    gains: Gains | None = None,
) -> tuple[str, list[dict]]:
    """The approval message for ``req`` in its current state: (fallback text, blocks).

    Pending: who asks, what for, the reason, what the group grants, and the ``Approve``/``Deny`` buttons
    (``value`` = request ID). Decided: the decision, the decider and the outcome, buttons gone; a failed
    request gets a ``Retry`` button. ``lease_line``: what became of the time-bound access the grant gave
    (:func:`bot.views.leases.card_line`: "Access until 21:47 UTC", "Access ended ..."). ``decision_blocks``:
    the escalation, the deny reason or approval comment, a shorter time granted
    (:func:`bot.views.approvals.card_blocks`). ``gains``: what the group gives the person
    (:class:`bot.grants.Gains`, :func:`bot.views.gains.gain_blocks`); without it, everything the group grants.
    """
    title = f"Access request: {kind_phrase(req)}"
    text = ask_phrase(req)
    blocks: list[dict] = [
        header("Polaris access request"),
        section(f"{text}."),
        _card_fields(req),
    ]
    blocks += _card_grants(req, group, gains)
    blocks += _card_plan(req)
    blocks += _card_approvals(req, approvals, manager_wanted)
    blocks += _card_state(req)
    blocks += list(decision_blocks)
    if lease_line:
        blocks.append(context(lease_line))
    if note:
        blocks.append(context(note))
    blocks += _card_buttons(req)
    blocks.append(context(f"Request `{req.id[:8]}` · {req.created_at:%Y-%m-%d %H:%M} UTC"))
    return clip(f"{title} — {STATE_LABEL.get(req.state, req.state)} ({text})", 3000), blocks[:MESSAGE_BLOCKS_MAX]


def _card_fields(req: AccessRequest) -> dict:
    """Requester, the person it is for (when someone else), group and reason."""
    who = mention(req.requester_id)
    if req.requester_id == BOT_REQUESTER:
        fields = ["*Requester*\nthe bot (the Slack account was deactivated)"]
    else:
        fields = [f"*Requester*\n{who} (`{esc(req.requester_email or 'no email')}`)"]
    if (
        req.kind not in (*GROUP_CHANGES, INVITE_MANY)
        and (req.target_email or "").lower() != (req.requester_email or "").lower()
    ):
        target = (
            f"{mention(req.target_slack_id)} (`{esc(req.target_email)}`)"
            if req.target_slack_id
            else f"`{esc(req.target_email)}`"
        )
        label = "Whose access" if req.kind in REMOVALS else "Whose account" if req.kind == UPDATE_USER else "For"
        fields.append(f"*{label}*\n{target}")
        if req.kind not in (*REMOVALS, UPDATE_USER):
            fields.append("*Note*\n:warning: Requested on someone else's behalf")
    if req.group_name:
        fields.append(f"*Group*\n{esc(req.group_name)}")
    names = account_names(req)
    if names:
        fields.append(f"*Names*\n{names}")
    fields.append(f"*Reason*\n{esc(req.reason) if req.reason else '_none given_'}")
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": clip(f, 2000)} for f in fields[:10]]}


def _card_grants(req: AccessRequest, group: Group | None, gains: Gains | None = None) -> list[dict]:
    """What the person gains (or, without ``gains``, what the group grants), and the privileged-group warning."""
    if group is None or req.kind == RESET_PASSWORD or req.kind in GROUP_CHANGES:
        return []
    if gains is not None:
        blocks = gain_blocks(group, gains)
    else:
        grants = permission_lines(group.permissions)
        blocks = [section(f"*{esc(group.name)} grants:*\n" + bullet_list(grants, limit=15))]
    if privilege.is_privileged(group):
        why = ", ".join(privilege.privileged_grants(group)) or privilege.ORG_ADMIN
        blocks.append(
            context(
                f":rotating_light: Privileged ({esc(why)}): needs {privilege.PRIVILEGED_APPROVALS} "
                f"approvals by {privilege.ORG_ADMIN} members in Polaris."
            )
        )
    return blocks


def plan_of(req: AccessRequest) -> dict:
    """The request's ``plan`` (JSON, written at request time: what a removal or offboarding takes away) as a
    dict; ``{}`` when there is none or it cannot be read."""
    try:
        plan = json.loads(req.plan) if req.plan else {}
    except ValueError:
        return {}
    return plan if isinstance(plan, dict) else {}


def _card_plan(req: AccessRequest) -> list[dict]:
    """An offboarding's plan, shown before anyone approves: the groups removed, the account disabled, the
    active leases ended and the open requests closed (as Polaris and the bot had them when it was asked)."""
    if req.kind in GROUP_CHANGES:
        return change_blocks(req, plan_of(req))
    if req.kind == INVITE_MANY:
        return people_blocks(req, show_state=req.state != PENDING)
    if req.kind == UPDATE_USER:
        return update_blocks(plan_of(req))
    if req.kind != OFFBOARD:
        return []
    plan = plan_of(req)
    if "unread" in plan:  # a Slack deactivation seen while Polaris could not be read
        return [
            section(
                "*What this offboarding removes*: Polaris could not be read when the deactivation was seen "
                f"(`{esc(plan.get('unread'))}`). Approved, it removes every group of the Polaris account with this "
                "email and disables it (names and everything else kept), if there is such an account."
            )
        ]
    groups = [esc(g) for g in plan.get("groups") or []]
    leases = [f"{esc(x.get('group'))} (until {esc(x.get('ends_at'))})" for x in plan.get("leases") or []]
    requests = [
        f"`{esc(x.get('id'))}` {esc(x.get('what'))} ({esc(x.get('state'))})" for x in plan.get("requests") or []
    ]
    account = "enabled, will be disabled" if plan.get("enabled", True) else "already disabled"
    lines = [
        "*What this offboarding removes* (as it was when asked; Polaris is read again before it is applied)",
        f"*Groups removed*\n{bullet_list(groups, limit=20)}",
        f"*Polaris account*: {account} (names and everything else kept)",
        f"*Active leases ended*\n{bullet_list(leases, limit=10)}",
        f"*Open requests closed*\n{bullet_list(requests, limit=10)}",
    ]
    return [section("\n".join(lines))]


def _card_approvals(req: AccessRequest, approvals: Sequence[str], manager_wanted: bool) -> list[dict]:
    """Who decides (the manager, when wanted) and the approvals so far, when more than one is needed."""
    blocks = []
    if req.manager_id:
        blocks.append(
            context(f"Manager approval: {mention(req.manager_id)} decides (a copy of this card was sent to them).")
        )
    elif manager_wanted:
        blocks.append(
            context("Manager approval: no manager is known for the requester, so the group's other approvers decide.")
        )
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
    if req.state == CANCELLED:
        state = f"{STATE_EMOJI[CANCELLED]} *Cancelled by {mention(req.decided_by)}*"
    elif req.decided_by and req.state != PENDING:
        verb = "Denied" if req.state == DENIED else "Approved"
        state += f" — {verb.lower()} by {mention(req.decided_by)}"
    if req.state == EXPIRED:
        state += " — nobody decided in time"
    blocks = [section(state)]
    if req.outcome and req.state in (APPLIED, FAILED, APPROVED, CANCELLED):
        blocks.append(context(outcome_text(req)))
    if req.state == FAILED:
        retries = req.retries or 0
        retried = f" ({retries} Retr{'y' if retries == 1 else 'ies'} so far)" if retries else ""
        when = f" at {req.updated_at:%Y-%m-%d %H:%M:%S} UTC" if req.updated_at else ""
        blocks.append(context(f"Attempt {retries + 1} failed{when}{retried}."))
    return blocks


def _card_buttons(req: AccessRequest) -> list[dict]:
    """Approve, Approve with options… and Deny while pending, Retry when failed (``value`` = request ID), none otherwise."""
    if req.state == PENDING:
        return [decide_buttons(req.id)]
    if req.state == FAILED:
        return [
            {
                "type": "actions",
                "block_id": f"retry:{req.id}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": RETRY_ACTION,
                        "value": req.id,
                        "text": {"type": "plain_text", "text": "Retry"},
                    }
                ],
            }
        ]
    return []


def requester_update(req: AccessRequest, approvers: Sequence[str] = (), *, name_approvers: bool = False) -> str:
    """The DM text the requester gets at a state change (mrkdwn, escaped). ``approvers``: everyone whose
    approval counted (named when approved; the decider alone when empty). ``name_approvers``: an outcome
    (applied, failed) names them too, when the approval's own DM was never sent (held back, then superseded:
    :data:`bot.access.state_messages.APPROVED_HOLD`)."""
    what = kind_phrase(req)
    ref = f"(request `{req.id[:8]}`)"
    if req.state == PENDING:
        if req.approval_ts:
            return f"Your request for {what} is waiting for approval {ref}."
        return (
            f"Your request for {what} is saved, but I could not post it to the approvers yet; I will keep trying {ref}."
        )
    if req.state == APPROVED:
        who = names(approvers) if approvers else mention(req.decided_by)
        return f"Your request for {what} was approved by {who}; applying it in Polaris now {ref}."
    who = (names(approvers) if approvers else mention(req.decided_by)) if name_approvers else ""
    if req.state == APPLIED:
        by = f" Approved by {who}." if who else ""
        return f":white_check_mark: Done: {what}. {outcome_text(req)}{by} {ref}"
    if req.state == FAILED:
        attempt = f" (attempt {req.retries + 1})" if req.retries else ""  # None before the row is saved
        return (
            f":x: Your request for {what} was approved{f' by {who}' if who else ''} but Polaris refused or "
            f"failed{attempt}: {outcome_text(req)}. An approver can retry it {ref}."
        )
    if req.state == DENIED:
        return f"Your request for {what} was denied by {mention(req.decided_by)} {ref}."
    if req.state == EXPIRED:
        return f"Your request for {what} expired before anyone decided {ref}. You can ask again."
    if req.state == CANCELLED:
        why = f": {outcome_text(req)}" if req.outcome else ""
        return f"Your request for {what} was cancelled by {mention(req.decided_by)}{why} {ref}."
    return f"Your request {ref} is now {req.state}."


def target_update(req: AccessRequest, approvers: Sequence[str] = ()) -> str:
    """The DM the person a request is for (an invite, a reset asked for them) gets when it ends, applied or
    denied: who asked, who decided and what happened (mrkdwn, escaped), the same however fast the apply was.
    ``approvers``: everyone whose approval counted (the decider alone when empty)."""
    what, ref, asker = kind_phrase(req), f"(request `{req.id[:8]}`)", mention(req.requester_id)
    if req.state == DENIED:
        reason = f" Reason: {esc(req.decision_note)}" if req.decision_note else ""
        return f"For your information: {asker} asked for {what}; {mention(req.decided_by)} denied it {ref}.{reason}"
    who = names(approvers) if approvers else mention(req.decided_by)
    return (
        f"For your information: {asker} asked for {what}; {who} approved it, and it is done. {outcome_text(req)} {ref}"
    )
