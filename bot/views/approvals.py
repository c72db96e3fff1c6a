"""Block Kit for the approver experience: the card's decision lines (escalation, deny reason or approval
comment, a shorter time granted), the thread replies, reminders and escalations (with the decision buttons),
the Deny and Approve forms, and the list of requests awaiting someone with when each reminds, escalates or
expires. Everything people wrote passes through :func:`bot.views.blocks.esc` here."""

import datetime as dt
from typing import Sequence

from .. import durations
from ..commands import REASON_MAX
from ..models import APPLIED, APPROVED, CANCELLED, DENIED, EXPIRED, FAILED, AccessRequest
from ..policy_reminders import mentions
from .blocks import (
    APPROVE_ACTION,
    APPROVE_MODAL,
    APPROVE_OPTIONS_ACTION,
    DENY_ACTION,
    DENY_MODAL,
    STATE_EMOJI,
    STATE_LABEL,
    bullet_list,
    clip,
    context,
    esc,
    header,
    kind_phrase,
    mention,
    names,
    outcome_text,
    section,
)

#: The shorter times an approver may pick (seconds), below what was asked.
DURATION_STEPS = (900, 1800, 3600, 7200, 4 * 3600, 8 * 3600, 12 * 3600, 86400, 2 * 86400, 3 * 86400, 604800)


def _in(moment: dt.datetime, now: dt.datetime) -> str:
    left = (moment - now).total_seconds()
    return f"in {durations.describe(left)}" if left >= 60 else "in under a minute"


def _waited(req: AccessRequest, now: dt.datetime) -> str:
    return durations.describe(max(60.0, (now - req.created_at).total_seconds()))


def shortened(req: AccessRequest) -> bool:
    """An approver granted less time than was asked."""
    return bool(
        req.asked_duration_seconds and req.duration_seconds and req.duration_seconds < req.asked_duration_seconds
    )


def _granted(req: AccessRequest) -> str:
    if not shortened(req):
        return ""
    return (
        f", granted for {durations.describe(req.duration_seconds)} "
        f"(asked {durations.describe(req.asked_duration_seconds)})"
    )


def decide_buttons(request_id: str) -> dict:
    """The actions block of a pending request: Approve (at once, as asked), Approve with options… (a comment,
    a shorter time) and Deny (a reason); ``value`` = the request ID."""

    def button(action_id: str, label: str, style: str | None = None) -> dict:
        b = {
            "type": "button",
            "action_id": action_id,
            "value": request_id,
            "text": {"type": "plain_text", "text": label},
        }
        return {**b, "style": style} if style else b

    return {
        "type": "actions",
        "block_id": f"decide:{request_id}",
        "elements": [
            button(APPROVE_ACTION, "Approve", "primary"),
            button(APPROVE_OPTIONS_ACTION, "Approve with options…"),
            button(DENY_ACTION, "Deny", "danger"),
        ],
    }


# ----------------------------------------------------------------------------------- the card
def card_blocks(req: AccessRequest, escalated_to: Sequence[str] = ()) -> list[dict]:
    """The card's lines about the approvers' side: reminders sent, the escalation, a shorter time granted, the
    deny reason or the approval comment."""
    blocks: list[dict] = []
    if req.reminders_sent and req.state not in (DENIED, EXPIRED):
        n = req.reminders_sent
        blocks.append(context(f":bell: Approvers reminded {n} time{'s' if n != 1 else ''}."))
    if req.escalated_at and escalated_to:
        waited = durations.describe((req.escalated_at - req.created_at).total_seconds())
        blocks.append(context(f":arrow_double_up: Escalated to {mentions(escalated_to)} (nobody decided in {waited})."))
    if shortened(req):
        blocks.append(
            context(
                f":scissors: Granted for {durations.describe(req.duration_seconds)} "
                f"(asked {durations.describe(req.asked_duration_seconds)})."
            )
        )
    if req.decision_note:
        label = "Reason for denial" if req.state == DENIED else "Approver's comment"
        blocks.append(section(f"*{label}:* {esc(req.decision_note)}"))
    return blocks


