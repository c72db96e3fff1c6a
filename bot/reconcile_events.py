"""What Polaris's own audit events say about a membership reconcile found after its lease ended: whether an admin
added it again after it was removed (then it is theirs, and reconcile never undoes it)."""

from __future__ import annotations

import json
from typing import Iterable

from .polaris import PolarisAuditEvent, User


def readded(
    pairs: Iterable[tuple[str, str]], users: dict[str, User], events: list[PolarisAuditEvent]
) -> set[tuple[str, str]]:
    """The (email, group ID) ``pairs`` whose membership Polaris's events show added again after it was removed:
    a ``GROUP_MEMBER_ADDED`` later than the last ``GROUP_MEMBER_REMOVED`` of that user and group, both in
    Polaris's own time (ISO 8601 UTC strings, ordered as text), so the bot's clock plays no part."""
    found = set()
    for email, group_id in pairs:
        user = users.get(email)
        if user is None:
            continue
        last: dict[str, str] = {}
        for e in events:
            if e.type in ("GROUP_MEMBER_ADDED", "GROUP_MEMBER_REMOVED") and e.concerns(user.id):
                if group_id in json.dumps(e.raw) and e.time > last.get(e.type, ""):
                    last[e.type] = e.time
        if "GROUP_MEMBER_REMOVED" in last and last.get("GROUP_MEMBER_ADDED", "") > last["GROUP_MEMBER_REMOVED"]:
            found.add((email, group_id))
    return found
