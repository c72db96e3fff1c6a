"""The answer the core gives the person who typed a command or clicked (no logic, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Reply:
    """An answer for the person who typed a command or clicked: ``text`` (fallback/mrkdwn) and ``blocks``."""

    text: str
    blocks: list | None = None


def asked(what: str, request_id: str, channel: str, *, posted: bool, deciders: str = "approvers") -> Reply:
    """The answer to a request just saved: its card went to ``deciders`` (a plural noun: "approvers", "admins")
    in ``channel`` (a Slack channel ID), or, when the card could not be posted yet (``posted`` False), that it is
    saved and will be posted later. ``what`` is the request's phrase (mrkdwn, already escaped)."""
    ref = f"(request `{request_id[:8]}`)"
    if posted:
        return Reply(
            f":inbox_tray: Your request for {what} went to the {deciders} in <#{channel}>. "
            f"I'll message you when it is decided {ref}."
        )
    return Reply(
        f":warning: Your request for {what} is saved {ref}, but I could not post it to the {deciders} yet. "
        "I will keep trying and message you."
    )