def requester_note(req: AccessRequest, *, comment: bool = False) -> str:
    """What the requester's DM adds about the decision: the deny reason, a shorter time, a comment (at
    approval, or with an outcome when ``comment``: the approval's own DM was never sent)."""
    parts = []
    if req.state == DENIED and req.decision_note:
        parts.append(f"Reason: {esc(req.decision_note)}")
    if req.state in (APPROVED, APPLIED) and shortened(req):
        parts.append(
            f"The approvers granted {durations.describe(req.duration_seconds)} of the "
            f"{durations.describe(req.asked_duration_seconds)} you asked for."
        )
    if (req.state == APPROVED or (comment and req.state in (APPLIED, FAILED))) and req.decision_note:
        parts.append(f"Comment: {esc(req.decision_note)}")
    return "".join(f" {p}" for p in parts)


# ----------------------------------------------------------------------------------- thread replies
def _note(note: str | None) -> str:
    return f" — “{esc(clip(note, 600))}”" if note else ""


def thread_outcome(req: AccessRequest, approvers: Sequence[str] = (), *, name_approvers: bool = False) -> str:
    """The thread reply for the state ``req`` is in now (approved, applied, failed, denied, expired, ...).
    ``name_approvers``: an outcome (applied, failed) says who approved, with the comment, when the approval's
    own reply was never sent (held back, then superseded: :data:`bot.access.state_messages.APPROVED_HOLD`)."""
    who = names(approvers) if approvers else mention(req.decided_by)
    approved = f"Approved by {who}{_granted(req)}{_note(req.decision_note)}"
    if req.state == APPROVED:
        return f":white_check_mark: {approved}. Applying it in Polaris."
    if req.state == APPLIED and name_approvers:
        return f":white_check_mark: {approved}, and applied in Polaris. {outcome_text(req)}".strip()
    if req.state == APPLIED:
        return f":white_check_mark: Applied in Polaris. {outcome_text(req)}".strip()
    if req.state == FAILED:
        first = f"{approved}, but Polaris" if name_approvers else "Polaris"
        return f":x: {first} refused or failed: {outcome_text(req)}. An approver can press Retry on the card."
    if req.state == DENIED:
        return f":no_entry_sign: Denied by {mention(req.decided_by)}{_note(req.decision_note)}."
    if req.state == EXPIRED:
        return ":alarm_clock: Expired: nobody decided in time. The requester can ask again."
    if req.state == CANCELLED:
        return f":heavy_multiplication_x: Cancelled by {mention(req.decided_by)}; nothing to decide."
    return f"{STATE_EMOJI.get(req.state, '')} Now {STATE_LABEL.get(req.state, req.state).lower()}.".strip()


def thread_partial(req: AccessRequest, actor_id: str, count: int, required: int, note: str | None) -> str:
    """The thread reply for one approval of several needed."""
    return (
        f":ballot_box_with_check: {mention(actor_id)} approved ({count} of {required}){_granted(req)}"
        f"{_note(note)}; another approver must approve too."
    )


def reminder(req: AccessRequest, n: int, of: int, now: dt.datetime, channel: str) -> tuple[str, str, list[dict]]:
    """Reminder ``n`` of ``of``: (the thread reply, the DM text, the DM blocks with the decision buttons)."""
    waited, expires = _waited(req, now), durations.until(req.expires_at, now)
    thread = f":bell: Reminder {n} of {of}: this request has waited {waited} for a decision; it expires {expires}."
    dm = (
        f":bell: {mention(req.requester_id)} asks for {kind_phrase(req)} and has waited {waited} for a decision "
        f"(reminder {n} of {of}; request `{req.id[:8]}`). It expires {expires}. Decide here or on the card in "
        f"<#{channel}>."
    )
    return thread, dm, [section(dm), decide_buttons(req.id)]


def escalation(req: AccessRequest, to: Sequence[str], now: dt.datetime, channel: str) -> tuple[str, str, list[dict]]:
    """The escalation to ``to``: (the thread reply, the DM text, the DM blocks with the decision buttons)."""
    waited = _waited(req, now)
    thread = f":arrow_double_up: Escalated to {mentions(to)}: nobody decided in {waited}. They may decide too."
    dm = (
        f":arrow_double_up: Escalated to you: {mention(req.requester_id)} asks for {kind_phrase(req)} and nobody "
        f"decided in {waited} (request `{req.id[:8]}`; it expires {durations.until(req.expires_at, now)}). Decide "
        f"here or on the card in <#{channel}>."
    )
    return thread, dm, [section(dm), decide_buttons(req.id)]


