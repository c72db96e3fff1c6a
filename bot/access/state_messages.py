"""What a request's state change owes the people who follow it: the requester's DM, the reply in the card's
thread and, when it ends, a DM to the person it is for, once per state (and per Retry), through the delivery
ledger (:mod:`bot.deliveries`).

They are owed in two halves: :meth:`StateMessages.owe` in a transaction (the caller's: the one that changed the
state, so a decision or an apply and what it owes commit together, issue 13) and :meth:`StateMessages.send`
after it commits. A message taken in that transaction is sent only while its attempt lease holds (the ledger
extends it first, or leaves the message to the process that took it since). An approval's messages are held
back (:data:`APPROVED_HOLD`) so that an apply ending sooner sends only its outcome, naming the approvers and
their comment; an outcome whose approval's message is being sent waits (:data:`SENDING_HOLD`) so that it
arrives second. Nothing here raises for a Slack failure.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import deliveries as ledger
from .. import views
from ..deliveries import DM, THREAD
from ..models import APPLIED, APPROVED, BOT_REQUESTER, DENIED, FAILED, PENDING, AccessRequest
from .context import Context
from .direct_messages import DirectMessages
from .store import RequestStore
from .threads import Threads

#: Ledger keys of the nudges to approvers (reminders, the escalation): superseded once a request is decided.
NUDGE_KEYS = ("remind:", "escalated")
#: Seconds the "approved, applying" DM and thread reply wait before they are sent. The apply that follows an
#: approval usually ends sooner, and then only its outcome is sent, naming the approvers and their comment:
#: one message instead of two (issue 13). A slow or failing apply still gets the approval told after this.
APPROVED_HOLD = 10.0
#: An outcome whose approval's message is being sent at that moment waits this long, so it arrives second.
SENDING, SENDING_HOLD = "sending", 5.0


@dataclass
class Owed:
    """What :meth:`StateMessages.owe` owed, for :meth:`StateMessages.send`: the request as told; the DM's
    (row, what taking it answered), ``None`` when nobody is DMed (``quiet``, or the bot is the requester); the
    thread reply's (row, request, taken), ``None`` for a pending request; ``fyi``: the DM to the person the
    request is for, as ``dm``, ``None`` when they are not told."""

    req: AccessRequest
    dm: tuple | None
    reply: tuple | None
    fyi: tuple | None

    @property
    def sends(self) -> bool:
        """Whether :meth:`StateMessages.send` will call Slack (a message taken to be sent)."""
        return any(_sending(m) for m in (self.dm, self.reply, self.fyi))


def _sending(owed: tuple | None) -> bool:
    """Whether an owed (row, ..., taken) was taken to be sent (not held, not found unreachable: a string)."""
    return owed is not None and owed[-1] is True


class StateMessages:
    """The requester's DM and the thread reply of each state a request reaches (see the module's docstring)."""

    def __init__(self, ctx: Context, store: RequestStore, dms: DirectMessages, threads: Threads):
        self.ctx, self.store, self.dms, self.threads = ctx, store, dms, threads

    def owe(self, req: AccessRequest, *, quiet: bool = False, session) -> Owed:
        """In ``session``: owe (and take, unless held) the DM telling the requester ``req``'s state and the
        state's thread reply. ``quiet`` (the requester was answered in the command itself) or a request the bot
        opened: no DM, the state recorded as told (``notified_state``). When nothing is taken to be sent after,
        the flow's held audit rows go with ``session`` (:meth:`bot.audit.AuditLog.carry`)."""
        key, s = _key(req), session
        silent = quiet or req.requester_id == BOT_REQUESTER  # nobody to DM (the bot opened it) or answered already
        approvers, (dm_told, thread_told) = self._approval_told(req, session=s)
        dm = None
        if silent:
            self.store.update(req.id, session=s, expect=req.state, notified_state=req.state)
        else:
            text = views.requester_update(req, approvers, name_approvers=not dm_told)
            text += views.approvals.requester_note(req, comment=not dm_told)
            hold = _hold(req, dm_told)
            dm = self.dms.owe(req.id, req.requester_id, key, text, state=req.state, hold=hold, session=s)
        reply = self._owe_in_thread(req, key, approvers, told=thread_told, session=s)
        fyi = None
        if not silent and req.target_slack_id not in (None, "", req.requester_id) and req.state in (APPLIED, DENIED):
            text = views.target_update(req, approvers)  # the same, however fast the apply was
            fyi = self.dms.owe(req.id, req.target_slack_id, key, text, session=s)
        owed = Owed(req, dm, reply, fyi)
        if not owed.sends:  # nothing sent after: the flow's audit rows go with this transaction
            self.ctx.audit.carry(s)
        return owed

    def send(self, owed: Owed | None) -> bool:
        """After the transaction that owed them: send what :meth:`owe` took, and DM the person the request is
        for its outcome. True when the requester got the DM (or needs none)."""
        if owed is None:
            return True
        ok, fyi = True, _sending(owed.fyi)  # the flow's audit rows go with the last one sent
        if owed.dm is not None:
            ok = self.dms.send_row(owed.dm[0], taken=owed.dm[1], carry=owed.reply is None and not fyi)
        if owed.reply is not None:
            self.threads.send_owed(*owed.reply, carry=not fyi)
        if owed.fyi is not None:
            self.dms.send_row(owed.fyi[0], taken=owed.fyi[1], carry=True)
        return ok

    def _approval_told(self, req: AccessRequest, *, session) -> tuple[list[str], tuple]:
        """(the people whose approval counted, for a request people approved; whether the requester's DM and the
        thread reply of its approval were told, for an outcome after one (applied or failed): True when
        delivered (or for any other state), :data:`SENDING` while it is being sent, False when it never was)."""
        people = req.state in (APPROVED, APPLIED, FAILED) and req.decided_by != views.POLICY_ACTOR
        approvers = self.store.approver_ids(req.id, session=session) if people else []
        if req.state not in (APPLIED, FAILED):
            return approvers, (True, True)
        key = _key(req, APPROVED)
        channel = req.approval_channel or self.ctx.settings.approval_channel
        rows = (
            self.ctx.deliveries.find(req.id, DM, req.requester_id, key, session=session),
            self.ctx.deliveries.find(req.id, THREAD, channel, f"state:{key}", session=session),
        )

        def told(r) -> bool | str:
            if r is None or r.status == ledger.DELIVERED:
                return True
            return SENDING if r.status == ledger.PENDING and r.attempts and not r.last_error else False

        return approvers, (told(rows[0]), told(rows[1]))

    def _owe_in_thread(self, req: AccessRequest, key: str, approvers: list[str], *, told, session):
        """In ``session``: once a request is no longer pending, the reminders not sent yet are dropped and the
        outcome is owed as a reply in the card's thread, once per state (``key``), superseding an earlier outcome
        not sent yet (the approval, held back: :data:`APPROVED_HOLD`; ``told`` False: the approval was not told,
        so this names who approved). Returns :meth:`bot.access.threads.Threads.owe`'s answer, or ``None`` for a
        pending request."""
        if req.state == PENDING:
            return None
        text = views.approvals.thread_outcome(req, approvers, name_approvers=not told)
        hold = _hold(req, told)
        return self.threads.owe(req.id, f"state:{key}", text, drop=(*NUDGE_KEYS, "state:"), hold=hold, session=session)


def held_approval(row) -> bool:
    """Whether a ledger row is an approval's held message (the requester's "approved, applying" DM or its
    thread reply: :data:`APPROVED_HOLD`), which the outcome supersedes when the apply ends."""
    return (row.kind == DM and row.state == APPROVED) or (
        row.kind == THREAD and row.key.startswith(f"state:{APPROVED}")
    )


def _hold(req: AccessRequest, told) -> float:
    """Seconds a state's message waits before it is sent: an approval :data:`APPROVED_HOLD`; an outcome whose
    approval's message is being sent :data:`SENDING_HOLD`; else none."""
    return APPROVED_HOLD if req.state == APPROVED else SENDING_HOLD if told == SENDING else 0.0


def _key(req: AccessRequest, state: str | None = None) -> str:
    """The ledger key of the message that tells ``state`` (default: the request's own) for this attempt: the
    state, with ``#<retries>`` after a Retry."""
    state = state or req.state
    return state if not req.retries else f"{state}#{req.retries}"
