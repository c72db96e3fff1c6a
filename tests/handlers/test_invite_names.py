"""Issue 11: an invited account's names come from the Slack profile of the workspace member with that email
(``users.lookupByEmail`` then ``users.info``); otherwise the reply and the card say they are unknown. Through
signed slash commands and Approve clicks on the real Bolt app."""

from __future__ import annotations

import json

from sqlalchemy import select

from bot.models import APPLIED, AccessRequest
from tests.conftest import APPROVER, CHANNEL, REQUESTER, click_body, signed_headers, slash_body, wait_for
from tests.handlers.conftest import dispatch


def _requests(db):
    with db.session() as s:
        return list(s.scalars(select(AccessRequest)))


def _invite(bolt, slack, db, text: str):
    body = slash_body(slack, REQUESTER, text)
    assert dispatch(bolt, body, signed_headers(body)).status == 200
    req = wait_for(lambda: [r for r in _requests(db) if r.approval_ts])[0]
    reply = wait_for(lambda: [r for r in slack.responses if "went to the approvers" in (r.get("text") or "")])[0]
    return req, reply["text"], str(slack.find_message(CHANNEL, req.approval_ts)["blocks"])


def test_an_invited_workspace_member_gets_the_names_of_their_slack_profile(bolt, core, db, sandbox, slack):
    slack.add_user("U0DANA", "dana", "dana.reyes@example.com", first_name="Dana", last_name="Reyes")
    req, reply, card = _invite(bolt, slack, db, "invite dana.reyes@example.com Viewer onboarding")
    assert "Dana Reyes, from their Slack profile" in reply
    assert "*Names*\\nDana Reyes, from their Slack profile" in card
    click = click_body(slack, APPROVER, "approve_request", req.id)
    assert dispatch(bolt, click, signed_headers(click)).status == 200
    wait_for(lambda: core.service.get(req.id).state == "approved")
    core.service.run_due()
    assert core.service.get(req.id).state == APPLIED
    user = sandbox.find_user("dana.reyes@example.com")
    assert (user["firstName"], user["lastName"]) == ("Dana", "Reyes")


def test_an_invitee_outside_the_workspace_is_said_to_have_unknown_names(bolt, core, db, sandbox, slack):
    req, reply, card = _invite(bolt, slack, db, "invite stranger@example.org Viewer contractor")
    assert "names: unknown" in reply and "no member of this workspace" in reply
    assert "*Names*\\nunknown" in card
    assert (req.target_first_name, req.target_last_name) == ("", "")


def test_an_invitee_who_has_an_account_keeps_their_names_and_the_card_says_none(bolt, core, db, sandbox, slack):
    """pat has a Polaris account: a membership, no *Names* field (the account keeps its own)."""
    sandbox.create_user("pat@example.com", "Pat", "Lee", groups=[], actions=[])
    body = slash_body(slack, REQUESTER, "invite pat@example.com Viewer dashboards")
    assert dispatch(bolt, body, signed_headers(body)).status == 200
    req = wait_for(lambda: [r for r in _requests(db) if r.approval_ts])[0]
    assert "*Names*" not in str(slack.find_message(CHANNEL, req.approval_ts)["blocks"])


def test_an_invite_naming_several_people_reads_each_as_a_person_in_one_bulk_invite(bolt, core, db, sandbox, slack):
    """``invite a@x b@y Viewer`` read ``b@y`` as the group ("no group"); the people are read as people, and (bulk
    invites, tests/handlers/test_bulk_invite.py) the invite is one request for both, with its own names each."""
    slack.add_user("U0DANA", "dana", "dana.reyes@example.com", first_name="Dana", last_name="Reyes")
    body = slash_body(slack, REQUESTER, "invite dana.reyes@example.com <@U0OSCAR> Viewer onboarding")
    assert dispatch(bolt, body, signed_headers(body)).status == 200
    answer = wait_for(lambda: slack.responses)[0]
    assert answer["response_type"] == "ephemeral"
    assert "access to *Viewer* for 2 people went to the approvers" in answer["text"]
    (req,) = _requests(db)
    assert req.kind == "invite_many" and req.group_name == "Viewer" and req.reason == "onboarding"
    people = json.loads(req.plan)["people"]
    assert [(p["email"], p["first"]) for p in people] == [
        ("dana.reyes@example.com", "Dana"),
        ("oscar@example.com", "Oscar"),
    ]
