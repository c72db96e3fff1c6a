"""Block Kit for ``/polaris update-user`` (issue 11): the user form (first name, last name, enabled, filled in
from Polaris) and what an ``update_user`` request changes (the approval card's before → after).

The form's ``private_metadata`` is JSON: the Polaris user ID (``id``), its ``email``, the Slack user it is for
(``slack``, or "") and the values the form was filled in with (``first``, ``last``, ``enabled``), so a
submission that changes nothing is refused in the form before the ack, without a Polaris call. Block IDs are
those of :mod:`bot.access.user_changes`; text is clipped to Block Kit's limits.
"""

from __future__ import annotations

import json
from typing import Mapping

from ..models import AccessRequest
from ..polaris import User
from .blocks import bullet_list, clip, esc, section

USER_MODAL = "user_modal"
FIRST_BLOCK, FIRST_ACTION = "first_name", "first_name_input"
LAST_BLOCK, LAST_ACTION = "last_name", "last_name_input"
ENABLED_BLOCK, ENABLED_ACTION = "enabled", "enabled_choice"
ENABLED, DISABLED = "enabled", "disabled"
#: Longest name the form's inputs take (the core refuses longer ones with their length).
INPUT_MAX = 200


def _plain(text: str, limit: int = 24) -> dict:
    return {"type": "plain_text", "text": clip(text, limit)}


def _option(label: str, value: str) -> dict:
    return {"text": _plain(label, 75), "value": value}


def user_modal(user: User, slack_id: str | None) -> dict:
    """The user form for ``user`` (as Polaris has it now): first and last name inputs and an enabled /
    disabled choice, each filled in; ``slack_id``: the Slack account it is for (kept for the request)."""
    meta = {
        "id": user.id,
        "email": user.email or user.username,
        "slack": slack_id or "",
        "first": user.first_name,
        "last": user.last_name,
        "enabled": user.enabled,
    }

    def name_input(block: str, action: str, label: str, value: str) -> dict:
        element = {"type": "plain_text_input", "action_id": action, "max_length": INPUT_MAX}
        if value:
            element["initial_value"] = value[:INPUT_MAX]
        return {"type": "input", "block_id": block, "label": _plain(label), "element": element}

    on, off = _option("Enabled (can sign in)", ENABLED), _option("Disabled (cannot sign in)", DISABLED)
    return {
        "type": "modal",
        "callback_id": USER_MODAL,
        "private_metadata": _metadata(meta),
        "title": _plain("Update user"),
        "submit": _plain("Ask for approval"),
        "close": _plain("Cancel"),
        "blocks": [
            section(f"Polaris user `{esc(meta['email'])}`. Another admin approves the change."),
            name_input(FIRST_BLOCK, FIRST_ACTION, "First name", user.first_name),
            name_input(LAST_BLOCK, LAST_ACTION, "Last name", user.last_name),
            {
                "type": "input",
                "block_id": ENABLED_BLOCK,
                "label": _plain("Account"),
                "element": {
                    "type": "radio_buttons",
                    "action_id": ENABLED_ACTION,
                    "options": [on, off],
                    "initial_option": on if user.enabled else off,
                },
            },
        ],
    }


def _metadata(meta: dict) -> str:
    """``meta`` as JSON within Block Kit's 3000 characters: over-long names are left out (the submission is then
    compared with Polaris on the work lane instead of in the form)."""
    text = json.dumps(meta)
    if len(text) > 3000:
        text = json.dumps({k: v for k, v in meta.items() if k not in ("first", "last", "enabled")})
    return text


def update_phrase(req: AccessRequest) -> str:
    """What an ``update_user`` request is for, in words (escaped)."""
    return f"changes to the Polaris user `{esc(req.target_email)}`"


def update_blocks(plan: Mapping) -> list[dict]:
    """The approval card's account of the change: before → after, one line per field that changes (``plan``'s
    ``lines``, written when it was asked), and that nothing else the user has changes."""
    lines = [esc(line) for line in plan.get("lines") or [] if isinstance(line, str)]
    text = "*Changes the Polaris user* (groups, permissions and everything else kept):\n" + bullet_list(lines)
    return [section(clip(text, 3000))]
