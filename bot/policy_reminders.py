"""The approver keys of a policy rule (:mod:`bot.policy`): reminders, escalation and deny reasons.

- ``remind_after`` (a duration, default 4 hours) between reminders of a pending request, at most
  ``max_reminders`` (0-10, default 2; 0: never);
- ``escalate_after`` (a duration) before the request also goes to ``escalate_to`` (Slack user IDs ``U…`` and
  user group IDs ``S…``); each needs the other, and it must come before the request expires;
- ``deny_reason_required`` (true/false): a Deny must carry a reason.

Pure: no I/O. Errors go through the ``fail(key, message)`` of :mod:`bot.policy`, which names the file and line.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from . import durations

DEFAULT_REMIND_AFTER = 4 * 3600
DEFAULT_MAX_REMINDERS = 2
MAX_REMINDERS_LIMIT = 10
_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_USERGROUP = re.compile(r"^S[A-Z0-9]{2,}$")


def mentions(ids) -> str:
    """Slack IDs as mentions: ``<@U…>`` for users, ``<!subteam^S…>`` for user groups, others as they are."""
    return ", ".join(f"<@{a}>" if _USER.match(a) else (f"<!subteam^{a}>" if _USERGROUP.match(a) else a) for a in ids)


def values_of(data: dict, fail: Callable) -> dict[str, Any]:
    """``max_reminders`` and ``escalate_to`` of one policy table (the durations are read with the others)."""
    values: dict[str, Any] = {}
    if "max_reminders" in data:
        v = data["max_reminders"]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_REMINDERS_LIMIT:
            fail("max_reminders", f"max_reminders must be a whole number from 0 to {MAX_REMINDERS_LIMIT}")
        values["max_reminders"] = v
    if "escalate_to" in data:
        v = data["escalate_to"]
        if not isinstance(v, list) or not v or not all(isinstance(a, str) for a in v):
            fail("escalate_to", "escalate_to must be a non-empty list of Slack user IDs (U…) or user group IDs (S…)")
        for a in v:
            if not _USER.match(a) and not _USERGROUP.match(a):
                fail("escalate_to", f"escalate_to entry {a!r} is not a Slack user ID (U…) or user group ID (S…)")
        values["escalate_to"] = tuple(dict.fromkeys(v))
    return values


def check(rule, fail: Callable) -> None:
    """``escalate_after`` and ``escalate_to`` come together, and the escalation comes before the request
    expires (``rule.ttl``)."""
    if rule.escalate_after and not rule.escalate_to:
        fail("escalate_after", "escalate_after needs escalate_to: the people or user groups it escalates to")
    if rule.escalate_to and not rule.escalate_after:
        fail("escalate_to", 'escalate_to needs escalate_after: how long a request waits first, like "8h"')
    if rule.escalate_after and rule.escalate_after >= rule.ttl:
        fail(
            "escalate_after",
            f"escalate_after ({durations.describe(rule.escalate_after)}) is not before requests expire "
            f"({durations.describe(rule.ttl)}); shorten it or raise ttl_hours",
        )


def describe(rule) -> str:
    """In words: "reminds after 4 hours (at most 2 times); escalates to <@U1> after 8 hours; Deny needs a
    reason"."""
    if rule.max_reminders:
        times = f"{rule.max_reminders} time{'s' if rule.max_reminders != 1 else ''}"
        parts = [f"reminds after {durations.describe(rule.remind_after)} (at most {times})"]
    else:
        parts = ["no reminders"]
    if rule.escalate_after:
        parts.append(f"escalates to {mentions(rule.escalate_to)} after {durations.describe(rule.escalate_after)}")
    if rule.deny_reason_required:
        parts.append("Deny needs a reason")
    return "; ".join(parts)
