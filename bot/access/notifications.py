"""The approval card (and the manager's copy) and the DMs a request owes, all through the delivery ledger
(:mod:`bot.deliveries`): each message is a row per request, recipient and state, shared by all processes.

- A card is posted once (under the ``card:<id>`` claim) and edited only when what it shows changed; a card
  Slack will not update is posted afresh once; one it will not post is reported to the requester and ADMINS.
- A DM is owed once per key (the request's state, a Retry, a partial approval); a DM Slack did not take is
  retried with backoff, one it refuses for good is not, and ADMINS are told instead.

Nothing here raises for a Slack failure: the ledger records it and the worker (:mod:`bot.access.schedule`)
tries again.
"""

from __future__ import annotations

import logging

from .. import deliveries as ledger
from .. import views
from ..deliveries import CARD, THREAD, content_hash
from ..models import APPLIED, EXPIRED, GRANTS, LEAVE, PENDING, AccessRequest
from ..polaris import PolarisError
from sqlalchemy import inspect
from .approvers import Approvers
from .context import Context
from .direct_messages import DirectMessages
from .gains import GainsReader
from .lease_store import LeaseStore
from .store import RequestStore
from .state_messages import APPROVED_HOLD, NUDGE_KEYS, SENDING_HOLD, Owed, StateMessages
from .threads import Threads

__all__ = ["APPROVED_HOLD", "NUDGE_KEYS", "SENDING_HOLD", "Notifications"]  # the holds: state_messages

log = logging.getLogger(__name__)
_SENT = {"approval_channel", "approval_ts", "post_attempts", "manager_dm_channel", "manager_dm_ts"}  # not shown
_COLUMNS = tuple(a.key for a in inspect(AccessRequest).column_attrs if a.key not in _SENT)  # what a card shows


