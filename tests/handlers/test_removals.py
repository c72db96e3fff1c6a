"""The listeners of issue 10's removals: the ``user_change`` event (a deactivated Slack account) and the Cancel
button of ``status`` and the App Home, as Slack sends them (signed) through the real Bolt app."""

from __future__ import annotations

import json
import time
import urllib.parse

from sqlalchemy import select

from bot.models import BOT_REQUESTER, CANCELLED, OFFBOARD, PENDING, AccessRequest
from tests.conftest import CHANNEL, GONE, OTHER, REQUESTER, signed_headers, wait_for
from tests.handlers.conftest import dispatch


def _requests(db):
    with db.session() as s:
        return list(s.scalars(select(AccessRequest)))


def user_change(user: dict, event_id: str) -> str:
    return json.dumps(
        {
            "token": "x",
            "team_id": "T0STANDIN",
            "api_app_id": "A0TEST",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "event": {"type": "user_change", "user": user},
        }
    )


def test_a_deactivation_event_posts_one_offboarding_card(bolt, core, db, sandbox, slack, groups):
    sandbox.create_user("gone@example.com", "Gone", "Person", groups=[groups["Viewer"]], actions=[])
    active = user_change({"id": OTHER, "deleted": False, "profile": {"email": "oscar@example.com"}}, "Ev0ACTIVE")
    assert dispatch(bolt, active, signed_headers(active, content_type="application/json")).status == 200
    body = user_change({"id": GONE, "deleted": True, "profile": {"email": "gone@example.com"}}, "Ev0GONE1")
    for retry in range(3):  # the first delivery and two of Slack's retries
        headers = signed_headers(body, content_type="application/json")
        if retry:
            headers["x-slack-retry-num"] = str(retry)
        assert dispatch(bolt, body, headers).status == 200
    req = wait_for(lambda: [r for r in _requests(db) if r.approval_ts])[0]
    core.service.drain()
    assert len(_requests(db)) == 1
    assert (req.kind, req.requester_id, req.target_email, req.state) == (
        OFFBOARD,
        BOT_REQUESTER,
        "gone@example.com",
        PENDING,
    )
    assert "was deactivated" in str(slack.find_message(CHANNEL, req.approval_ts)["blocks"])
    assert sandbox.writes() == []


def _click(slack, user_id: str, request_id: str, container: dict) -> str:
    payload = {
        "type": "block_actions",
        "team": {"id": "T0STANDIN"},
        "user": {"id": user_id},
        "api_app_id": "A0TEST",
        "trigger_id": "1.2",
        "container": container,
        "actions": [
            {
                "type": "button",
                "action_id": f"cancel_request:{request_id[:8]}",
                "block_id": "cancel_requests",
                "value": request_id,
                "action_ts": "1.3",
            }
        ],
    }
    if container["type"] == "message":
        payload["response_url"] = slack.response_url()
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def test_the_cancel_button_of_status_cancels_and_answers(bolt, core, db, slack, groups):
    core.service.handle_command(REQUESTER, "request Viewer")
    req = _requests(db)[0]
    body = _click(slack, REQUESTER, req.id, {"type": "message", "is_ephemeral": True, "message_ts": "1.1"})
    assert dispatch(bolt, body).status == 200
    wait_for(lambda: slack.responses)
    assert "Cancelled request" in slack.responses[-1]["text"]
    assert core.service.get(req.id).state == CANCELLED


def test_the_cancel_button_of_the_home_tab_publishes_the_tab_again(bolt, core, db, slack, groups):
    core.service.handle_command(REQUESTER, "request Viewer")
    req = _requests(db)[0]
    body = _click(slack, REQUESTER, req.id, {"type": "view", "view_id": "V0HOME"})
    assert dispatch(bolt, body).status == 200
    published = wait_for(lambda: [v for v in slack.views if v["method"] == "views.publish"])
    assert core.service.get(req.id).state == CANCELLED
    assert "Cancelled" in str(published[-1]["view"]["blocks"]) or "no open requests" in str(published[-1]["view"])
    assert not slack.responses


def test_someone_elses_cancel_click_is_refused(bolt, core, db, slack, groups):
    core.service.handle_command(REQUESTER, "request Viewer")
    req = _requests(db)[0]
    body = _click(slack, OTHER, req.id, {"type": "message", "message_ts": "1.1"})
    assert dispatch(bolt, body).status == 200
    wait_for(lambda: slack.responses)
    assert "not yours" in slack.responses[-1]["text"]
    assert core.service.get(req.id).state == PENDING
