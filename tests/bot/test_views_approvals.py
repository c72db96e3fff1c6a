"""Block Kit of the approver experience (bot/views/approvals.py): the time an approver may grant, the forms,
and what people wrote escaped once."""

from __future__ import annotations

import datetime as dt

from bot.models import DENIED, PENDING, AccessRequest
from bot.views import approvals

NOW = dt.datetime(2026, 12, 9, 12, 0, tzinfo=dt.timezone.utc)


def req(**values) -> AccessRequest:
    base = dict(
        id="0f0e0d0c-0000-4000-8000-000000000001",
        kind="join",
        state=PENDING,
        requester_id="U0ALICE",
        target_email="alice@example.com",
        group_id="g1",
        group_name="Viewer <b>",
        reason="dash <!channel>",
        created_at=NOW - dt.timedelta(hours=3),
        expires_at=NOW + dt.timedelta(hours=21),
        reminders_sent=0,
    )
    base.update(values)
    return AccessRequest(**base)


def test_an_approver_may_grant_what_was_asked_or_less_never_over_the_maximum():
    assert approvals.duration_choices(4 * 3600, None)[:3] == [4 * 3600, 2 * 3600, 3600]
    assert approvals.duration_choices(4 * 3600, 3600) == [3600, 1800, 900]
    assert approvals.duration_choices(600, None) == [600]


def test_the_forms_carry_the_request_and_fit_slack_limits():
    deny = approvals.deny_modal(req(), required=True)
    approve = approvals.approve_modal(req(duration_seconds=7200), maximum=None)
    for view in (deny, approve):
        assert view["private_metadata"] == req().id and len(view["title"]["text"]) <= 24
        assert "&lt;!channel&gt;" in view["blocks"][0]["text"]["text"]
    assert deny["blocks"][1]["optional"] is False
    assert [o["text"]["text"] for o in approve["blocks"][1]["element"]["options"]][:2] == [
        "2 hours (as asked)",
        "1 hour",
    ]
    refused = approvals.refusal_modal("deny_modal", req().id, "Only approvers can decide access requests.")
    assert "submit" not in refused


def test_the_card_lines_escape_the_reason_and_say_what_was_granted():
    blocks = approvals.card_blocks(
        req(state=DENIED, decision_note="<@U0EVE> & co", duration_seconds=3600, asked_duration_seconds=7200)
    )
    text = str(blocks)
    assert "*Reason for denial:* &lt;@U0EVE&gt; &amp; co" in text
    assert "Granted for 1 hour (asked 2 hours)" in text


def test_awaiting_says_how_long_it_waited_and_when_it_reminds_escalates_and_expires():
    r = req(remind_at=NOW + dt.timedelta(hours=1), escalate_at=NOW + dt.timedelta(hours=5))
    _, blocks = approvals.awaiting_list("Requests awaiting a decision", [r], "none", NOW)
    line = blocks[1]["text"]["text"]
    assert "waited 3 hours" in line and "reminds in 1 hour" in line
    assert "escalates in 5 hours" in line and "expires in 21 hours" in line
    assert "Viewer &lt;b&gt;" in line
