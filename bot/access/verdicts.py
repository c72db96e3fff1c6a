"""The words and the time of a decision, checked before it is recorded (pure: no I/O, no clock).

- :func:`check_note`: a deny reason or approval comment of at most :data:`bot.commands.REASON_MAX` characters
  (refused when longer, never cut); a Deny without one is refused where the policy says
  ``deny_reason_required``.
- :func:`check_grant`: a shorter time for a time-bound request: at least a minute, never longer than asked nor
  than the group's ``max_duration``; a request for good has no time to shorten.
- :func:`grant_values` and :func:`grant_detail`: the request columns and the audit text of an approval that
  carries a comment or a shorter time (``duration_seconds`` becomes what was granted, the lease then uses it;
  ``asked_duration_seconds`` keeps what was asked).
"""

from __future__ import annotations

from .. import durations
from ..commands import REASON_MAX, clean, reason_too_long
from ..models import AccessRequest

DENY_REASON_NEEDED = "A reason is required to deny this request: say why in the Deny form."


def check_note(note: str | None, *, approve: bool, required: bool) -> tuple[str, str | None]:
    """(the note cleaned of control characters and outer spaces, why it is refused or ``None``)."""
    text = clean(note or "", limit=None).strip()
    if len(text) > REASON_MAX:
        return text, reason_too_long(len(text))
    if not approve and required and not text:
        return text, DENY_REASON_NEEDED
    return text, None


def check_grant(req: AccessRequest, seconds: int, maximum: int | None) -> str | None:
    """Why ``seconds`` may not be granted for ``req`` (a sentence), or ``None``."""
    asked = req.duration_seconds
    if not asked:
        return "This request is for good: there is no time to shorten. Approve it as it is, or deny it."
    if seconds < durations.MIN_SECONDS:
        return "Time-bound access lasts at least 1 minute."
    if seconds > asked:
        return f"You can grant at most what was asked ({durations.describe(asked)}), never longer."
    if maximum and seconds > maximum:
        return f"This group's access lasts at most {durations.describe(maximum)}."
    return None


def grant_values(req: AccessRequest, note: str, seconds: int | None) -> dict:
    """The request columns an approval with ``note`` and a shorter ``seconds`` (or ``None``) sets."""
    values: dict = {}
    if note:
        values["decision_note"] = note
    if seconds is not None and req.duration_seconds and seconds < req.duration_seconds:
        values["duration_seconds"] = seconds
        values["asked_duration_seconds"] = req.asked_duration_seconds or req.duration_seconds
    return values


def grant_detail(req: AccessRequest, note: str, seconds: int | None) -> str | None:
    """The audit text of such an approval: "granted 2 hours of 4 hours asked; comment: ..." (or ``None``)."""
    parts = []
    if seconds is not None and req.duration_seconds and seconds < req.duration_seconds:
        asked = req.asked_duration_seconds or req.duration_seconds
        parts.append(f"granted {durations.describe(seconds)} of {durations.describe(asked)} asked")
    if note:
        parts.append(f"comment: {note}")
    return "; ".join(parts) or None
