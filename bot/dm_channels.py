"""The DM channel cache: a person's Slack IM channel, asked of ``conversations.open`` once per person, not once
per message (issue 13), kept in ``dm_channels`` (revision 0009) so every process shares it, and in memory.

An IM channel between the bot and a person does not change (Slack's ``conversations.open`` docs: it returns the
existing channel when one is open), so an entry is never stale in practice; :meth:`DmChannels.forget` drops one
a post found gone (``channel_not_found``), and the next DM opens it again.
"""

from __future__ import annotations

import threading

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from .db import Database
from .models import DmChannel, utcnow


class DmChannels:
    """``user_id`` (Slack user ID) -> IM channel ID, in ``db`` and in a bounded in-memory map."""

    MEMORY_MAX = 10_000

    def __init__(self, db: Database):
        self.db = db
        self._memory: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, user_id: str) -> str | None:
        """The IM channel known for ``user_id``, or ``None`` (then ask ``conversations.open`` and :meth:`put`)."""
        with self._lock:
            hit = self._memory.get(user_id)
        if hit is not None:
            return hit
        with self.db.session() as s:
            found = s.scalar(select(DmChannel.channel_id).where(DmChannel.user_id == user_id))
        if found is not None:
            self._remember(user_id, found)
        return found

    def put(self, user_id: str, channel_id: str) -> None:
        """Keep ``channel_id`` as ``user_id``'s IM channel (another process may have kept it first: same value)."""
        self._remember(user_id, channel_id)
        try:
            with self.db.session() as s:
                s.add(DmChannel(user_id=user_id, channel_id=channel_id, opened_at=utcnow()))
        except IntegrityError:
            pass

    def forget(self, user_id: str) -> None:
        """Drop ``user_id``'s entry (its channel was found gone)."""
        with self._lock:
            self._memory.pop(user_id, None)
        with self.db.session() as s:
            s.execute(delete(DmChannel).where(DmChannel.user_id == user_id))

    def _remember(self, user_id: str, channel_id: str) -> None:
        with self._lock:
            if len(self._memory) >= self.MEMORY_MAX:
                self._memory.clear()
            self._memory[user_id] = channel_id
