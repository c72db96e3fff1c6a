"""Trial finding (issue 11, invite names): once an invite that creates an account is applied, the card (the
record approvers and auditors read later) says "asks for membership in Viewer" and drops the *Names* field,
because ``polaris_user_id`` is set by the apply; the DM says "Done: membership in *Viewer*"."""

from __future__ import annotations

from bot.models import APPLIED
from tests.conftest import APPROVER, CHANNEL, click_body, signed_headers, wait_for
from tests.handlers.conftest import dispatch
from tests.handlers.test_invite_names import _invite


def test_the_applied_card_still_says_an_account_was_created_and_its_names(bolt, core, db, sandbox, slack):
    slack.add_user("U0DANA", "dana", "dana.reyes@example.com", first_name="Dana", last_name="Reyes")
    req, _reply, card = _invite(bolt, slack, db, "invite dana.reyes@example.com Viewer onboarding")
    assert "a Polaris account for" in card and "*Names*\\nDana Reyes" in card
    click = click_body(slack, APPROVER, "approve_request", req.id)
    assert dispatch(bolt, click, signed_headers(click)).status == 200
    wait_for(lambda: core.service.get(req.id).state == "approved")
    core.service.run_due()
    assert core.service.get(req.id).state == APPLIED
    core.service.drain()
    applied = str(slack.find_message(CHANNEL, req.approval_ts)["blocks"])
    assert "a Polaris account for" in applied, applied
    assert "*Names*\\nDana Reyes" in applied, applied