class Notifications:
    def __init__(self, ctx: Context, store: RequestStore, approvers: Approvers):
        self.ctx, self.store, self.approvers = ctx, store, approvers
        self.leases = LeaseStore(ctx.db)
        self.threads = Threads(ctx, store)
        self.dms = DirectMessages(ctx, store)
        self.states = StateMessages(ctx, store, self.dms, self.threads)
        self.gains = GainsReader(ctx, store)

    # ------------------------------------------------------------------------------- cards
    def _group_of(self, req: AccessRequest):
        try:
            return self.ctx.catalog.by_id(req.group_id) if req.group_id else None
        except PolarisError:
            return None

    def _card(self, req: AccessRequest, note: str | None = None, *, session=None, group=False) -> tuple[str, list]:
        group = self._group_of(req) if group is False else group
        approvals = self.store.approver_ids(req.id, session=session)
        rule = self.approvers.rule_of(req)
        lease = self.leases.for_grant(req, session=session) if req.kind in GRANTS and req.state == APPLIED else None
        return views.approval_card(
            req,
            group=group,
            approvals=approvals,
            note=note,
            manager_wanted=rule.wants_manager,
            lease_line=views.leases.card_line(lease, self.ctx.clock()),
            decision_blocks=views.approvals.card_blocks(req, rule.escalate_to if req.escalated_at else ()),
            gains=self.gains.for_card(req, group, session=session),  # read from Polaris while the request is live
        )

    def post_card(self, request_id: str) -> bool:
        """Post the approval card of a request that has none yet (and the manager's copy). True when it is
        posted (by this call or another). The command and the worker may both try: a claim makes exactly
        one post it; a failure is left to the delivery ledger (backoff, or a fallback for good)."""
        self.sync_cards(request_id)
        req = self.store.get(request_id)
        return bool(req and req.approval_ts)

    def refresh_card(
        self, request_id: str, note: str | None = None, *, current: AccessRequest | None = None, carry: bool = False
    ) -> bool:
        """Rewrite the approval card (and the manager's copy) from the request's current state
        (``chat.update``), only when what it shows changed. A failure is left to the delivery ledger (retried
        with backoff; an impossible update posts a fresh card); the decision stands either way. True when the
        channel card is current. ``current``: the request as the caller's transaction just left it, which saves
        reading it before the cards are taken (each card is still drawn from the request read in the transaction
        that takes it); ``carry``: nothing is sent after it in this
        flow, so its held audit rows go with the card's outcome (:meth:`bot.audit.AuditLog.carry`)."""
        return self.sync_cards(request_id, note, current=current, carry=carry)

    def sync_cards(
        self,
        request_id: str,
        note: str | None = None,
        *,
        wait: float = 2.0,
        current: AccessRequest | None = None,
        carry: bool = False,
    ) -> bool:
        """Make the approval card and the manager's copy show the request as it is now: post what was never
        posted, ``chat.update`` only what changed (the ledger's ``content_hash``). Under the ``card:<id>``
        claim, so one process at a time posts or edits a request's cards; a caller that cannot get it records
        what the card should show and the holder or the worker shows it. True when the channel card is
        current."""
        with self.gains.one_reading(), self.ctx.claims.hold(f"card:{request_id}", wait=wait) as got:
            if not got:
                req = self.store.get(request_id)
                if req is not None:
                    for recipient, _manager in self._card_targets(req):
                        text, blocks = self._card_for(req, recipient, note)
                        self.ctx.deliveries.want(req.id, CARD, recipient, "card", content=content_hash(text, blocks))
                return False
            req = current if current is not None and current.id == request_id else self.store.get(request_id)
            channel_current = False
            for _ in range(3):  # again when the request changed while we were sending
                if req is None:
                    return False
                sent, targets = False, self._card_targets(req)
                for i, (recipient, manager) in enumerate(targets):
                    last = i == len(targets) - 1
                    status, did_send, after, req = self._sync_card(
                        req, recipient, manager, note, last=last, carry=carry
                    )
                    sent = sent or did_send
                    if not manager:
                        channel_current = status == ledger.DELIVERED
                if not sent:
                    break
                req, still = after or self._unchanged_since(req)
                if still:
                    break
            return channel_current

    def _unchanged_since(self, shown: AccessRequest, session=None) -> tuple[AccessRequest | None, bool]:
        """After a card was sent: (the request now, True when its row is as ``shown`` and no card of it is owed
        again, i.e. nobody asked for other content meanwhile). One transaction (``session``'s when given)."""
        with self.ctx.db.joining(session) as s:
            now = self.store.get(shown.id, session=s)
            owed = self.ctx.deliveries.owes(shown.id, CARD, session=s)
        same = now is not None and all(getattr(now, k) == getattr(shown, k) for k in _COLUMNS)
        return now, same and not owed

    def _card_targets(self, req: AccessRequest) -> list[tuple[str, bool]]:
        """(recipient, is the manager's copy): the approval channel, and the manager when there is one; none for
        a leave (applied at once, nobody decides it)."""
        if req.kind == LEAVE:
            return []
        targets = [(req.approval_channel or self.ctx.settings.approval_channel, False)]
        if req.manager_id:
            targets.append((req.manager_id, True))
        return targets

    def _card_for(
        self, req: AccessRequest, recipient: str, note: str | None = None, *, session=None, group=False
    ) -> tuple[str, list]:
        group = self._group_of(req) if group is False else group  # (the catalog may ask Polaris: before)
        with self.ctx.db.joining(session) as s:  # what the card shows, read in one transaction
            replaced = self.ctx.deliveries.find(req.id, CARD, recipient, "repost", session=s)
            if replaced is not None:
                extra = (
                    f":information_source: This card replaces an earlier one I could no longer update "
                    f"(Slack: `{views.esc(replaced.last_error or 'error')}`)."
                )
                note = f"{note}\n{extra}" if note else extra
            return self._card(req, note, session=s, group=group)

    def _sync_card(
        self, req: AccessRequest, recipient: str, manager: bool, note: str | None, *, last=False, carry=False
    ) -> tuple[str, bool, tuple | None, AccessRequest]:
        """One card (or the manager's copy) of ``req``: (ledger status, whether a Slack call was made, for the
        ``last`` card, when it was delivered, :meth:`_unchanged_since` read with the outcome, else None; the
        request as shown). The card is drawn from the request read in the transaction that takes it (under the
        claim), never from the caller's copy, which may be older than a change another click just showed."""
        deliveries, slack = self.ctx.deliveries, self.ctx.slack
        group = self._group_of(req)  # (the catalog may ask Polaris: before the transaction)
        with self.ctx.db.session() as s:  # read, rendered, owed and taken in one transaction
            req = self.store.get(req.id, session=s) or req
            ts = req.manager_dm_ts if manager else req.approval_ts
            text, blocks = self._card_for(req, recipient, note, session=s, group=group)
            row = deliveries.want(req.id, CARD, recipient, "card", content=content_hash(text, blocks), session=s)
            if row.status != ledger.PENDING:
                return row.status, False, None, req
            if (
                ts is None
                and (req.state == EXPIRED or (manager and req.state != PENDING))
                and deliveries.find(req.id, CARD, recipient, "repost", session=s) is None
            ):
                deliveries.settle(row, ledger.SUPERSEDED, session=s)  # never shown, and nothing left to decide
                return ledger.SUPERSEDED, False, None, req
            if not deliveries.take(row, session=s):
                return row.status, False, None, req
        what = f"{'manager copy' if manager else 'approval card'} {'update' if ts else 'post'} to {recipient}"

        def send():
            if ts:
                channel = req.manager_dm_channel if manager else req.approval_channel
                slack.update(channel, ts, text, blocks, request_id=req.id)
            elif manager:
                channel, mts = slack.dm_card(recipient, text, blocks, request_id=req.id)
                self.store.set(req.id, manager_dm_channel=channel, manager_dm_ts=mts)
            else:
                posted = slack.post(recipient, text, blocks, request_id=req.id, action="notify.card")
                self.store.record_card_post(req.id, recipient, posted)

        def unchanged(s, outcome: str):
            return self._unchanged_since(req, session=s) if last and outcome == "delivered" else None

        attempt = deliveries.run(row, send, what=what, taken=True, then=unchanged, carry=carry and last)
        if not ts and not manager and not attempt.delivered:
            log.warning("approval card for %s not posted: %s", req.id, attempt.error)
            self.store.count_post_attempt(req.id)
        if attempt.delivered and not ts and not manager and row.attempts > 0:
            # Posted by a later attempt: the requester was told it was not posted yet.
            self.dm(req.id, req.requester_id, "card_posted", views.requester_update(self.store.get(req.id)))
        if attempt.outcome == "gave_up":
            self._card_gave_up(req, recipient, manager, bool(ts), attempt.error or "error")
        status = (
            ledger.DELIVERED if attempt.delivered else ledger.FAILED if attempt.outcome == "gave_up" else ledger.PENDING
        )
        return status, True, attempt.after, req

    def _card_gave_up(self, req: AccessRequest, recipient: str, manager: bool, was_posted: bool, error: str) -> None:
        """The fallbacks when a card cannot be delivered: an update that is impossible posts a fresh card once
        (the old one is forgotten); a post that is impossible tells the requester and ``ADMINS`` by DM (the
        manager's copy: audited only; the channel card still carries the decision)."""
        deliveries = self.ctx.deliveries
        if was_posted and deliveries.find(req.id, CARD, recipient, "repost") is None:
            marker = deliveries.want(req.id, CARD, recipient, "repost")
            deliveries.settle(marker, ledger.DELIVERED, error)
            self.store.set(
                req.id, **({"manager_dm_ts": None, "manager_dm_channel": None} if manager else {"approval_ts": None})
            )
            deliveries.reopen(deliveries.find(req.id, CARD, recipient, "card"))
            self.ctx.audit.record(
                "bot",
                "notify.fallback",
                request_id=req.id,
                target=recipient,
                detail=f"{'manager copy' if manager else 'approval card'} could not be updated "
                f"({error}); posting a fresh one",
            )
            return
        if manager:
            return
        what = views.kind_phrase(req)
        if req.state != PENDING:
            # Decided already: the requester hears of the decision by its own DM; only the card is lost.
            self.dms.tell_admins(
                req,
                f"card:{recipient}",
                exclude=None,
                text=(
                    f":warning: The approval card for request `{req.id[:8]}` "
                    f"({views.mention(req.requester_id)} asks for {what}) could not be updated or "
                    f"posted again in <#{recipient}>: Slack said `{views.esc(error)}`. The request is "
                    f"{views.STATE_LABEL.get(req.state, req.state).lower()}; the card in the channel "
                    "may show an older state. Check that the bot is in that channel."
                ),
                why=f"approval card of a decided request not updated ({error})",
            )
            return
        self.dm(
            req.id,
            req.requester_id,
            "card_failed",
            f":warning: I could not post your request for {what} to the approvers: the approval card could "
            f"not be posted in <#{recipient}> (Slack: `{views.esc(error)}`). The admins have been told "
            f"(request `{req.id[:8]}`).",
        )
        self.dms.tell_admins(
            req,
            f"card:{recipient}",
            exclude=None,
            text=(
                f":warning: I could not post the approval card for request `{req.id[:8]}` "
                f"({views.mention(req.requester_id)} asks for {what}) in <#{recipient}>: Slack said "
                f"`{views.esc(error)}`. Check that the bot is in that channel and that "
                "APPROVAL_CHANNEL is right; the request waits until it expires."
            ),
            why=f"approval card not posted ({error})",
        )

    def tell_unposted(self, request_id: str) -> None:
        """The card could not be posted at once: tell the requester it is saved and will be posted (unless
        the post failed for good, which the fallback already told them)."""
        req = self.store.get(request_id)
        if req is None:
            return
        row = self.ctx.deliveries.find(
            request_id, CARD, req.approval_channel or self.ctx.settings.approval_channel, "card"
        )
        if not req.approval_ts and (row is None or row.status == ledger.PENDING):
            self.dm(req.id, req.requester_id, "unposted", views.requester_update(req))

    # ------------------------------------------------------------------------------- DMs
    def notify_requester(self, req: AccessRequest, *, quiet: bool = False) -> bool:
        """DM the requester the request's current state (and the person it is for, when it ends), once per
        state (and per Retry), with the state's thread reply, through the delivery ledger: a DM Slack did not
        take is retried with backoff, one it refuses for good is not, and ``ADMINS`` are told instead. True when
        the requester got it. ``quiet``: :meth:`mark_told`. A caller that changed the state in a transaction
        owes them in it instead (:meth:`owe_told`, then :meth:`send_told`)."""
        with self.ctx.db.session() as s:  # the state's DM and thread reply, owed (and taken) in one transaction
            owed = self.states.owe(req, quiet=quiet, session=s)
        return self.states.send(owed)

    def mark_told(self, req: AccessRequest) -> None:
        """The requester needs no DM of the request's current state (they were answered in the command itself,
        or the bot is the requester): recorded as settled, so the worker does not send one; the thread reply is
        owed and sent."""
        self.notify_requester(req, quiet=True)

    def owe_told(self, req: AccessRequest, *, quiet: bool = False, session) -> Owed | None:
        """In ``session`` (the transaction that changed ``req``'s state; its cards are owed an update there:
        :func:`bot.deliveries.owe_cards`): what :meth:`notify_requester` (``quiet``: :meth:`mark_told`) sends,
        ``None`` for a request still pending (a partial approval: its cards owed here); pass the answer to
        :meth:`send_told` after it commits."""
        if req.state == PENDING:
            ledger.owe_cards(session, req.id, self.ctx.clock())
            return None
        return self.states.owe(req, quiet=quiet, session=session)

    def send_told(self, owed: Owed | None) -> bool:
        """After the transaction of :meth:`owe_told`: send what it owed (``None``: nothing). True when the
        requester got their DM (or needs none)."""
        return self.states.send(owed)

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
        """Owe ``recipient`` a DM about a request, once per ``key``, and try it now (or after ``hold`` seconds:
        :meth:`bot.access.direct_messages.DirectMessages.dm`). True when delivered (now or before)."""
        return self.dms.dm(request_id, recipient, key, text, state=state, blocks=blocks, hold=hold)

    def deliver_due(self, row) -> None:
        """The worker's attempt at one due ledger row: a card is brought up to date, a DM sent again."""
        if row.kind == CARD:
            self.sync_cards(row.request_id, wait=0.0)
        elif row.kind == THREAD:
            self.threads.send_row(row)
        else:
            self.dms.send_row(row)

    def tell_admins(self, req: AccessRequest, key: str, *, text: str, why: str) -> None:
        """A notice (mrkdwn ``text``) to every ``ADMINS`` member about ``req``, once per ``key``; audited."""
        self.dms.tell_admins(req, key, text=text, why=why)
