"""The answer the core gives the person who typed a command or clicked (no logic, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Reply:
    """An answer for the person who typed a command or clicked: ``text`` (fallback/mrkdwn) and ``blocks``."""

    text: str
    blocks: list | None = None
