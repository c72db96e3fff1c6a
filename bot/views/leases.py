"""Block Kit for time-bound access (leases): the line on an approval card, the list in ``status`` and the App
Home, the DM before the end (with **Extend** and **I'm done**) and the DM once it ended."""

import datetime as dt
from typing import Sequence

from .. import durations
from ..models import LEASE_ACTIVE, Lease
from .blocks import bullet_list, esc, header, mention, section

LEASE_EXTEND_ACTION = "lease_extend"
LEASE_DONE_ACTION = "lease_done"

#: Why a lease ended, in words (``Lease.end_reason``).
END_REASONS = {
    "expired": "its time was up",
    "done": "ended early by its holder",
    "left": "the person left the group",
    "removed": "removed by a removal request",
    "offboarded": "the person was offboarded",
    "user_gone": "the Polaris user no longer exists",
    "group_gone": "the group no longer exists in Polaris",
    "made_permanent": "a later grant made the membership permanent",
    "not_applied": "the grant was never applied",
}


def _group(lease: Lease) -> str:
    return f"*{esc(lease.group_name or lease.group_id)}*"


def ends_phrase(lease: Lease, now: dt.datetime) -> str:
    """For an active lease: "until 21:47 UTC (in 2 hours)"; past its end: "ended at 21:47 UTC; the membership is
    being removed"."""
    if lease.ends_at is None:
        return "until its grant is applied"
    left = (lease.ends_at - now).total_seconds()
    when = durations.until(lease.ends_at, now)
    if left < 0:
        return f"ended at {when}; the membership is being removed"
    return f"until {when} ({_in(left)})"


def _in(seconds: float) -> str:
    """ "in 5 minutes" for 4 min 10 s (rounded up to the minute: never sooner than it is); "in under a minute"."""
    if seconds < 60:
        return "in under a minute"
    return f"in {durations.describe(-(-int(seconds) // 60) * 60)}"


def _whose(about: str | None) -> str:
    """ "Your" to the person holding it; "The" (the email follows) to the inviter of someone without Slack."""
    return "Your" if about is None else "The"


def _of(about: str | None) -> str:
    return "" if about is None else f" of `{esc(about)}`"


def card_line(lease: Lease | None, now: dt.datetime) -> str | None:
    """The approval card's line about the lease its grant made or extended, or ``None``."""
    if lease is None or lease.started_at is None and lease.state != LEASE_ACTIVE:
        return None
    if lease.state == LEASE_ACTIVE:  # no "in 2 hours": a card is not redrawn as time passes
        return f":stopwatch: Access to {_group(lease)} until {durations.until(lease.ends_at, now)}."
    reason = END_REASONS.get(lease.end_reason or "", lease.end_reason or "")
    by = f" by {mention(lease.ended_by)}" if lease.ended_by and lease.ended_by != "bot" else ""
    when = f" at {durations.until(lease.ended_at, now)}" if lease.ended_at else ""
    return f":lock: Access ended{when}{by}: {esc(reason)}."


def lease_list(leases: Sequence[Lease], now: dt.datetime) -> list[dict]:
    """``status`` and the App Home: the person's active leases with their ends (no blocks when none)."""
    if not leases:
        return []
    lines = [f":stopwatch: {_group(lease)} {ends_phrase(lease, now)}" for lease in leases]
    return [header("Your time-bound access"), section(bullet_list(lines, limit=25))]


def warning(lease: Lease, now: dt.datetime, *, about: str | None = None) -> tuple[str, list[dict]]:
    """The DM before a lease ends: (text, blocks with Extend and I'm done; ``value`` = lease ID). ``about``:
    the email of the person it is for, when the DM goes to the one who invited them (they have no Slack)."""
    soon = _in(max(0.0, (lease.ends_at - now).total_seconds()))
    text = (
        f":hourglass: {_whose(about)} access{_of(about)} to {_group(lease)} ends at "
        f"{durations.until(lease.ends_at, now)} ({soon}). "
        f"*Extend* asks for it again, for {durations.describe(lease.duration_seconds)} from its approval (decided "
        "like any request); *I'm done* ends it now."
    )
    buttons = {
        "type": "actions",
        "block_id": f"lease:{lease.id}",
        "elements": [
            {
                "type": "button",
                "action_id": LEASE_EXTEND_ACTION,
                "value": lease.id,
                "text": {"type": "plain_text", "text": "Extend"},
            },
            {
                "type": "button",
                "action_id": LEASE_DONE_ACTION,
                "value": lease.id,
                "text": {"type": "plain_text", "text": "I'm done"},
            },
        ],
    }
    return text, [section(text), buttons]


def ended(lease: Lease, *, was_member: bool, about: str | None = None) -> str:
    """The DM once a lease ended by the worker or by I'm done (``about``: as in :func:`warning`)."""
    reason = END_REASONS.get(lease.end_reason or "", lease.end_reason or "")
    whose, of = _whose(about), _of(about)
    if not was_member:
        who = "you were" if about is None else "they were"
        return f"{whose} time-bound access{of} to {_group(lease)} is over ({esc(reason)}); {who} no longer a member."
    others = "Your other groups are unchanged." if about is None else "Their other groups are unchanged."
    return f":lock: {whose} access{of} to {_group(lease)} has ended ({esc(reason)}). {others}"
