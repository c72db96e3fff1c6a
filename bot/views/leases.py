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
    """ "until 21:47 UTC (in 2 hours)" for an active lease."""
    if lease.ends_at is None:
        return "until its grant is applied"
    left = (lease.ends_at - now).total_seconds()
    when = durations.until(lease.ends_at, now)
    return f"until {when} (in {durations.describe(left)})" if left >= 60 else f"until {when} (in under a minute)"


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


def warning(lease: Lease, now: dt.datetime) -> tuple[str, list[dict]]:
    """The DM before a lease ends: (text, blocks with Extend and I'm done; ``value`` = lease ID)."""
    left = max(0.0, (lease.ends_at - now).total_seconds())
    soon = f"in {durations.describe(left)}" if left >= 60 else "in under a minute"
    text = (
        f":hourglass: Your access to {_group(lease)} ends at {durations.until(lease.ends_at, now)} ({soon}). "
        f"*Extend* asks for {durations.describe(lease.duration_seconds)} more (decided like any request); "
        "*I'm done* ends it now."
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


def ended(lease: Lease, *, was_member: bool) -> str:
    """The DM once a lease ended by the worker or by I'm done."""
    reason = END_REASONS.get(lease.end_reason or "", lease.end_reason or "")
    if not was_member:
        return f"Your time-bound access to {_group(lease)} is over ({esc(reason)}); you were no longer a member."
    return f":lock: Your access to {_group(lease)} has ended ({esc(reason)}). Your other groups are unchanged."
