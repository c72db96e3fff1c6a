"""Replies in the approval card's thread: every approval, denial, reminder, escalation and outcome after the
card's first post, so the channel stays readable (the card itself always shows the current state).

Each reply is a row of the delivery ledger (:mod:`bot.deliveries`, kind ``thread``, recipient the approval
channel, key what it tells: ``state:denied``, ``approval:U123``, ``remind:1``, ``escalated``), so it is sent once
whichever process or click asks, and retried with backoff when Slack does not take it. A reply owed before the
card is posted waits (retried) until there is a thread to put it in. Nothing here raises for a Slack failure.
"""

from __future__ import annotations

import datetime as dt

from .. import deliveries as ledger
from ..deliveries import CARD, THREAD
from ..slack import SlackError
from ..models import AccessRequest
from .context import Context
from .store import RequestStore

#: Not an error from Slack: the card has no ``ts`` yet, so a reply has no thread; retried like a Slack fault.
NO_CARD_YET = "card_not_posted"


class Threads:
    """Replies in approval cards' threads, through the delivery ledger (see the module's docstring)."""

    def __init__(self, ctx: Context, store: RequestStore):
        self.ctx, self.store = ctx, store

    def reply(self, request_id: str, key: str, text: str, *, drop: tuple[str, ...] = (), hold: float = 0.0) -> bool:
        """Owe the reply ``text`` (mrkdwn, escaped by the caller) in the card's thread, once per ``key``, and
        try it now. True when it is in the thread (now or before). ``drop``: key prefixes of the request's
        pending ledger rows superseded first (the nudges to approvers once it is decided, an outcome not sent
        yet), but this one; ``hold``: seconds before it is first tried (by the worker). Owed, taken and the
        card's thread read in one transaction; the reply goes to the thread as it is then."""
        with self.ctx.db.session() as s:
            owed = self.owe(request_id, key, text, drop=drop, hold=hold, session=s)
        return self.send_owed(*owed)

    def owe(self, request_id: str, key: str, text: str, *, drop: tuple[str, ...] = (), hold: float = 0.0, session):
        """In ``session``: what :meth:`reply` does before sending. Returns (the row or ``None`` when there is no
        thread to reply in, the request as read, True when taken); pass them to :meth:`send_owed` after the
        transaction."""
        deliveries, s = self.ctx.deliveries, session
        not_before = self.ctx.clock() + dt.timedelta(seconds=hold) if hold else None
        if drop:
            deliveries.supersede(request_id, drop, keep=key, session=s)
        req = self.store.get(request_id, session=s)
        if req is None:
            return None, None, False
        channel = req.approval_channel or self.ctx.settings.approval_channel
        if not req.approval_ts and deliveries.find(req.id, CARD, channel, "card", session=s) is None:
            return None, req, False  # no card was ever owed (a leave needs none): no thread to reply in
        row = deliveries.want(req.id, THREAD, channel, key, text=text, not_before=not_before, session=s)
        taken = row.status == ledger.PENDING and not hold and deliveries.take(row, session=s)
        return row, req, taken

    def send_owed(self, row, req: AccessRequest | None, taken: bool, *, carry: bool = False) -> bool:
        """Send a reply :meth:`owe` owed and took; True when it is in the thread (now or before). ``carry``: the
        flow's held audit rows go with the outcome (:meth:`bot.deliveries.Deliveries.run`)."""
        if row is None:
            return False
        if row.status != ledger.PENDING:
            return row.status == ledger.DELIVERED
        return self._send(row, req, carry=carry) if taken else False

    def send_row(self, row) -> bool:
        """One attempt at a pending, due thread reply of the ledger (the worker's retries come here too)."""
        if row.status != ledger.PENDING:
            return row.status == ledger.DELIVERED
        with self.ctx.db.session() as s:  # taken, and the thread read as it is now (a card posted afresh: a new one)
            if not self.ctx.deliveries.take(row, session=s):
                return False
            req = self.store.get(row.request_id, session=s)
        return self._send(row, req)

    def _send(self, row, req: AccessRequest | None, *, carry: bool = False) -> bool:
        """Send a thread reply ``row`` this caller took, to the thread of ``req`` as read when it was taken."""

        def send():
            if req is None or not req.approval_ts:
                raise SlackError("chat.postMessage", NO_CARD_YET)
            return self.ctx.slack.post(
                req.approval_channel or row.recipient,
                row.text or "",
                request_id=req.id,
                action="notify.thread",
                thread_ts=req.approval_ts,
            )

        what = f"thread reply to {row.recipient}"
        return self.ctx.deliveries.run(row, send, what=what, taken=True, carry=carry).delivered
