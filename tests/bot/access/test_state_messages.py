"""Issue 13: what a state change owes the requester (their DM, the thread reply) is owed in the transaction that
changes the state (bot/access/state_messages.py), so a process that dies right after a decision or an apply still
leaves the messages owed in the ledger, and the worker sends each once."""

from __future__ import annotations

import contextlib

import pytest
from sqlalchemy import select

from bot.deliveries import DELIVERY_LEASE
from bot.models import APPLIED, DENIED, Delivery
from tests.bot.access.helpers import Died, die_before_the_card, dms, newest, only_request, requests_of
from tests.conftest import APPROVER, REQUESTER, Clock


def owed(db, request_id: str) -> dict[tuple[str, str], str]:
    with db.session() as s:
        return {(d.kind, d.key): d.status for d in s.scalars(select(Delivery).where(Delivery.request_id == request_id))}


@contextlib.contextmanager
def dying_before_the_card(service):
    """Within the block, the process dies between a state change's commit and its first Slack call."""
    die_before_the_card(service)
    with pytest.raises(Died):
        yield


def test_a_denial_dies_after_its_commit_and_its_dm_and_reply_are_still_sent_once(service, db, slack, groups):
    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer dashboards")
    service.drain()
    req = only_request(db)
    before = len(dms(slack, REQUESTER))
    with dying_before_the_card(service):
        service.decide(req.id, APPROVER, approve=False, note="not this quarter")
    assert service.get(req.id).state == DENIED
    rows = owed(db, req.id)
    assert rows[("dm", "denied")] == "pending" and rows[("thread", "state:denied")] == "pending", rows
    clock.advance(DELIVERY_LEASE + 1)  # the dead process's attempt lease runs out
    service.run_due()
    service.run_due()
    told = [t for t in dms(slack, REQUESTER)[before:] if "denied" in t.lower()]
    assert len(told) == 1, dms(slack, REQUESTER)[before:]
    assert owed(db, req.id)[("dm", "denied")] == "delivered"


def test_an_apply_owes_its_outcome_in_the_transaction_that_marks_it_applied(service, db, slack, groups):
    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer dashboards")
    service.drain()
    req = only_request(db)
    before = len(dms(slack, REQUESTER))
    service.decide(req.id, APPROVER, approve=True)
    with dying_before_the_card(service):
        service.execution.apply(req.id)
    assert service.get(req.id).state == APPLIED
    rows = owed(db, req.id)
    assert rows[("dm", "applied")] == "pending" and rows[("thread", "state:applied")] == "pending", rows
    service.run_due()  # the dead process's claims are gone with it; its attempt lease has not run out yet
    assert owed(db, req.id)[("dm", "applied")] == "pending"
    clock.advance(DELIVERY_LEASE + 1)
    service.run_due()
    service.run_due()
    told = dms(slack, REQUESTER)[before:]
    assert len(told) == 1 and told[0].startswith(":white_check_mark: Done"), told  # the outcome only, once
    assert f"Approved by <@{APPROVER}>" in told[0]  # the held approval was superseded: the outcome names them


def test_the_person_an_invite_is_for_is_told_who_asked_and_who_decided(service, db, slack, groups):
    # New-user trial: bob, invited by dan and denied, was told "Your request for membership ... was denied".
    from tests.conftest import ADMIN

    dan = "U0DAN"
    slack.add_user(dan, "dan", "dan@example.com", first_name="Dan", last_name="Tester")
    service.handle_command(ADMIN, "invite dan@example.com Viewer onboarding")
    service.drain()
    denied = only_request(db)
    service.decide(denied.id, APPROVER, approve=False, note="no NDA yet")
    (told,) = [t for t in dms(slack, dan) if t.startswith("For your information")]
    assert "Your request" not in told and f"<@{ADMIN}> asked for" in told, told
    assert f"<@{APPROVER}> denied it" in told and "Reason: no NDA yet" in told, told
    before = {r.id for r in requests_of(db)}
    service.handle_command(ADMIN, "invite dan@example.com Viewer onboarding, NDA signed")
    service.drain()
    again = newest(db, before)
    service.decide(again.id, APPROVER, approve=True)
    service.run_due()
    done = [t for t in dms(slack, dan) if t.startswith("For your information")][1:]
    assert len(done) == 1 and f"<@{ADMIN}> asked for" in done[0], done
    assert f"<@{APPROVER}> approved it, and it is done." in done[0] and "Viewer" in done[0], done