# ----------------------------------------------------------------------------------- the forms
def _summary(req: AccessRequest) -> str:
    reason = f"\n*Reason:* {esc(req.reason)}" if req.reason else ""
    return f"{mention(req.requester_id)} asks for {kind_phrase(req)}.{reason}"


def _modal(callback_id: str, title: str, request_id: str, blocks: list[dict], submit: str | None) -> dict:
    view = {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": request_id,
        "title": {"type": "plain_text", "text": title},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }
    if submit:
        view["submit"] = {"type": "plain_text", "text": submit}
    return view


def refusal_modal(callback_id: str, request_id: str, refusal: str) -> dict:
    """A Deny or Approve form replaced by why the clicker may not decide (``refusal`` escaped), no submit."""
    title = "Deny request" if callback_id == DENY_MODAL else "Approve request"
    return _modal(callback_id, title, request_id, [section(f":no_entry: {refusal}")], None)


def deny_modal(req: AccessRequest, *, required: bool) -> dict:
    """The Deny form: the request, and a reason (required when the policy says ``deny_reason_required``)."""
    reason = {
        "type": "input",
        "block_id": "reason",
        "optional": not required,
        "label": {"type": "plain_text", "text": "Reason" + (" (required)" if required else "")},
        "hint": {"type": "plain_text", "text": "Shown on the card, sent to the requester and kept in the audit."},
        "element": {"type": "plain_text_input", "action_id": "value", "multiline": True, "max_length": REASON_MAX},
    }
    return _modal(DENY_MODAL, "Deny request", req.id, [section(_summary(req)), reason], "Deny")


def duration_choices(asked: int, maximum: int | None) -> list[int]:
    """What an approver may grant (seconds), longest first: what was asked (capped by the group's maximum)
    and the shorter steps of :data:`DURATION_STEPS`."""
    top = min(asked, maximum) if maximum else asked
    return [top] + [s for s in reversed(DURATION_STEPS) if s < top]


def approve_modal(req: AccessRequest, *, maximum: int | None) -> dict:
    """The Approve form: the request, for a time-bound one the time to grant (what was asked, or shorter),
    and a comment."""
    blocks = [section(_summary(req))]
    if req.duration_seconds:
        choices = duration_choices(req.duration_seconds, maximum)
        options = [
            {
                "text": {
                    "type": "plain_text",
                    "text": clip(f"{durations.describe(s)}{' (as asked)' if s == req.duration_seconds else ''}", 75),
                },
                "value": str(s),
            }
            for s in choices
        ]
        blocks.append(
            {
                "type": "input",
                "block_id": "duration",
                "label": {"type": "plain_text", "text": "Grant for"},
                "element": {
                    "type": "static_select",
                    "action_id": "value",
                    "options": options,
                    "initial_option": options[0],
                },
            }
        )
    blocks.append(
        {
            "type": "input",
            "block_id": "comment",
            "optional": True,
            "label": {"type": "plain_text", "text": "Comment"},
            "hint": {"type": "plain_text", "text": "Shown on the card, sent to the requester and kept in the audit."},
            "element": {"type": "plain_text_input", "action_id": "value", "multiline": True, "max_length": REASON_MAX},
        }
    )
    return _modal(APPROVE_MODAL, "Approve request", req.id, blocks, "Approve")


# ----------------------------------------------------------------------------------- pending
def awaiting_list(title: str, requests: Sequence[AccessRequest], empty: str, now: dt.datetime) -> tuple[str, list]:
    """``/polaris pending`` and the App Home: each request awaiting you, how long it has waited and when it
    will remind, escalate and expire."""
    if not requests:
        return empty, [section(empty)]
    lines = []
    for r in requests:
        when = [f"waited {_waited(r, now)}"]
        if r.remind_at and r.remind_at > now:
            when.append(f"reminds {_in(r.remind_at, now)}")
        if r.escalate_at and r.escalate_at > now:
            when.append(f"escalates {_in(r.escalate_at, now)}")
        elif r.escalated_at:
            when.append("escalated")
        when.append(f"expires {_in(r.expires_at, now)}")
        lines.append(
            f"{STATE_EMOJI.get(r.state, '')} `{r.id[:8]}` {kind_phrase(r)} — asked by {mention(r.requester_id)} · "
            + " · ".join(when)
        )
    return f"{title}: {len(requests)}", [header(title), section(bullet_list(lines, limit=25))]
