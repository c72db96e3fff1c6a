"""Mentions of the bot (``app_mention``) and messages people send it in its Messages tab (``message.im``): the bot
answers slash commands only, so each gets a short answer pointing to ``/polaris help``.

A mention is answered ephemerally to the person who wrote it, in the channel (and thread) where they did; a
direct message is answered in that conversation. Each is audited as a ``mention`` row (the person, where, and
whether it was answered); at most :data:`ANSWERS_PER_MINUTE` answers a person per minute, so a chat with the bot
cannot make it flood. Slack's retries of one event are answered once (:meth:`Admission.first_delivery`). The
answer is a reply in a conversation the person started, not a notification about a request, so it does not go
through the delivery ledger: a lost one is not retried.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from ..models import AuditEvent
from ..slack import SlackError
from .admission import Admission
from .context import Context

POINTER = (
    "Hi! I work through a slash command: type `/polaris help` to see what I can do "
    "(for example `/polaris request <group> [reason]` to ask for Polaris access)."
)
ANSWERS_PER_MINUTE = 3


class Mentions:
    def __init__(self, ctx: Context, admission: Admission):
        self.ctx, self.admission = ctx, admission

    def answer(self, event_id: str, user_id: str, channel_id: str, *, direct: bool, thread_ts: str | None) -> bool:
        """Point ``user_id`` to ``/polaris help`` (ephemerally in ``channel_id``, or in the DM when ``direct``).
        Returns True when an answer was sent; never raises for Slack failures (audited as ``error``)."""
        if not user_id or not channel_id or not self.admission.first_delivery(event_id):
            return False
        where = "message.im" if direct else "app_mention"
        if self._answered_lately(user_id) >= ANSWERS_PER_MINUTE:
            self.ctx.audit.record(user_id, "mention", target=channel_id, outcome="refused", detail=f"{where}: quiet")
            return False
        slack = self.ctx.slack
        try:
            if direct:
                slack.post(channel_id, POINTER, action="notify.pointer")
            elif not slack.ephemeral(channel_id, user_id, POINTER, thread_ts=thread_ts):
                raise SlackError("chat.postEphemeral", "not_sent")
        except SlackError as e:
            self.ctx.audit.record(user_id, "mention", target=channel_id, outcome="error", detail=f"{where}: {e.error}")
            return False
        self.ctx.audit.record(user_id, "mention", target=channel_id, detail=where)
        return True

    def _answered_lately(self, user_id: str) -> int:
        since = self.ctx.clock() - dt.timedelta(seconds=60)
        with self.ctx.db.session() as s:
            return (
                s.scalar(
                    select(func.count())
                    .select_from(AuditEvent)
                    .where(
                        AuditEvent.actor == user_id,
                        AuditEvent.action == "mention",
                        AuditEvent.outcome == "ok",
                        AuditEvent.at >= since,
                    )
                )
                or 0
            )
