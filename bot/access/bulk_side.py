"""The Polaris side of applying an approved bulk invite (kind ``invite_many``, :class:`BulkSide`), exactly once
in effect across crashes.

Each person not settled yet is checked like a requester on what Slack and Polaris say now (a deactivated,
guest or bot Slack account, or a disabled Polaris account: dropped, with the reason on the card). Then one
``POST /v1/groups/{id}/members`` with everyone who has an account (existing members count as done), and one
``POST /v1/users`` with the group (names from Slack) for each who has none. Each person's state is committed in
the request's ``plan`` before each write (:mod:`bot.views.bulk`), so a resumed apply sends nothing twice: the
members POST is idempotent in effect and the memberships are re-read first; a create is bracketed by the
request's ``write_started_at`` / ``write_answered_at`` like a one-person invite (:mod:`bot.access.polaris_side`),
so a create whose answer was lost is waited out by :meth:`bot.access.execution.Execution.apply` and the user is
looked up by email before it is ever sent again.
"""

from __future__ import annotations

import contextlib

from ..polaris import PolarisAuthError, PolarisConflict, PolarisError, PolarisNotFound, PolarisUnavailable
from ..models import AccessRequest
from ..views import bulk
from .authority import barred_reason
from .context import Context
from .store import RequestStore


class BulkSide:
    """The Polaris calls of one bulk invite's apply; ``store`` records each person's state before each write."""

    def __init__(self, ctx: Context, store: RequestStore):
        self.ctx, self.store = ctx, store

    def run(self, req: AccessRequest) -> tuple[str, None]:
        """Apply ``req``; returns (the outcome, one clause per person; ``None``: no single Polaris user).
        Raises :class:`PolarisError` (not transient; the request fails, a Retry tries those people again) when
        Polaris refused anyone, the outcome its message; :class:`PolarisUnavailable` (retried later, the people's states kept) when a person is being
        changed by another apply or Polaris fails transiently, and any :class:`PolarisError` that is not about
        one person (the API key, the group gone)."""
        people = bulk.people_of(req)
        for p in people:  # a Retry of a failed invite tries again those Polaris refused
            if p["state"] == bulk.FAILED_P:
                p.update(state=bulk.ASKED, why="")
        with contextlib.ExitStack() as claims:
            for p in people:  # two applies never change one user at once (as Execution.apply does for one)
                if p["state"] not in bulk.SETTLED and not claims.enter_context(
                    self.ctx.claims.hold(f"user:{p['email']}")
                ):
                    raise PolarisUnavailable(None, "Busy", f"{p['email']} is being changed by another request")
            to_add, to_create = self._check(req, people)
            self._add(req, people, to_add)
            for p in to_create:
                self._create(req, people, p)
        if any(p["state"] == bulk.FAILED_P for p in people):  # failed (retryable), as a refused one-person invite
            raise PolarisError(None, "BulkInviteFailed", bulk.outcome(people))
        return bulk.outcome(people), None

    def announce(self, req: AccessRequest, notifications) -> None:
        """Once ``req`` is applied, or has failed after giving some people the membership: each person with a
        Slack account (not the requester) who has it is told, through ``notifications``
        (:class:`bot.access.notifications.Notifications`, the delivery ledger: once each, retried; a Retry
        that applies it later tells only those not told before)."""
        for p in bulk.people_of(req):
            if p.get("slack_id") and p["slack_id"] != req.requester_id and p.get("state") in bulk.DONE:
                notifications.dm(req.id, p["slack_id"], "applied", bulk.invitee_note(req, p))

    def _save(self, req: AccessRequest, people: list[dict], **values) -> None:
        """Commit the people's states (and ``values``: the write bracket) before or after a write."""
        self.store.set(req.id, plan=bulk.plan_json(people), **values)

    def _check(self, req: AccessRequest, people: list[dict]) -> tuple[list[tuple[dict, str]], list[dict]]:
        """Each unsettled person read now: dropped (with why), done (a member already), to add (with their
        Polaris user ID) or to create. Commits the states; returns (to add, to create)."""
        slack, polaris = self.ctx.slack, self.ctx.polaris
        to_add: list[tuple[dict, str]] = []
        to_create: list[dict] = []
        for p in people:
            if p["state"] in bulk.SETTLED:
                continue
            why = barred_reason(slack.identity(p["slack_id"]), "Their") if p.get("slack_id") else None
            user = polaris.find_user_by_email(p["email"])
            if why is None and user is not None and not user.enabled:
                why = "The Polaris account is disabled (offboarded, or by an admin)."
            if user is not None and req.group_id in user.group_ids:
                done = {bulk.ADDING: bulk.ADDED, bulk.CREATING: bulk.CREATED}.get(p["state"], bulk.MEMBER)
                p.update(state=done, user_id=user.id, why="")
            elif why:
                p.update(state=bulk.DROPPED, why=f"{why} Not given access.")
            elif user is not None:
                to_add.append((p, user.id))
            else:
                to_create.append(p)
        self._save(req, people)
        return to_add, to_create

    def _add(self, req: AccessRequest, people: list[dict], to_add: list[tuple[dict, str]]) -> None:
        """One ``POST /v1/groups/{id}/members`` with everyone in ``to_add``, their state ``adding`` committed
        first. A refusal about the request (not transient) marks them failed."""
        if not to_add:
            return
        for p, user_id in to_add:
            p.update(state=bulk.ADDING, user_id=user_id)
        self._save(req, people)
        try:
            self.ctx.polaris.add_members(req.group_id, [user_id for _, user_id in to_add])
        except (PolarisUnavailable, PolarisAuthError, PolarisNotFound):
            raise  # retried later (states kept: re-read first), or the whole request fails
        except PolarisError as e:
            for p, _ in to_add:
                p.update(state=bulk.FAILED_P, why=e.plain())
        else:
            for p, _ in to_add:
                p.update(state=bulk.ADDED)
        self._save(req, people)

    def _create(self, req: AccessRequest, people: list[dict], p: dict) -> None:
        """``POST /v1/users`` with the group for ``p``: its state ``creating`` and ``write_started_at`` committed
        first, ``write_answered_at`` once Polaris answered. A lost answer is looked for at once, and (the write
        left in doubt) again once its time budget is over, before anything is sent again."""
        polaris, clock = self.ctx.polaris, self.ctx.clock
        p.update(state=bulk.CREATING)
        self._save(req, people, write_started_at=clock(), write_answered_at=None)
        try:
            user = polaris.create_user(
                p["email"], first_name=p.get("first") or "", last_name=p.get("last") or "", group_ids=[req.group_id]
            )
        except PolarisUnavailable as e:
            user = polaris.find_user_by_email(p["email"])  # the create may have landed, its answer lost
            if user is None:
                if not e.outcome_unknown:  # refused before it was processed: nothing in flight
                    self._save(req, people, write_started_at=None)
                raise
        except PolarisConflict:
            user = polaris.find_user_by_email(p["email"])  # made meanwhile (an earlier attempt, or someone else)
            if user is not None and req.group_id not in user.group_ids:
                polaris.add_members(req.group_id, [user.id])
        except (PolarisAuthError, PolarisNotFound):
            self._save(req, people, write_started_at=None)
            raise
        except PolarisError as e:  # refused for this person (e.g. an email Polaris does not take)
            p.update(state=bulk.FAILED_P, why=e.plain())
            self._save(req, people, write_started_at=None)
            return
        if user is None:
            p.update(state=bulk.FAILED_P, why="Polaris said the user exists but it could not be found")
        else:
            p.update(state=bulk.CREATED, user_id=user.id)
        self._save(req, people, write_answered_at=clock())
