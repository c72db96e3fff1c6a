"""The DMs a request owes (to the requester, the person it is for, approvers) and the notices to ``ADMINS``,
each a row of the delivery ledger (:mod:`bot.deliveries`, kinds ``dm`` and ``relay``): owed once per key,
taken in the transaction that owes it, retried with backoff when Slack does not take it, given up for good on
an error no retry cures, and then ``ADMINS`` are told instead. Nothing here raises for a Slack failure.
"""

from __future__ import annotations

import datetime as dt
import json

from .. import deliveries as ledger
from .. import views
from ..deliveries import DM, RELAY
from ..models import BOT_REQUESTER, AccessRequest
from .context import Context
from .store import RequestStore


class DirectMessages:
    """DMs and ``ADMINS`` notices through the delivery ledger (see the module's docstring)."""

    def __init__(self, ctx: Context, store: RequestStore):
        self.ctx, self.store = ctx, store

    def dm(
        self,
        request_id: str,
        recipient: str,
        key: str,
        text: str,
        *,
        state: str | None = None,
        blocks: list | None = None,
        hold: float = 0.0,
    ) -> bool:
        """Owe ``recipient`` the DM ``text`` (with ``blocks``, e.g. buttons) about a request, once per ``key``,
        and try it now (an older DM to them about the request still pending is superseded). ``state``: the
        request state it tells the requester. True when delivered (now or before). Nothing is owed to
        :data:`BOT_REQUESTER` (a request the bot opened has nobody to tell; the admins see its card). ``hold``:
        seconds before it is first tried (by the worker), so that a newer DM superseding it meanwhile is the
        only one sent."""
        if recipient == BOT_REQUESTER:
            return True
        with self.ctx.db.session() as s:  # owed and taken in one transaction
            row, taken = self.owe(request_id, recipient, key, text, state=state, blocks=blocks, hold=hold, session=s)
        return self.send_row(row, taken=taken)

    def owe(
        self,
        request_id: str,
        recipient: str,
        key: str,
        text: str,
        *,
        state: str | None = None,
        blocks: list | None = None,
        hold: float = 0.0,
        session,
    ) -> tuple:
        """In ``session``: owe the DM as :meth:`dm` does, and take it unless ``hold``. Returns (the row, what
        :meth:`_take_dm` answered, False when held); send it with :meth:`send_row` after the transaction."""
        not_before = self.ctx.clock() + dt.timedelta(seconds=hold) if hold else None
        row = self.ctx.deliveries.want(
            request_id,
            DM,
            recipient,
            key,
            text=text,
            blocks=blocks,
            state=state,
            supersede=True,
            not_before=not_before,
            session=session,
        )
        return row, False if hold else self._take_dm(row, session)

    def _take_dm(self, row, s) -> bool | str:
        """In ``s``: take a pending DM (or admin notice) row for an attempt. True when taken; the error when
        this request already found the recipient unable to get any DM (not taken); False otherwise."""
        if row.status != ledger.PENDING:
            return False
        return self.ctx.deliveries.unreachable(row.request_id, row.recipient, session=s) or (
            self.ctx.deliveries.take(row, session=s)
        )

    def send_row(self, row, *, taken: bool | str | None = None, carry: bool = False) -> bool:
        """One attempt at a DM (or admin notice) row of the ledger, if it is pending and due; settles it.
        ``taken``: what :meth:`_take_dm` answered in the caller's transaction (``None``: taken here); ``carry``:
        the flow's held audit rows go with the outcome (:meth:`bot.deliveries.Deliveries.run`)."""
        deliveries = self.ctx.deliveries
        if row.status != ledger.PENDING:
            return row.status == ledger.DELIVERED
        if taken is None:
            with self.ctx.db.session() as s:
                taken = self._take_dm(row, s)
        if isinstance(taken, str):  # this request already found them unable to get any DM: do not ask Slack again
            deliveries.settle(row, ledger.FAILED, taken)
            self.ctx.audit.record(
                "bot",
                "notify.gave_up",
                request_id=row.request_id,
                target=row.recipient,
                outcome="error",
                detail=f"{row.kind} to {row.recipient}: not sent, {taken} earlier",
            )
            self._dm_settled(row, False, taken)
            return False
        if not taken:
            return False
        attempt = deliveries.run(
            row,
            lambda: self.ctx.slack.send_dm(
                row.recipient, row.text or "", json.loads(row.blocks) if row.blocks else None, request_id=row.request_id
            ),
            what=f"{'notice' if row.kind == RELAY else 'DM'} to {row.recipient}",
            taken=True,
            then=lambda s, outcome: self._settle_state(row, s) if outcome != "retry" else None,
            carry=carry,
        )
        if attempt.outcome in ("delivered", "gave_up"):
            # ``after`` None: the follow-up failed and the outcome was recorded alone; settled again here.
            self._dm_settled(
                row, attempt.delivered, attempt.error, req=False if attempt.after is None else attempt.after
            )
        return attempt.delivered

    def _settle_state(self, row, s) -> AccessRequest | bool:
        """In ``s``: a requester's DM is delivered or given up, so the state it tells is settled
        (``notified_state``). The request, or True when the DM was not the requester's (nothing to settle)."""
        req = self.store.get(row.request_id, session=s)
        if req is None or row.kind != DM or row.recipient != req.requester_id:
            return True
        if row.state:
            self.store.update(req.id, session=s, expect=row.state, notified_state=row.state)
        return req

    def _dm_settled(self, row, delivered: bool, error: str | None, *, req: AccessRequest | bool = False) -> None:
        """A DM is delivered or given up: the state the requester's notification settled is recorded (unless
        ``req``: done already, what :meth:`_settle_state` answered), and ``ADMINS`` are told (once per request)
        when the requester cannot be reached."""
        if req is False:
            with self.ctx.db.session() as s:  # read and marked in one transaction
                req = self._settle_state(row, s)
        if req is True or delivered:
            return
        self.tell_admins(
            req,
            f"dm:{row.recipient}",
            exclude=row.recipient,
            text=(
                f":warning: I could not send {views.mention(row.recipient)} a DM about request "
                f"`{req.id[:8]}` (Slack: `{views.esc(error or 'error')}`). It said: {row.text}"
            ),
            why=f"requester DM not delivered ({error})",
        )

    def tell_admins(self, req: AccessRequest, key: str, *, text: str, why: str, exclude: str | None = None) -> None:
        """Fallback: a notice to every ``ADMINS`` member (but ``exclude``), once per request and ``key``;
        audited as ``notify.fallback``."""
        deliveries = self.ctx.deliveries
        admins = sorted(a for a in self.ctx.settings.admins if a != exclude)
        fresh = [a for a in admins if deliveries.find(req.id, RELAY, a, key) is None]
        if admins and not fresh:
            return  # told before
        self.ctx.audit.record(
            "bot",
            "notify.fallback",
            request_id=req.id,
            outcome="ok" if admins else "error",
            detail=f"{why}; " + (f"telling ADMINS {', '.join(admins)}" if admins else "no other admin to tell"),
        )
        for admin in fresh:
            self.send_row(deliveries.want(req.id, RELAY, admin, key, text=text))
