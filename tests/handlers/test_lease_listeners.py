"""Time-bound access through the listeners: the request form's "For how long" (a duration it cannot read is a
``view_submission`` error in the form; the group's maximum is answered by DM), and the Extend / I'm done
buttons of the DM before the end."""

from __future__ import annotations

import json

from sqlalchemy import select

from bot.models import LEASE_ENDED, AccessRequest, Lease
from tests.conftest import APPROVER, OTHER, REQUESTER, click_body, wait_for
from tests.handlers.conftest import dispatch, form_submission


def only(db, model):
    with db.session() as s:
        return list(s.scalars(select(model)))


def test_the_form_takes_a_duration(bolt, core, groups, db):
    response = dispatch(bolt, form_submission(groups["Viewer"], "dashboards", duration="4h"))
    assert response.status == 200 and not response.body
    core.service.drain()
    (req,) = only(db, AccessRequest)
    assert req.duration_seconds == 4 * 3600 and req.reason == "dashboards"


def test_a_duration_the_form_cannot_read_is_an_error_in_the_form(bolt, core, groups, db):
    for typed, words in (("soon", "not a duration"), ("30", "not a duration"), ("10s", "at least 1 minute")):
        response = dispatch(bolt, form_submission(groups["Viewer"], "x", duration=typed))
        errors = json.loads(response.body)["errors"]
        assert words in errors["duration"], (typed, errors)
    core.service.drain()
    assert only(db, AccessRequest) == []


def test_over_the_maximum_in_the_form_is_answered_by_dm_naming_the_maximum(bolt, core, groups, db, slack, tmp_path):
    from bot.policy import load_policy

    (tmp_path / "p.toml").write_text('[groups.Viewer]\nmax_duration = "2h"\n')
    core.service.policy = load_policy(str(tmp_path / "p.toml"))
    dispatch(bolt, form_submission(groups["Viewer"], "x", duration="1d"))
    core.service.drain()
    assert only(db, AccessRequest) == []
    texts = [m["text"] for m in slack.messages_in(slack.dm_channel(REQUESTER))]
    assert any("at most 2 hours" in t for t in texts), texts


def test_extend_and_done_buttons(bolt, core, groups, db, slack):
    service = core.service
    service.handle_command(REQUESTER, "request Viewer for 2h")
    (req,) = only(db, AccessRequest)
    service.decide(req.id, APPROVER, approve=True)
    service.run_due()
    (lease,) = only(db, Lease)
    assert dispatch(bolt, click_body(slack, OTHER, "lease_extend", lease.id)).status == 200
    wait_for(lambda: slack.responses)
    assert "Only the person" in slack.responses[-1]["text"]
    dispatch(bolt, click_body(slack, REQUESTER, "lease_extend", lease.id))
    wait_for(lambda: len(only(db, AccessRequest)) == 2)
    dispatch(bolt, click_body(slack, REQUESTER, "lease_done", lease.id))
    wait_for(lambda: only(db, Lease)[0].state == LEASE_ENDED)
    wait_for(lambda: any("has ended" in r["text"] for r in slack.responses))
    service.drain()
