"""Second attack review of the state messages, the cards owed with a state change and the prepared statements
(1777bfd..de4af0c). Each test failed on de4af0c: a cancel, an expiry or a failed apply whose process died after
its commit left the card showing the earlier state for good (only decisions and applies owed the cards; now
every state change does, in RequestStore.update), and two SQL expressions for one column shared a prepared
statement (its key hid the literal)."""

from __future__ import annotations

from bot.models import AccessRequest
from tests.bot.access.helpers import Died, die_before_the_card, buttons, card, only_request
from tests.conftest import APPROVER, REQUESTER, Clock


def _later_passes(service, clock, n=3):
    from bot.deliveries import DELIVERY_LEASE

    for _ in range(n):
        clock.advance(DELIVERY_LEASE + 30)
        service.run_due()


def test_a_cancel_that_dies_after_its_commit_still_gets_its_card_updated(service, db, slack, groups):
    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer dashboards")
    service.drain()
    req = only_request(db)
    assert buttons(card(slack, req))
    die_before_the_card(service)
    try:
        service.cancel_request(req.id, REQUESTER)
    except Died:
        pass
    assert service.get(req.id).state == "cancelled"
    _later_passes(service, clock)
    blocks = card(slack, service.get(req.id))
    # the cancel's commit does not owe the card (owe_cards is only in decisions and applies): buttons for good
    assert not buttons(blocks) and "Cancelled" in str(blocks["blocks"]), (buttons(blocks), str(blocks["blocks"])[-400:])


def test_an_expiry_that_dies_after_its_commit_still_gets_its_card_updated(service, db, slack, groups):
    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer dashboards")
    service.drain()
    req = only_request(db)
    clock.advance((req.expires_at - service.clock()).total_seconds() + 1)
    die_before_the_card(service)
    try:
        service.expire(req.id)
    except Died:
        pass
    assert service.get(req.id).state == "expired"
    _later_passes(service, clock)
    blocks = card(slack, service.get(req.id))
    assert not buttons(blocks), (buttons(blocks), str(blocks["blocks"])[-400:])


def test_update_with_two_different_sql_expressions_for_one_column(service, db, groups):
    service.handle_command(REQUESTER, "request Viewer dashboards")
    service.drain()
    req = only_request(db)
    store = service.store
    before = store.get(req.id).retries or 0
    store.set(req.id, retries=AccessRequest.retries + 1)
    store.set(req.id, retries=AccessRequest.retries + 10)
    # prepared.shape keys an expression by str(): 'access_requests.retries + :retries_1' for both, so the
    # second call runs the first statement (+1 again)
    assert store.get(req.id).retries == before + 11


def test_an_apply_that_fails_and_dies_after_its_commit_still_gets_its_card_updated(service, db, sandbox, slack, groups):
    # _apply_failed commits FAILED without owing the cards: a process dying before its refresh_card leaves the
    # card on "Approved, applying" with no Retry button, and no worker pass ever updates it.
    from standins.polaris_sandbox import Fault

    clock = Clock(service)
    service.handle_command(REQUESTER, "request Viewer dashboards")
    service.drain()
    req = only_request(db)
    sandbox.add_fault(Fault(method="POST", path=r"^/v1/users$", status=400, times=None))  # refused for good
    service.decide(req.id, APPROVER, approve=True)
    die_before_the_card(service)
    try:
        service.execution.apply(req.id)
    except Died:
        pass
    assert service.get(req.id).state == "failed"
    _later_passes(service, clock)
    shown = card(slack, service.get(req.id))
    assert buttons(shown) == ["Retry"], (buttons(shown), str(shown["blocks"])[:300])
