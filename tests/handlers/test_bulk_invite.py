"""Issue 11, Bulk: ``/polaris invite a@x b@y <group> [reason]`` is one request (kind ``invite_many``) with one card
listing each person and one decision; once approved, one ``POST /v1/groups/{id}/members`` with those who have
accounts and a ``POST /v1/users`` for each who has none, each once in effect across crashes and lost answers.
Through signed slash commands and Approve clicks on the real Bolt app, applied in the Polaris sandbox."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from bot.models import APPLIED, APPROVED, INVITE_MANY, PENDING, AccessRequest
from standins.polaris_sandbox import Fault
from tests.bot.access.helpers import _Crash, _later, dms
from tests.conftest import APPROVER, APPROVER2, CHANNEL, REQUESTER, click_body, signed_headers, slash_body, wait_for
from tests.handlers.conftest import dispatch

MEMBERS_POST = r"^/v1/groups/[^/]+/members$"


def _requests(db):
    with db.session() as s:
        return list(s.scalars(select(AccessRequest)))


def _command(bolt, slack, user_id: str, text: str) -> str:
    """The ephemeral answer to ``/polaris <text>`` sent by ``user_id`` (signed)."""
    before = len(slack.responses)
    body = slash_body(slack, user_id, text)
    assert dispatch(bolt, body, signed_headers(body)).status == 200
    return wait_for(lambda: slack.responses[before:])[0]["text"]


def _click(bolt, slack, user_id: str, request_id: str) -> None:
    click = click_body(slack, user_id, "approve_request", request_id)
    assert dispatch(bolt, click, signed_headers(click)).status == 200


def _card(slack, req) -> str:
    return str(slack.find_message(CHANNEL, req.approval_ts)["blocks"])


def _people(core, req_id) -> dict:
    return {p["email"]: p for p in json.loads(core.service.get(req_id).plan)["people"]}


@pytest.fixture
def three(slack, sandbox, groups):
    """dana (a workspace member, no Polaris account), pat (a Polaris account outside Viewer), a stranger."""
    slack.add_user("U0DANA", "dana", "dana.reyes@example.com", first_name="Dana", last_name="Reyes")
    sandbox.create_user("pat@example.com", "Pat", "Lee", groups=[], actions=[])
    return "invite <@U0DANA> pat@example.com stranger@example.org Viewer onboarding"


def _asked(bolt, slack, db, text: str, user_id: str = REQUESTER):
    reply = _command(bolt, slack, user_id, text)
    assert "went to the approvers" in reply, reply
    req = wait_for(lambda: [r for r in _requests(db) if r.approval_ts])[0]
    return req, reply


def test_several_people_are_one_request_one_card_one_decision_applied_once(bolt, core, db, sandbox, slack, three):
    req, reply = _asked(bolt, slack, db, three)
    assert "access to *Viewer* for 3 people" in reply
    assert req.kind == INVITE_MANY and req.state == PENDING and len(_requests(db)) == 1
    card = _card(slack, req)
    assert "*People (3)*" in card and "dana.reyes@example.com" in card and "stranger@example.org" in card
    assert "Dana Reyes, from Slack" in card and "names unknown" in card
    _click(bolt, slack, APPROVER, req.id)
    wait_for(lambda: core.service.get(req.id).state != PENDING)
    core.service.run_due()
    done = core.service.get(req.id)
    assert done.state == APPLIED, (done.state, done.outcome)
    viewer = sandbox.group_by_name("Viewer")["id"]
    assert viewer in [g["id"] for g in sandbox.find_user("pat@example.com")["groups"]]
    dana = sandbox.find_user("dana.reyes@example.com")
    assert (dana["firstName"], dana["lastName"]) == ("Dana", "Reyes")
    assert sandbox.find_user("stranger@example.org") is not None
    members_posts = sandbox.writes("POST", MEMBERS_POST)
    assert len(members_posts) == 1 and len(sandbox.writes("POST", r"^/v1/users$")) == 2
    people = _people(core, req.id)
    assert [people[e]["state"] for e in ("dana.reyes@example.com", "pat@example.com", "stranger@example.org")] == [
        "created",
        "added",
        "created",
    ]
    card = _card(slack, done)
    assert "account created" in card and "*added*" in card
    told = "\n".join(dms(slack, REQUESTER))
    assert "3 of 3 have the membership" in told and "pat@example.com: added" in told
    (note,) = dms(slack, "U0DANA")  # the person with a Slack account is told, once
    assert "a Polaris account was created for you in *Viewer*" in note and f"<@{REQUESTER}> invited you" in note


def test_the_requester_cannot_approve_and_a_privileged_group_needs_two_org_admins(bolt, core, db, sandbox, slack):
    from tests.conftest import seed_polaris

    seed_polaris(sandbox)
    req, _ = _asked(bolt, slack, db, "invite dana@example.com sam@example.com Organization Admin audit", APPROVER)
    assert req.approvals_required == 2
    _click(bolt, slack, APPROVER, req.id)  # the requester
    core.service.drain()
    assert core.service.get(req.id).state == PENDING and core.service.store.approver_ids(req.id) == []
    _click(bolt, slack, APPROVER2, req.id)
    wait_for(lambda: core.service.store.approver_ids(req.id) == [APPROVER2])
    assert core.service.get(req.id).state == PENDING  # one of two
    from tests.conftest import ADMIN

    _click(bolt, slack, ADMIN, req.id)
    wait_for(lambda: core.service.get(req.id).state != PENDING)
    core.service.run_due()
    assert core.service.get(req.id).state == APPLIED
    assert sandbox.writes() and len(sandbox.writes("POST", r"^/v1/users$")) == 2


def test_a_guest_deactivated_or_bot_person_refuses_the_command_naming_who(bolt, core, db, sandbox, slack, groups):
    answer = _command(bolt, slack, REQUESTER, "invite dana@example.com <@U0GUS> <@U0GONE> Viewer onboarding")
    assert "Nothing was asked" in answer and "gus@partner.example" in answer and "guest" in answer
    assert "gone@example.com" in answer and "deactivated" in answer
    core.service.drain()
    assert _requests(db) == [] and slack.messages_in(CHANNEL) == [] and sandbox.writes() == []


def test_more_than_25_people_or_a_duration_is_refused_with_a_sentence(bolt, core, db, sandbox, slack, groups):
    many = " ".join(f"p{i}@example.com" for i in range(26))
    assert "at most 25" in _command(bolt, slack, REQUESTER, f"invite {many} Viewer")
    answer = _command(bolt, slack, REQUESTER, "invite a@example.com b@example.com Viewer for 2h onboarding")
    assert "Time-bound invites are one person at a time" in answer
    core.service.drain()
    assert _requests(db) == [] and sandbox.writes() == []


def test_people_already_in_the_group_are_left_out_and_one_invite_still_works(bolt, core, db, sandbox, slack, groups):
    sandbox.create_user("pat@example.com", "Pat", "Lee", groups=[groups["Viewer"]], actions=[])
    req, reply = _asked(bolt, slack, db, "invite pat@example.com kim@example.com Viewer")
    assert "Left out, already members of *Viewer*: `pat@example.com`" in reply
    assert list(_people(core, req.id)) == ["kim@example.com"]
    assert "already a member" in _command(bolt, slack, REQUESTER, "invite pat@example.com Viewer")
    assert "Everyone you named is already a member" in _command(
        bolt, slack, REQUESTER, "invite erin@example.com bob@example.com Organization Admin"
    )
    # the same people and group again: one open request per group and set
    assert "already an open request" in _command(
        bolt, slack, REQUESTER, "invite kim@example.com pat@example.com Viewer"
    )
    assert "went to the approvers" in _command(bolt, slack, REQUESTER, "invite lee@example.com Viewer")
    single = [r for r in _requests(db) if r.target_email == "lee@example.com"]  # one person: the invite as before
    assert [r.kind for r in single] == ["invite"] and "people" not in (single[0].plan or "")


def test_a_person_deactivated_before_the_apply_is_dropped_with_the_reason_on_the_card(
    bolt, core, db, sandbox, slack, three
):
    req, _ = _asked(bolt, slack, db, three)
    _click(bolt, slack, APPROVER, req.id)
    wait_for(lambda: core.service.get(req.id).state == APPROVED)
    slack.users["U0DANA"]["deleted"] = True
    core.service.run_due()
    done = core.service.get(req.id)
    assert done.state == APPLIED, done.outcome
    assert sandbox.find_user("dana.reyes@example.com") is None
    dana = _people(core, req.id)["dana.reyes@example.com"]
    assert dana["state"] == "dropped" and "deactivated" in dana["why"]
    assert "dropped" in _card(slack, done) and "deactivated" in _card(slack, done)
    assert "2 of 3 have the membership" in "\n".join(dms(slack, REQUESTER))
    assert dms(slack, "U0DANA") == []  # dropped: told nothing of a membership


def test_a_crash_after_the_members_post_sends_it_once(bolt, core, db, sandbox, slack, three):
    req, _ = _asked(bolt, slack, db, three)
    _click(bolt, slack, APPROVER, req.id)
    wait_for(lambda: core.service.get(req.id).state == APPROVED)
    service = core.service
    real = service.polaris.transport

    def crash_after_members(method, path, params, body, ok):
        response = real(method, path, params, body, ok)
        if method == "POST" and path.endswith("/members"):
            raise _Crash()  # the POST landed; the process dies before it hears the answer
        return response

    service.polaris.transport = crash_after_members
    with pytest.raises(_Crash):
        service.run_due()
    service.polaris.transport = real
    assert _people(core, req.id)["pat@example.com"]["state"] == "adding"
    service.run_due()
    done = service.get(req.id)
    assert done.state == APPLIED, done.outcome
    assert len(sandbox.writes("POST", MEMBERS_POST)) == 1
    assert _people(core, req.id)["pat@example.com"]["state"] == "added"
    assert len(sandbox.writes("POST", r"^/v1/users$")) == 2


def test_a_create_whose_answer_was_lost_is_looked_up_never_sent_twice(bolt, core, db, sandbox, slack, three):
    req, _ = _asked(bolt, slack, db, three)
    _click(bolt, slack, APPROVER, req.id)
    wait_for(lambda: core.service.get(req.id).state == APPROVED)
    sandbox.add_fault(Fault(method="POST", path=r"^/v1/users$", status=503, after_handle=True, times=1))
    core.service.run_due()
    done = core.service.get(req.id)
    assert done.state == APPLIED, done.outcome
    assert len(sandbox.writes("POST", r"^/v1/users$")) == 2  # dana once (answer lost, found), stranger once


def test_a_crash_during_a_create_waits_out_its_time_budget_and_looks_first(bolt, core, db, sandbox, slack, three):
    req, _ = _asked(bolt, slack, db, three)
    _click(bolt, slack, APPROVER, req.id)
    wait_for(lambda: core.service.get(req.id).state == APPROVED)
    service = core.service
    real = service.polaris.transport

    def crash_after_create(method, path, params, body, ok):
        response = real(method, path, params, body, ok)
        if method == "POST" and path == "/v1/users":
            raise _Crash()  # the create landed; the process dies before it hears the answer
        return response

    service.polaris.transport = crash_after_create
    with pytest.raises(_Crash):
        service.run_due()
    service.polaris.transport = real
    service.run_due()  # another process at once: the create's time budget has not passed, nothing is sent
    assert service.get(req.id).state == APPROVED and len(sandbox.writes("POST", r"^/v1/users$")) == 1
    _later(service, 120)
    service.run_due()
    done = service.get(req.id)
    assert done.state == APPLIED, done.outcome
    assert len(sandbox.writes("POST", r"^/v1/users$")) == 2  # the first person once, the second once
    assert all(p["state"] in ("created", "added") for p in _people(core, req.id).values())


def test_a_failed_bulk_invite_is_retried_under_its_own_open_key_and_sends_nothing_twice(
    bolt, core, db, sandbox, slack, three
):
    """Polaris refuses the members POST (403): the request fails, the people's states kept; Retry reopens it
    under the same key (the same people and group cannot be asked again meanwhile) and finishes the rest."""
    req, _ = _asked(bolt, slack, db, three)
    key = req.open_key
    assert key.startswith("bulk|") and "dana.reyes@example.com, pat@example.com, stranger@example.org" in key
    _click(bolt, slack, APPROVER, req.id)
    wait_for(lambda: core.service.get(req.id).state == APPROVED)
    sandbox.add_fault(Fault(method="POST", path=MEMBERS_POST, status=403, times=1))
    core.service.run_due()
    assert core.service.get(req.id).state == "failed" and core.service.get(req.id).open_key is None
    retry = click_body(slack, APPROVER, "retry_request", req.id)
    assert dispatch(bolt, retry, signed_headers(retry)).status == 200
    wait_for(lambda: any("Retrying" in (r.get("text") or "") for r in slack.responses))
    assert core.service.get(req.id).state != "failed" and core.service.get(req.id).open_key == key
    again = _command(bolt, slack, REQUESTER, "invite stranger@example.org pat@example.com <@U0DANA> Viewer")
    assert "already an open request" in again
    core.service.run_due()
    done = core.service.get(req.id)
    assert done.state == APPLIED, done.outcome
    assert len(sandbox.writes("POST", r"^/v1/users$")) == 2 and len(sandbox.writes("POST", MEMBERS_POST)) == 1


def test_an_approver_among_the_people_cannot_approve_it(bolt, core, db, sandbox, slack, groups):
    """Like a one-person invite ("a request that is for you"): an approver invited with others decides nothing."""
    req, _ = _asked(bolt, slack, db, f"invite <@{APPROVER2}> kim@example.com Viewer onboarding")
    _click(bolt, slack, APPROVER2, req.id)
    wait_for(lambda: any("for you" in (r.get("text") or "") for r in slack.responses))
    core.service.drain()
    assert core.service.get(req.id).state == PENDING and core.service.store.approver_ids(req.id) == []
    _click(bolt, slack, APPROVER, req.id)
    wait_for(lambda: core.service.get(req.id).state == APPROVED)


def test_a_bulk_invite_polaris_refused_fails_with_retry_and_the_retry_adds_those_people(
    bolt, core, db, sandbox, slack, groups
):
    """The one members POST is refused with a 400: the request fails (not applied), the card offers Retry, and
    the Retry sends those people again (they were not settled as failed for good) and applies it."""
    for email in ("pat@example.com", "kim@example.com"):
        sandbox.create_user(email, "P", "L", groups=[], actions=[])
    req, _ = _asked(bolt, slack, db, "invite pat@example.com kim@example.com Viewer onboarding")
    _click(bolt, slack, APPROVER, req.id)
    wait_for(lambda: core.service.get(req.id).state == APPROVED)
    sandbox.add_fault(Fault(method="POST", path=MEMBERS_POST, status=400, times=1))
    core.service.run_due()
    failed = core.service.get(req.id)
    assert failed.state == "failed" and "0 of 2 have the membership" in failed.outcome, failed.outcome
    assert "retry_request" in _card(slack, req)
    retry = click_body(slack, APPROVER, "retry_request", req.id)
    assert dispatch(bolt, retry, signed_headers(retry)).status == 200
    wait_for(lambda: core.service.get(req.id).state == APPROVED)
    core.service.run_due()
    done = core.service.get(req.id)
    assert done.state == APPLIED and "2 of 2 have the membership" in done.outcome, done.outcome
    assert len(sandbox.writes("POST", MEMBERS_POST)) == 1  # the Retry's (the refused one changed nothing)
    for email in ("pat@example.com", "kim@example.com"):
        assert groups["Viewer"] in [g["id"] for g in sandbox.find_user(email)["groups"]], email


def test_a_one_person_invite_or_a_join_is_refused_while_an_open_bulk_invite_names_them(
    bolt, core, db, sandbox, slack, three
):
    """The reverse of the bulk invite's own check: once a bulk invite for Viewer names pat and dana, a one-person
    invite of pat, or dana asking to join herself, would be a second grant of the same membership (found in the
    review: only the bulk invite looked for the other)."""
    req, _ = _asked(bolt, slack, db, three)
    again = _command(bolt, slack, REQUESTER, "invite pat@example.com Viewer to be sure")
    assert "already an open request" in again and req.id[:8] in again, again
    own = _command(bolt, slack, "U0DANA", "request Viewer dashboards")
    assert "already an open request" in own and req.id[:8] in own, own
    assert [r.kind for r in _requests(db)] == [INVITE_MANY]
    # someone the bulk invite does not name is not held up by it
    assert "went to the approvers" in _command(bolt, slack, REQUESTER, "invite other.person@example.com Viewer")


def test_a_bulk_invite_that_fails_part_way_tells_those_it_did_add_once(bolt, core, db, sandbox, slack, groups):
    """kim (a workspace member with an account) is added by the members POST; dana's account is refused by
    Polaris, so the request fails. kim has the membership and is told at once (before, only an applied bulk
    invite told anyone: kim heard nothing unless a Retry succeeded); the Retry that creates dana does not tell
    kim again."""
    slack.add_user("U0KIM", "kim", "kim@example.com", first_name="Kim", last_name="Park")
    slack.add_user("U0DANA", "dana", "dana.reyes@example.com", first_name="Dana", last_name="Reyes")
    sandbox.create_user("kim@example.com", "Kim", "Park", groups=[], actions=[])
    req, _ = _asked(bolt, slack, db, "invite <@U0KIM> <@U0DANA> Viewer onboarding")
    _click(bolt, slack, APPROVER, req.id)
    wait_for(lambda: core.service.get(req.id).state == APPROVED)
    sandbox.add_fault(Fault(method="POST", path=r"^/v1/users$", status=400, times=1))
    core.service.run_due()
    core.service.drain()
    failed = core.service.get(req.id)
    assert failed.state == "failed" and "1 of 2 have the membership" in failed.outcome, failed.outcome
    told = [t for t in dms(slack, "U0KIM") if "you are now a member of *Viewer*" in t]
    assert len(told) == 1, dms(slack, "U0KIM")
    assert not dms(slack, "U0DANA")
    retry = click_body(slack, APPROVER, "retry_request", req.id)
    assert dispatch(bolt, retry, signed_headers(retry)).status == 200
    wait_for(lambda: core.service.get(req.id).state == APPROVED)
    core.service.run_due()
    core.service.drain()
    assert core.service.get(req.id).state == APPLIED
    assert len([t for t in dms(slack, "U0KIM") if "Viewer" in t]) == 1, dms(slack, "U0KIM")
    assert [t for t in dms(slack, "U0DANA") if "a Polaris account was created for you in *Viewer*" in t]


def test_someone_named_twice_is_asked_for_once_and_the_answer_says_so(bolt, core, db, sandbox, slack, groups):
    """New-user trial: ``invite e1 e2 e1 Viewer`` gave a card for 2 people and ``e3 E3`` a one-person invite, with no
    word about the repeat."""
    req, reply = _asked(bolt, slack, db, "invite e1@x.com e2@x.com e1@x.com Viewer team")
    assert "Named more than once, counted once: `e1@x.com`." in reply, reply
    assert list(_people(core, req.id)) == ["e1@x.com", "e2@x.com"]
    one = _command(bolt, slack, REQUESTER, "invite e3@x.com E3@X.com Viewer team")
    assert "went to the approvers" in one and "Named more than once, counted once: `e3@x.com`." in one, one


def test_a_word_that_is_no_person_before_the_group_is_named(bolt, core, db, sandbox, slack, groups):
    """New-user trial: ``invite e4@x.com bad-email Viewer team`` said there is no group `bad-email Viewer team`."""
    answer = _command(bolt, slack, REQUESTER, "invite e4@x.com bad-email Viewer team")
    assert "`bad-email` is neither an email nor an @mention, so nothing was asked" in answer, answer
    assert "There is no Polaris group called" in _command(bolt, slack, REQUESTER, "invite e4@x.com Viewr team")
    assert _requests(db) == []
