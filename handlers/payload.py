"""Defensive reading of Slack payloads: a signed payload can still be oddly shaped; never raise."""

from __future__ import annotations

import re
from typing import Any

REQUEST_ID = _REQUEST_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,40}$")


def dig(data: Any, *path: str | int) -> Any:
    """``data[path[0]][path[1]]…`` or ``None`` where any step is missing or of the wrong type: a string step
    needs a dict holding that key, an int step a list at least that long (no negative indexes)."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(data, list) or not 0 <= step < len(data):
                return None
        elif not isinstance(data, dict) or step not in data:
            return None
        data = data[step]
    return data


def text(data: Any, *path: str | int, limit: int = 4000) -> str:
    """A string at ``path`` (``""`` when missing or not a string), capped at ``limit`` characters."""
    value = dig(data, *path)
    return value[:limit] if isinstance(value, str) else ""


def user_id(data: Any, *path: str | int) -> str | None:
    """A Slack user ID at ``path``, or ``None`` when absent or malformed."""
    value = text(data, *path, limit=64)
    return value if _USER_ID.match(value) else None


def request_id(body: Any) -> str | None:
    """The access request ID carried in the first action's ``value`` (a UUID), or ``None``."""
    value = text(body, "actions", 0, "value", limit=64)
    return value if _REQUEST_ID.match(value) else None
