"""Attack review of issue 11's ``update-user`` and bulk ``invite`` (attack2): each test is a defect found by
forged or edge-case input through signed requests to the real Bolt app; each fails on the code it was written
against and passes once the defect is fixed."""

from __future__ import annotations

import json


from bot.models import APPLIED, APPROVED, PENDING
from standins.polaris_sandbox import Fault
from tests.conftest import ADMIN, APPROVER, REQUESTER
from tests.handlers.test_bulk_invite import MEMBERS_POST, _asked, _card, _click, _command
from tests.handlers.test_update_user import _opened, _requests, _state, _submit
from tests.handlers.test_update_user import _click as _approve
from tests.handlers import test_update_user as _uu
from tests.conftest import wait_for

core = _uu.core  # the ADMINS fixture of update-user (carol, bob, erin, oscar); bulk invites are unaffected


def test_update_user_forged_metadata_lets_the_person_approve_their_own_change(bolt, core, slack, sandbox, db, groups):
    """carol opens the form for oscar, then submits it with ``private_metadata`` naming bob's Polaris account and
    ``"slack": ""``. The request is saved for bob with no Slack ID, so bob himself approves (and it is applied) a
    change to his own account. Should: the Slack account is derived from the Polaris user (bob's email), never
    taken from the form, and bob is refused ("a request that is for you")."""
    sandbox.create_user("oscar@example.com", "Oscar", "Old", groups=[groups["Viewer"]], actions=[])
    view = _opened(bolt, core, slack, ADMIN, "update-user oscar@example.com")
    bob = sandbox.find_user("bob@example.com")
    meta = {"id": bob["id"], "email": "oscar@example.com", "slack": "", "first": "Oscar", "last": "Old"}
    _submit(bolt, {**view, "private_metadata": json.dumps(meta)}, ADMIN, "Bobby", "Tester", True)
    core.service.drain()
    req = wait_for(lambda: [r for r in _requests(db) if r.approval_ts])[-1]
    assert req.polaris_user_id == bob["id"]
    answer = _approve(bolt, core, slack, APPROVER, req)  # bob decides a change to bob's own account
    assert "for you" in answer, answer
    assert _state(db, req) == PENDING and sandbox.find_user("bob@example.com")["firstName"] == "Bob"


def test_update_user_forged_slack_id_blames_someone_else(bolt, core, slack, sandbox, db, groups):
    """The same forgery the other way: ``"slack"`` names alice for bob's account. The card says the change is
    for alice's Slack account and she is the one barred from deciding, while bob may approve it. Should: the
    request's Slack account is the Polaris user's (bob), whatever the form says."""
    sandbox.create_user("oscar@example.com", "Oscar", "Old", groups=[groups["Viewer"]], actions=[])
    view = _opened(bolt, core, slack, ADMIN, "update-user oscar@example.com")
    bob = sandbox.find_user("bob@example.com")
    meta = {"id": bob["id"], "email": "bob@example.com", "slack": REQUESTER}
    _submit(bolt, {**view, "private_metadata": json.dumps(meta)}, ADMIN, "Bobby", "Tester", True)
    core.service.drain()
    req = wait_for(lambda: [r for r in _requests(db) if r.approval_ts])[-1]
    assert req.target_slack_id == APPROVER, req.target_slack_id


def test_bulk_card_of_25_people_hides_some_of_those_the_approver_grants(bolt, core, db, sandbox, slack, groups):
    """25 people with long (valid, 100-character) emails: the card's one section cannot hold 25 lines, so it
    ends "…and N more" and the approver grants access to people the card never names. Should: every person of
    an invite is on the card (more sections, or fewer people per invite), each line within Block Kit's limits."""
    emails = [f"{'a' * 80}{i:02d}@example-partner.org" for i in range(25)]
    req, _ = _asked(bolt, slack, db, "invite " + " ".join(emails) + " Viewer onboarding")
    card = _card(slack, req)
    missing = [e for e in emails if e not in card]
    assert missing == [], f"{len(missing)} of 25 people are not on the card"
    blocks = slack.find_message("C0APPROVALS", req.approval_ts)["blocks"]
    assert len(blocks) <= 50 and all(len(b.get("text", {}).get("text", "")) <= 3000 for b in blocks)


def test_bulk_where_polaris_refused_everyone_is_recorded_applied_with_no_retry(bolt, core, db, sandbox, slack, groups):
    """Two people with accounts; the one members POST is refused with a 400 (e.g. a transient validation
    problem in Polaris): every person is marked failed, yet the request is APPLIED ("0 of 2 have the
    membership"), the requester is told it was applied and no Retry is possible. Should: a bulk invite in which
    nobody got the membership (or somebody failed) is failed / retryable, as a one-person invite refused by
    Polaris is."""
    for email in ("pat@example.com", "kim@example.com"):
        sandbox.create_user(email, "P", "L", groups=[], actions=[])
    req, _ = _asked(bolt, slack, db, "invite pat@example.com kim@example.com Viewer onboarding")
    _click(bolt, slack, APPROVER, req.id)
    wait_for(lambda: core.service.get(req.id).state == APPROVED)
    sandbox.add_fault(Fault(method="POST", path=MEMBERS_POST, status=400, times=1))
    core.service.run_due()
    done = core.service.get(req.id)
    assert "0 of 2" in (done.outcome or "")
    assert done.state != APPLIED, (done.state, done.outcome)


def test_bulk_invite_of_someone_with_an_open_invite_to_the_same_group_is_a_second_open_request(
    bolt, core, db, sandbox, slack, groups
):
    """alice has an open one-person invite to Viewer; a bulk invite of alice and kim to Viewer is saved as a
    second open request for alice and Viewer (its open key is per set of people, so the one-open-request-per-
    person-and-group rule is bypassed: two cards, two decisions for the same access). Should: alice is refused
    or left out naming the open request, as a second one-person invite is ("already an open request")."""
    first = _command(bolt, slack, REQUESTER, "invite alice@example.com Viewer onboarding")
    assert "went to the approvers" in first
    again = _command(bolt, slack, REQUESTER, "invite <@U0ALICE> kim@example.org Viewer onboarding")
    assert "already an open request" in again, again


def test_bulk_invite_with_one_bad_address_blames_the_group(bolt, core, db, sandbox, slack, groups):
    """``invite a@example.org not-an-email b@example.org Viewer``: the answer is "There is no Polaris group
    called `not-an-email b@example.org Viewer onboarding`" (a valid email taken as part of a group name).
    Should: say that `not-an-email` is neither an email nor an @mention, and ask nothing."""
    reply = _command(bolt, slack, REQUESTER, "invite a@example.org not-an-email b@example.org Viewer onboarding")
    assert "not-an-email" in reply and "no Polaris group called" not in reply, reply
    assert [r for r in _requests_all(db)] == []


def test_one_person_named_twice_is_a_bulk_invite_that_refuses_a_duration(bolt, core, db, sandbox, slack, groups):
    """``invite <@U0OSCAR> oscar@example.com "Data Analyst" for 2h``: one person typed twice (mention and email)
    becomes a bulk invite of 1 person, which refuses the duration ("Time-bound invites are one person at a
    time"). Should: duplicates dropped first; one person left is an ordinary invite (duration allowed)."""
    reply = _command(bolt, slack, REQUESTER, "invite <@U0OSCAR> oscar@example.com Data Analyst for 2h onboarding")
    assert "one person at a time" not in reply, reply


def _requests_all(db):
    from sqlalchemy import select

    from bot.models import AccessRequest

    with db.session() as s:
        return list(s.scalars(select(AccessRequest)))
